"""Rule extract_video: one video file -> results/videos/{split}/{video}/ (triplets, manifest, record)."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.video:extract_video")  # noqa: F821 (snakemake is injected)
