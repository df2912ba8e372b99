"""Rule compare_vaes: every model's tables -> results/compare/ (vaes.csv, vaes.json, finetunes.csv)."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.compare:compare_vaes", unused=("files",))  # noqa: F821 (snakemake is injected)
