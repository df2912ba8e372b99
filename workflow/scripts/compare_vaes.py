"""Rule compare_vaes: every model's tables and benchmarks -> results/compare/vaes.csv, vaes.json and finetunes.csv."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.compare import compare_vaes  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    compare_vaes(dict(sm.params.models), sm.params.baseline, sm.params.val_split, out.table, out.summary,
                 sm.params.resamples, sm.params.seed, learned=list(sm.params.learned),
                 finetunes=dict(sm.params.finetunes), out_finetunes=out.finetunes)
