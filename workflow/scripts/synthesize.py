"""Rule synthesize_<split>: draw the demo's frames for one split into its folder."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.atomic import staged  # noqa: E402
from latent_interp.synthetic import write_split  # noqa: E402

params = snakemake.params  # noqa: F821
with staged(snakemake.output) as out:  # the folder is renamed into place once every frame is drawn  # noqa: F821
    specs = write_split(out[0], params.seed, params.split, params.triplets, *params.raw_size)
print(f"wrote {len(specs)} triplets of split {params.split} under {snakemake.output[0]}")  # noqa: F821
