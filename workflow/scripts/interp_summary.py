"""Rule interp_summary: every interpolation table -> results/interp/summary.csv."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.interp import summarize_interp  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    summarize_interp(list(sm.input.tables), out[0], sm.params.resamples, sm.params.seed, sm.params.motion_bins)
