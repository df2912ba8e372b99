"""Rule interp: frames, latents, recon and predictors -> results/interp/{model}/{split}.csv, spec and store."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.interp import score_split  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm, params = snakemake, snakemake.params  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    score_split(sm.input.frames, sm.input.latents, sm.input.recon, sm.input.predictors, params.vae, out.table,
                out.spec, out.store, sm.wildcards.model, sm.wildcards.split, params.gallery,
                params.sample, params.seed, params.batch_size, params.device, sm.threads, dict(params.vae_options),
                dict(params.lpips), sm.input.flow, list(params.protocols), params.compile)
