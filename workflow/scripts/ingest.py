"""Rule ingest: a split's triplet folders -> results/frames/{split}.zarr and the list of skipped triplets."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.data import ingest_split  # noqa: E402

sm = snakemake  # noqa: F821
ingest_split(sm.params.source, sm.output.store, sm.output.skipped, sm.wildcards.split, sm.params.size,
             sm.params.resample, sm.threads, sm.params.on_error)
