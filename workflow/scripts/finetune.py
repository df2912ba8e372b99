"""Rule finetune: train and val frames + a VAE -> results/models/{finetune}/ (a diffusers folder)."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.finetune:finetune")  # noqa: F821 (snakemake is injected)
