"""Rule synthesize_<split>: draw the demo's frames (or videos) for one split."""
import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.atomic import staged_tree  # noqa: E402
from latent_interp.synthetic import write_split, write_videos  # noqa: E402

params = snakemake.params  # noqa: F821
videos = params.layout == "video"  # <root>/<split>/<video> or <root>/<split>/<triplet>/frame1.jpg
out_dir = Path(snakemake.output[0]).parents[0 if videos else 1]  # noqa: F821
with staged_tree(out_dir) as partial_dir:  # the files move into place once all are drawn
    specs = (write_videos if videos else write_split)(partial_dir, params.seed, params.split, params.how_many,
                                                     *params.raw_size)
print(f"wrote {len(specs)} {'videos' if videos else 'triplets'} of split {params.split} under {out_dir}")
