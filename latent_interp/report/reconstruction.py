"""Reconstruction quality: is any model collapsed, the metric summary with CIs, every triplet's scores (a table the
page sorts, filters and pages), and the worst-reconstructed triplets with their error maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from latent_interp import store
from latent_interp.report import tables
from latent_interp.report.context import Context
from latent_interp.report.figures import FigureWriter
from latent_interp.report.page import Section
from latent_interp.report.triplets import worst_reconstructed


def health_table(ctx: Context) -> tuple[tables.Table, list[str], str]:
    """The collapse check per model, the collapsed models, and the rule that flags one."""
    table = tables.Table(["model", "split", "variance ratio (recon / input)", "PSNR dB (pooled)",
                          "mean-image PSNR dB", "gain dB", "verdict"])
    collapsed, rule = [], ""
    for model, path in ctx.inputs.collapse.items():
        check = ctx.read_json(path)
        rule = check["rule"]  # the same for every model
        table.rows.append([tables.text(model), tables.text(check["split"]), tables.number(check["variance_ratio"], 3),
                           tables.number(check["model_psnr_pooled"]), tables.number(check["mean_image_psnr"]),
                           tables.number(check["psnr_gain_db"], signed=True),
                           tables.Cell("COLLAPSED" if check["collapsed"] else "ok", numeric=False,
                                       tone="bad" if check["collapsed"] else "")])
        if check["collapsed"]:
            collapsed.append(model)
    return table, collapsed, rule.replace("collapsed when ", "when ")


def summary_table(summary: pd.DataFrame) -> tables.Table:
    """Mean ± std [95% CI] per model, split, origin and level."""
    with_roi = "roi_psnr" in summary and summary["roi_psnr"].notna().any()
    table = tables.Table(["model", "split", "origin", "level", "triplets", "images", "MSE ↓", "PSNR dB ↑",
                          "PSNR dB (pooled MSE) ↑", "SSIM ↑"] + (["RoI PSNR dB ↑", "RoI SSIM ↑"] if with_roi else []))
    for row in summary.to_dict("records"):
        cells = [tables.text(row[k]) for k in ("model", "split", "origin", "level")]
        cells += [tables.Cell(str(row["n_triplets"]), row["n_triplets"]), tables.Cell(str(row["n_images"]),
                                                                                      row["n_images"])]
        cells += [tables.number(row["mse"], 5),
                  tables.number(row["psnr"], 2, row["psnr_ci_low"], row["psnr_ci_high"]),
                  tables.number(row["psnr_pooled"], 2, row["psnr_pooled_ci_low"], row["psnr_pooled_ci_high"]),
                  tables.number(row["ssim"], 4, row["ssim_ci_low"], row["ssim_ci_high"])]
        if with_roi:
            cells += [tables.number(row["roi_psnr"], 2), tables.number(row["roi_ssim"], 4)]
        table.rows.append(cells)
    return table


def triplet_table(ctx: Context) -> dict:
    """Every triplet: its split, origin, level and, per model, mean and worst-frame PSNR and mean SSIM. The first
    value of a row is the triplet's key (not shown): choosing the row opens its panel."""
    rows = ctx.metric_rows
    means = rows.groupby(["model", "split", "triplet"]).agg(psnr=("psnr", "mean"), worst=("psnr", "min"),
                                                           ssim=("ssim", "mean"))
    means = means.round({"psnr": 2, "worst": 2, "ssim": 4}).to_dict("index")  # {(model, split, name): values}
    columns = ["triplet", "split", "origin", "level"]
    for model in ctx.inputs.models:
        columns += [f"{model} PSNR dB", f"{model} worst frame dB", f"{model} SSIM"]
    body = []
    for record in ctx.payload["triplets"]:
        row = [record["key"], record["name"], record["split"], record["origin"], record["level"]]
        for model in ctx.inputs.models:
            values = means.get((model, record["split"], record["name"]), {})
            row += [values.get("psnr"), values.get("worst"), values.get("ssim")]
        body.append(row)
    return {"columns": columns, "rows": body}


def pick_grid_triplets(names: list[str], origins: list[str], per_origin: int) -> list[int]:
    """Indices of the first ``per_origin`` triplets of each origin, by name: the same picks every run."""
    picked = []
    for origin in sorted(set(origins)):
        indices = sorted((i for i, o in enumerate(origins) if o == origin), key=lambda i: names[i])
        picked += indices[:per_origin]
    return picked


def recon_grid(frames_path, recon_paths: dict[str, str], metric_tables: dict[str, pd.DataFrame], split: str,
               per_origin: int) -> plt.Figure:
    """Per picked triplet, a row of originals and a row of reconstructions per model, titled with their scores."""
    frames_group = store.open_store(frames_path, "frames")
    names, origins = store.names(frames_group), store.origins(frames_group)
    picks = pick_grid_triplets(names, origins, per_origin)
    recon_frames = {model: store.open_store(path, "recon")[store.FRAMES] for model, path in recon_paths.items()}
    rows = []  # (triplet index, "original" or model name, uint8 [3, H, W, 3]): one strip of three frames each
    for index in picks:
        rows.append((index, "original", frames_group[store.FRAMES][index]))
        rows += [(index, model, frames[index]) for model, frames in recon_frames.items()]
    figure, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False, layout="constrained")
    for row, (index, label, images) in enumerate(rows):
        for frame in range(3):
            axis = axes[row, frame]
            axis.imshow(images[frame])
            axis.set_xticks([])
            axis.set_yticks([])
            title = f"{label} frame{frame + 1}"
            if label != "original":
                table = metric_tables[label]
                scores = table[(table["triplet"] == names[index]) & (table["frame"] == frame + 1)].iloc[0]
                title += f"\n{scores.psnr:.1f} dB, SSIM {scores.ssim:.3f}"
            axis.set_title(title, fontsize=8)
        axes[row, 0].set_ylabel(f"{names[index]}\n({origins[index]})", fontsize=7)
    figure.suptitle(f"{split}: originals and reconstructions", fontsize=10)
    return figure


def grid_figures(ctx: Context, writer: FigureWriter) -> list:
    """The first triplets of each origin per split, originals above reconstructions (files only: the page shows
    the worst-first gallery instead)."""
    written = []
    for split, path in ctx.inputs.frames.items():
        if not ctx.triplet_names[split]:
            continue
        figure = recon_grid(path, {m: ctx.inputs.recon[(m, split)] for m in ctx.inputs.models},
                            {m: ctx.metric_rows[(ctx.metric_rows["model"] == m) & (ctx.metric_rows["split"] == split)]
                             for m in ctx.inputs.models}, split, ctx.settings.grid_triplets_per_origin)
        written.append(writer.save(figure, f"reconstructions_{split}", f"{split}: originals and reconstructions",
                                   embed=False))
    return written


def section(ctx: Context) -> Section:
    health, collapsed, rule = health_table(ctx)
    ctx.payload["tables"]["recon-triplets"] = triplet_table(ctx)
    galleries = [{"split": split, "triplets": [f"{split}/{n}" for n in worst_reconstructed(ctx, split,
                                                                                       ctx.settings.gallery_rows)]}
                 for split in ctx.inputs.splits if ctx.triplet_names[split]]
    empty = [split for split in ctx.inputs.splits if not ctx.triplet_names[split]]
    spec = ctx.read_json(ctx.inputs.metrics_spec)
    return Section("reconstruction", "Reconstruction quality", "reconstruction.html.j2", {
        "health": health, "collapsed": collapsed, "rule": rule, "summary": summary_table(ctx.metric_summary),
        "galleries": galleries, "empty": empty, "grids": grid_figures(ctx, ctx.figures), "spec": spec,
        "first_model": ctx.inputs.models[0]},
        parts=[("health", "Model health"), ("metrics", "Metrics"), ("recon-triplets", "Every triplet"),
               ("recon-gallery", "Worst reconstructed")])
