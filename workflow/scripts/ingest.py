"""Rule ingest: a split's triplet folders -> results/frames/{split}.zarr and the list of skipped triplets."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.data import ingest_split  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    ingest_split(sm.params.source, out.store, out.skipped, sm.wildcards.split, sm.params.size,
                 sm.params.resample, sm.threads, sm.params.on_error, sm.params.fit)
