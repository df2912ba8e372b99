"""Rule embed: a model's latents of every split -> 2-D embedding table, settings and plot."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.embed import embed_model  # noqa: E402

sm = snakemake  # noqa: F821
embed_model(list(sm.input.latents), sm.wildcards.model, sm.wildcards.method, sm.output.table, sm.output.plot,
            sm.output.settings, sm.params.seed, sm.params.max_points, sm.input.clusters, sm.input.trajectories,
            sm.params.trajectories)
