"""Rule synthesize_<split>: draw the demo's frames (and their manifest) or videos for one split."""
import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.atomic import remove, staged, staged_tree  # noqa: E402
from latent_interp.synthetic import frame_relpaths, write_manifest, write_split, write_videos  # noqa: E402

sm, params = snakemake, snakemake.params  # noqa: F821
videos = params.layout == "video"  # <root>/<split>/<video>, or <root>/<split>/<triplet>/frame1.jpg and a manifest
out_dir = Path(params.split_dir)
if not videos:
    remove(out_dir)  # the split is drawn whole: no triplet of a larger earlier draw stays behind
with staged_tree(out_dir) as partial_dir:  # the files move into place once all are drawn
    specs = (write_videos if videos else write_split)(partial_dir, params.seed, params.split, params.how_many,
                                                     *params.raw_size)
if not videos:
    with staged(sm.output) as out:
        write_manifest(out_dir, frame_relpaths(specs), out[0])
print(f"wrote {len(specs)} {'videos' if videos else 'triplets'} of split {params.split} under {out_dir}")
