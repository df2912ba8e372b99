"""Rule equivariance: a latent space's shifts and oracle warps -> results/geometry/{model}/equivariance*."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.equivariance:analyse_equivariance")  # noqa: F821 (snakemake is injected)
