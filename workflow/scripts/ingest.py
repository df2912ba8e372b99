"""Rule ingest: a split's raw triplets -> results/frames/{split}.zarr and its skip list."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.data:ingest_split", unused=("frame_files",))  # noqa: F821 (snakemake is injected)
