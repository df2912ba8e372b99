"""Rule metrics_summary: every metric table -> results/metrics/summary.csv and comparison.csv."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.metrics:summarize_tables")  # noqa: F821 (snakemake is injected)
