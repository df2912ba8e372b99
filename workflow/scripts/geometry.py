"""Rule geometry: a model's latents of every split -> trajectory, channel, cluster tables and geometry.json."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.geometry import analyse_geometry  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    analyse_geometry(list(sm.input.latents), list(sm.input.frames), dict(out.items()), sm.wildcards.model,
                     dict(sm.params.settings), probe_test=sm.params.probe_test)
