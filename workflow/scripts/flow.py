"""Rule flow: frames store -> results/flow/{split}.zarr and its table."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.flow:compute_split_flow")  # noqa: F821 (snakemake is injected)
