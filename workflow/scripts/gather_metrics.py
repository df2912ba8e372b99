"""Rule gather_metrics: the shards of one sharded split -> the metrics table and spec an unsharded run writes."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.metrics import gather_tables  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    gather_tables(list(sm.input.tables), list(sm.input.specs), out.table, out.spec)
