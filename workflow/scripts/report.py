"""Rule report: every stage's outputs -> results/report.html and results/figures/."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.report.job:report_job")  # noqa: F821 (snakemake is injected)
