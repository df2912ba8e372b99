"""Rule synthesize_<split>: draw the demo's frames (and their manifest) or videos for one split."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.synthetic:draw_split", stage_outputs=False)  # noqa: F821 (snakemake is injected)
