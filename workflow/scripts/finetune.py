"""Rule finetune: frames stores (train, val) + the entry's VAE -> results/models/<name> (a diffusers folder)."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "a", buffering=1)  # noqa: F821 (appended: resumes stay readable)
from latent_interp.finetune import finetune  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm, params = snakemake, snakemake.params  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    finetune(sm.input.train, sm.input.val, params.pretrained, out[0], params.checkpoint, dict(params.settings),
             params.device, sm.threads, params.batch_size, dict(params.vae_options), name=sm.wildcards.finetune)
