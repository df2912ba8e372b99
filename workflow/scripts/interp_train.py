"""Rule interp_train: train and val latents -> results/predictors/{model} (learned predictors of latent2)."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.predictors import train_predictors  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    train_predictors(sm.input.train, sm.input.val, out[0], dict(sm.params.settings), sm.params.device, sm.threads,
                     list(sm.input.flow))
