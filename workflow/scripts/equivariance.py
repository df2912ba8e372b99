"""Rule equivariance: a latent space's test frames, latents and flow + its VAE -> equivariance tables and JSON."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.equivariance import analyse_equivariance  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm, params = snakemake, snakemake.params  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    analyse_equivariance(sm.input.frames, sm.input.latents, sm.input.flow, params.vae, dict(out.items()),
                         sm.wildcards.model, params.frames, params.batch_size, params.device, sm.threads,
                         dict(params.vae_options), params.compile)
