"""Rule embed: one latent space's latents -> results/embeddings/{model}/{method}.csv, .json and .png."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.embed:embed_model")  # noqa: F821 (snakemake is injected)
