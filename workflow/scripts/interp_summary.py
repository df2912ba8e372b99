"""Rule interp_summary: every interp table -> results/interp/summary.csv."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.interp:summarize_interp")  # noqa: F821 (snakemake is injected)
