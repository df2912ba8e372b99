"""Rule report: everything -> results/report.html."""
import itertools
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.report import build_report  # noqa: E402

sm, params = snakemake, snakemake.params  # noqa: F821
# The rule lists model x split inputs in expand()'s order: models outer, splits inner.
keys = list(itertools.product(params.models, params.splits))
plots = [(m, method, png, js) for (m, method), png, js in
         zip(itertools.product(params.models, params.methods), sm.input.plots, sm.input.settings)]
build_report(sm.output[0], dict(params.config), sm.input.summary, dict(zip(keys, sm.input.tables)), sm.input.spec,
             dict(zip(params.splits, sm.input.frames)), dict(zip(keys, sm.input.recon)),
             dict(zip(keys, sm.input.latents)), plots, dict(zip(params.splits, sm.input.skipped)),
             dict(zip(params.models, sm.input.collapse)), params.per_origin, sm.input.comparison,
             sm.input.finetuned[0] if sm.input.finetuned else None)
