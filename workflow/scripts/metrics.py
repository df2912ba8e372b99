"""Rule metrics: frames + recon stores -> results/metrics/{model}/{split}.csv and spec."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.metrics:compute_split_metrics")  # noqa: F821 (snakemake is injected)
