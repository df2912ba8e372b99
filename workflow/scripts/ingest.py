"""Rule ingest: a split's frame files -> results/frames/{split}.zarr."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.data import ingest_split  # noqa: E402

sm = snakemake  # noqa: F821
ingest_split(list(sm.input), sm.output[0], sm.wildcards.split, sm.params.size, sm.params.resample, sm.threads)
