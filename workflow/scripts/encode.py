"""Rule encode: frames store + VAE -> results/latents/{model}/{split}.zarr."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.encode:encode_split")  # noqa: F821 (snakemake is injected)
