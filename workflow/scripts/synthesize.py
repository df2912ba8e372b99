"""Rule synthesize_<split>: draw the demo's frames for one split."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.synthetic import write_split  # noqa: E402

params = snakemake.params  # noqa: F821
width, height = params.raw_size
specs = write_split(params.out_dir, params.seed, params.split, params.triplets, width, height)
print(f"wrote {len(specs)} triplets of split {params.split} under {params.out_dir}")
