"""Rule report: everything -> results/report.html."""
import itertools
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.report import build_report  # noqa: E402

sm, params, inputs = snakemake, snakemake.params, snakemake.input  # noqa: F821
# The rule lists its inputs in expand()'s order: models outer, then splits or names inner.
keys = list(itertools.product(params.models, params.splits))
plots = [(m, method, png, js) for (m, method), png, js in
         zip(itertools.product(params.latent_models, params.methods), inputs.plots, inputs.settings)]
per_model = len(params.geometry_names)
geometry = {m: dict(zip(params.geometry_names, inputs.geometry[i * per_model:(i + 1) * per_model]))
            for i, m in enumerate(params.latent_models)}
study = {"interp_summary": inputs.interp_summary,
         "interp_stores": dict(zip(itertools.product(params.models, params.interp_splits), inputs.interp_stores)),
         "predictor_dirs": dict(zip(params.latent_models, inputs.predictors)), "geometry": geometry,
         "twins": dict(params.twins), "twin_records": dict(zip(params.twins, inputs.twins)),
         "lpips_skipped": params.lpips_skipped, "gallery_limit": params.gallery_limit}
build_report(sm.output[0], dict(params.config), inputs.summary, dict(zip(keys, inputs.tables)), inputs.spec,
             dict(zip(params.splits, inputs.frames)), dict(zip(keys, inputs.recon)), dict(zip(keys, inputs.latents)),
             plots, dict(zip(params.splits, inputs.skipped)), dict(zip(params.models, inputs.collapse)),
             params.per_origin, inputs.comparison, inputs.finetuned[0] if inputs.finetuned else None, study)
