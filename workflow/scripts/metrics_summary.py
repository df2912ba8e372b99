"""Rule metrics_summary: every metrics table -> results/metrics/summary.csv and comparison.csv."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.metrics import summarize_tables  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    summarize_tables(list(sm.input.tables), out.summary, out.comparison, sm.params.resamples, sm.params.seed,
                     [tuple(pair) for pair in sm.params.pairs])
