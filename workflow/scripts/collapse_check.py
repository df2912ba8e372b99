"""Rule collapse_check: does the model's reconstruction still depend on its input? (figures in a JSON)"""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.collapse:collapse_check")  # noqa: F821 (snakemake is injected)
