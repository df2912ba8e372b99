"""Rule flow: a frames store -> results/flow/{split}.zarr and .csv (optical flow of every triplet)."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.flow import compute_split_flow  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    compute_split_flow(sm.input.frames, out.store, out.table, sm.wildcards.split, dict(sm.params.settings),
                       sm.params.on_error, sm.threads)
