"""Rule collapse_check: does the model's reconstruction still depend on its input? (figures in a JSON)"""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.metrics import collapse_check  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    print(collapse_check(sm.input.frames, sm.input.recon, out[0]))
