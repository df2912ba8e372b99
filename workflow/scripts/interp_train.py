"""Rule interp_train: train and val latents -> results/predictors/{model}/."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.predictors:train_predictors")  # noqa: F821 (snakemake is injected)
