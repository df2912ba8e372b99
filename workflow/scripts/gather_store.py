"""Rule gather_store: a sharded split's latents or recon shard stores -> one store."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.store:gather")  # noqa: F821 (snakemake is injected)
