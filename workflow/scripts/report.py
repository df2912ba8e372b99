"""Rule report: every stage's outputs -> results/report.html and results/figures/."""
import itertools
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.atomic import staged  # noqa: E402
from latent_interp.report import ReportInputs, ReportSettings, build_report  # noqa: E402

params, inputs, output = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
# The rule lists its inputs in expand()'s order: models outer, then splits, methods or names inner.
by_model_split = list(itertools.product(params.models, params.splits))
by_space_split = list(itertools.product(params.latent_models, params.splits))  # latents exist per latent space
by_model_interp = list(itertools.product(params.models, params.interp_splits))
geometry_count, equivariance_count = len(params.geometry_names), len(params.equivariance_names)
report_inputs = ReportInputs(
    config=dict(params.config), vaes=dict(params.vaes), models=list(params.models), splits=list(params.splits),
    frames=dict(zip(params.splits, inputs.frames)), skipped=dict(zip(params.splits, inputs.skipped)),
    recon=dict(zip(by_model_split, inputs.recon)), latents=dict(zip(by_space_split, inputs.latents)),
    metric_tables=dict(zip(by_model_split, inputs.tables)), metrics_summary=inputs.summary, metrics_spec=inputs.spec,
    collapse=dict(zip(params.models, inputs.collapse)), comparison=inputs.comparison,
    finetunes={name: {**entry, "dir": folder} for (name, entry), folder in zip(params.finetunes.items(),
                                                                                inputs.finetuned)},
    finetune_effects=inputs.finetune_effects, compare_table=inputs.compare_table,
    compare_summary=inputs.compare_summary,
    embeddings=[(m, method, table, settings) for (m, method), table, settings in
                zip(itertools.product(params.latent_models, params.methods), inputs.embeddings, inputs.settings)],
    interp_summary=inputs.interp_summary, interp_tables=dict(zip(by_model_interp, inputs.interp_tables)),
    interp_stores=dict(zip(by_model_interp, inputs.interp_stores)),
    predictor_dirs=dict(zip(params.latent_models, inputs.predictors)),
    geometry={m: dict(zip(params.geometry_names, inputs.geometry[i * geometry_count:(i + 1) * geometry_count]))
              for i, m in enumerate(params.latent_models)},
    flow=dict(zip(params.splits, inputs.flow)), flow_tables=dict(zip(params.splits, inputs.flow_tables)),
    equivariance={m: dict(zip(params.equivariance_names,
                              inputs.equivariance[i * equivariance_count:(i + 1) * equivariance_count]))
                  for i, m in enumerate(params.latent_models)},
    twins=dict(params.twins), lpips_skipped=params.lpips_skipped,
    settings=ReportSettings(**params.settings))
with staged(output) as out:  # written under temporary names, renamed when whole; the page links the final folder
    build_report(out.report, out.figures, report_inputs, linked_figures_dir=output.figures)
