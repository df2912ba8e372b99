"""Rule gather_metrics: a sharded split's metric tables -> one table and spec."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.metrics:gather_tables")  # noqa: F821 (snakemake is injected)
