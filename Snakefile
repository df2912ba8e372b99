# latent-interp: raw frame triplets -> frames store -> latents -> reconstructions -> metrics; the latent study
# (interpolation of frame 2, geometry, embeddings) -> report.
# Rules live in workflow/rules/<stage>.smk, their logic in the latent_interp package; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    split="|".join(SPLITS),
    model="|".join(MODELS),
    method="|".join(EMBED_METHODS) or "none",


include: "workflow/rules/synthetic.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/interp.smk"
include: "workflow/rules/geometry.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/report.html",
    default_target: True
