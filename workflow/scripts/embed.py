"""Rule embed: a model's latents of every split -> 2-D embedding table, settings and plot."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.embed import embed_model  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    embed_model(list(sm.input.latents), sm.wildcards.model, sm.wildcards.method, out.table, out.plot,
                out.settings, sm.params.seed, sm.params.max_points, sm.input.clusters, sm.input.trajectories,
                sm.params.trajectories)
