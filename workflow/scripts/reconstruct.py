"""Rule reconstruct: latents store + VAE -> results/recon/{model}/{split}.zarr."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.encode import reconstruct_split  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    reconstruct_split(sm.input.latents, sm.params.vae, out[0], sm.wildcards.split, sm.params.batch_size,
                      sm.params.device, sm.threads, dict(sm.params.vae_options), sm.params.shard,
                      sm.params.compile)
