"""Rule report: its flat lists of inputs, in the order the rule expands them, laid out as ``ReportInputs``."""

from __future__ import annotations

import itertools

from latent_interp.report import build_report
from latent_interp.report.context import ReportInputs, ReportSettings


# Rule report's inputs by name (every one a list in the rule's expand() order, or one file)
INPUTS = ("frames", "skipped", "recon", "latents", "tables", "spec", "summary", "comparison", "collapse", "finetuned",
          "finetune_effects", "compare_table", "compare_summary", "embeddings", "settings", "interp_summary",
          "interp_tables", "interp_stores", "predictors", "geometry", "flow", "flow_tables", "equivariance", "clips")


def report_job(*, report, figures, linked_figures, layout: dict, threads: int = 2, **inputs) -> None:
    """Write ``report`` and its ``figures`` (which the page links as ``linked_figures``, the folder's final name)
    from rule report's ``INPUTS``. ``layout``: the run's config, VAE sources, models, latent spaces, splits,
    interpolation splits, embedding methods, twins, fine-tunes, the names of the geometry and equivariance outputs,
    the videos with re-timed clips, whether LPIPS was skipped and the report's settings; the rule expands every list
    with models outer, then splits, methods or names inner. ``threads``: the processes that draw the figures."""
    missing, unknown = [name for name in INPUTS if name not in inputs], sorted(set(inputs) - set(INPUTS))
    if missing or unknown:
        raise TypeError(f"rule report: inputs missing {missing}, not known {unknown} (latent_interp.report.job)")
    (frames, skipped, recon, latents, tables, spec, summary, comparison, collapse, finetuned, finetune_effects,
     compare_table, compare_summary, embeddings, settings, interp_summary, interp_tables, interp_stores, predictors,
     geometry, flow, flow_tables, equivariance, clips) = (inputs[name] for name in INPUTS)
    models, spaces, splits = list(layout["models"]), list(layout["latent_models"]), list(layout["splits"])
    by_model_split = list(itertools.product(models, splits))
    by_space_split = list(itertools.product(spaces, splits))  # latents exist per latent space
    by_model_interp = list(itertools.product(models, layout["interp_splits"]))

    def per_space(paths: list, names: list) -> dict:
        return {space: dict(zip(names, paths[i * len(names):(i + 1) * len(names)])) for i, space in enumerate(spaces)}

    inputs = ReportInputs(
        config=dict(layout["config"]), vaes=dict(layout["vae_sources"]), models=models, splits=splits,
        frames=dict(zip(splits, frames)), skipped=dict(zip(splits, skipped)),
        recon=dict(zip(by_model_split, recon)), latents=dict(zip(by_space_split, latents)),
        metric_tables=dict(zip(by_model_split, tables)), metrics_summary=summary, metrics_spec=spec,
        collapse=dict(zip(models, collapse)), comparison=comparison,
        finetunes={name: {**entry, "dir": folder} for (name, entry), folder in zip(layout["finetunes"].items(),
                                                                                    finetuned)},
        finetune_effects=finetune_effects, compare_table=compare_table, compare_summary=compare_summary,
        embeddings=[(space, method, table, record) for (space, method), table, record in
                    zip(itertools.product(spaces, layout["methods"]), embeddings, settings)],
        interp_summary=interp_summary, interp_tables=dict(zip(by_model_interp, interp_tables)),
        interp_stores=dict(zip(by_model_interp, interp_stores)), predictor_dirs=dict(zip(spaces, predictors)),
        geometry=per_space(geometry, layout["geometry_names"]), flow=dict(zip(splits, flow)),
        flow_tables=dict(zip(splits, flow_tables)), equivariance=per_space(equivariance, layout["equivariance_names"]),
        clips=dict(zip(itertools.product(models, layout.get("clip_videos", [])), clips)),
        twins=dict(layout["twins"]), lpips_skipped=layout["lpips_skipped"],
        settings=ReportSettings(**layout["settings"]))
    build_report(report, figures, inputs, linked_figures_dir=linked_figures, workers=threads)
