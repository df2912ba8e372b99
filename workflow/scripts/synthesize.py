"""Rule synthesize_<split>: draw the demo's frames for one split."""
import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.atomic import staged_tree  # noqa: E402
from latent_interp.synthetic import write_split  # noqa: E402

params = snakemake.params  # noqa: F821
out_dir = Path(snakemake.output[0]).parents[1]  # <root>/<split>/<triplet>/frame1.jpg  # noqa: F821
with staged_tree(out_dir) as partial_dir:  # the frames move into place once all are drawn
    specs = write_split(partial_dir, params.seed, params.split, params.triplets, *params.raw_size)
print(f"wrote {len(specs)} triplets of split {params.split} under {out_dir}")
