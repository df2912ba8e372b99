# latent-interp: raw frame triplets -> frames store -> latents -> reconstructions -> metrics; the latent study
# (interpolation of frame 2, geometry, embeddings) -> report.
# Rules live in workflow/rules/<stage>.smk, their logic in the latent_interp package; see README.md and docs/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# GPU rules hold gpu=1 where they run on a GPU (common.smk vae_gpu). profiles/default limits a run to gpu=1; "local"
# makes that limit count within each submitted job on a cluster, not across the whole run (docs/cluster.md "Profiles: which
# applies when").
resource_scopes:
    gpu="local",


include: "workflow/rules/common.smk"


wildcard_constraints:
    split="|".join(SPLITS),
    model="|".join(MODELS),
    method="|".join(EMBED_METHODS) or "none",
    shard=r"\d+",
    video=one_of(sorted({name for videos in VIDEOS.values() for name in videos})),


include: "workflow/rules/synthetic.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/interp.smk"
include: "workflow/rules/geometry.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/inbetween.smk"
include: "workflow/rules/report.smk"


# Cheap aggregates run in the main Snakemake process, also on a cluster; every other rule is a job of its own.
localrules:
    all,
    metrics_summary,
    interp_summary,
    compare_vaes,


rule all:
    default_target: True
    input:
        "results/report.html",
