"""Rule latent_twin: does a model share another's latents (decoder-only fine-tune)? -> same_latents.json."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.geometry import compare_latents  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    print(compare_latents(list(sm.input.latents), list(sm.input.twin), out[0], sm.wildcards.model, sm.params.twin))
