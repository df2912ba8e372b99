"""Rule geometry: every split's latents of a latent space -> results/geometry/{model}/ tables and JSON."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.geometry:analyse_geometry")  # noqa: F821 (snakemake is injected)
