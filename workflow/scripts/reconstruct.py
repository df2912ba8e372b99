"""Rule reconstruct: latents store + VAE -> results/recon/{model}/{split}.zarr."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.encode:reconstruct_split")  # noqa: F821 (snakemake is injected)
