"""Rule interp: frames, latents, recon and predictors -> results/interp/{model}/{split}.csv, spec and store."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.interp:score_split")  # noqa: F821 (snakemake is injected)
