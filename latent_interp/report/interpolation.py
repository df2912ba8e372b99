"""Interpolation: frame 2 from frames 1 and 3. Method tables with CIs, the gap to lerp and to the VAE ceiling, bars,
the predictors' training curves, every triplet's scores, and worst-first galleries with error maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from latent_interp import interp, store
from latent_interp.report import clips, field, motion, tables
from latent_interp.report.context import Context
from latent_interp.report.page import Section
from latent_interp.report.triplets import interp_gallery

# The method tables show the standard protocol (and EISAI's chamfer); "The field's table" shows every protocol.
METRIC_LABELS = {"psnr": "PSNR dB ↑", "ssim": "SSIM ↑", "latent_mse": "latent MSE ↓",
                 "eisai_chamfer": "chamfer ×10³ ↓", "lpips": "LPIPS ↓", "roi_psnr": "RoI PSNR dB ↑",
                 "roi_ssim": "RoI SSIM ↑"}
SCALE = {"eisai_chamfer": 1e3}  # chamfer distances are ~1e-3 of the diagonal: shown in thousandths
DIGITS = {"psnr": 2, "roi_psnr": 2, "ssim": 4, "roi_ssim": 4, "latent_mse": 3, "eisai_chamfer": 3, "lpips": 4}


def _overall(summary: pd.DataFrame) -> pd.DataFrame:
    motion = summary["motion"] if "motion" in summary else pd.Series("all", index=summary.index)
    return summary[(summary["origin"] == "all") & (summary["level"].astype(str) == "all") & (motion == "all")]


def method_table(rows: pd.DataFrame, metrics: list[str]) -> tables.Table:
    """Methods as rows: each metric's mean [95% CI]; for PSNR also the paired difference to lerp (green or red where
    its interval excludes 0), the gap to the ceiling and the share of lerp's gap to the ceiling closed. Methods that
    see frame 2 are marked."""
    columns = ["method", "triplets"]
    for metric in metrics:
        columns.append(METRIC_LABELS[metric])
        if metric == "psnr":
            columns += ["Δ PSNR vs lerp dB", "gap to ceiling dB", "gap closed"]
    table = tables.Table(columns, caption="† sees frame 2: an oracle (a bound, not an in-between method) or the "
                                          "ceiling itself; never counted as the best method. Gap closed: (method − "
                                          "lerp) / (ceiling − lerp) in mean PSNR, paired over triplets: 0 is lerp, "
                                          "1 the ceiling.")
    for row in rows.to_dict("records"):
        oracle = row["method"] in interp.SEES_FRAME2
        cells = [tables.text(row["method"] + (" †" if oracle else ""),
                             "sees frame 2" if oracle else ""),
                 tables.Cell(str(row["n_triplets"]), row["n_triplets"])]
        for metric in metrics:
            scale, digits = SCALE.get(metric, 1), DIGITS[metric]
            cells.append(tables.number(row.get(metric), digits, row.get(f"{metric}_ci_low"),
                                       row.get(f"{metric}_ci_high"), scale=scale))
            if metric == "psnr":
                low, high = row.get("psnr_vs_lerp_ci_low"), row.get("psnr_vs_lerp_ci_high")
                cells.append(tables.number(row.get("psnr_vs_lerp"), 2, low, high, signed=True,
                                           tone=tables.difference_tone(low, high)))
                cells.append(tables.number(row.get("psnr_vs_ceiling"), 2, row.get("psnr_vs_ceiling_ci_low"),
                                           row.get("psnr_vs_ceiling_ci_high"), signed=True))
                cells.append(tables.number(row.get("gap_closed"), 2, row.get("gap_closed_ci_low"),
                                           row.get("gap_closed_ci_high"), signed=True))
        table.rows.append(cells)
    return table


def reading(rows: pd.DataFrame) -> str:
    """One line: the best method that does not see frame 2, its margin over lerp, and the ceiling."""
    by_method = rows.set_index("method")
    if "latent_lerp" not in by_method.index:
        return ""
    candidates = by_method.drop(index=[m for m in interp.SEES_FRAME2 if m in by_method.index])
    best = candidates["psnr"].idxmax()
    line = (f"Best without frame 2: {best} at {candidates.loc[best, 'psnr']:.2f} dB "
            f"({candidates.loc[best, 'psnr_vs_lerp']:+.2f} dB vs latent_lerp")
    if "vae_ceiling" in by_method.index:
        line += f"; the VAE ceiling is {by_method.loc['vae_ceiling', 'psnr']:.2f} dB"
    return line + ")."


def method_bars(summary: pd.DataFrame, split: str) -> plt.Figure:
    rows = _overall(summary[summary["split"] == split])
    models = list(dict.fromkeys(rows["model"]))
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    width = 0.8 / max(len(models), 1)
    for position, model in enumerate(models):
        by_model = rows[rows["model"] == model].set_index("method").reindex(
            [m for m in interp.METHODS if m in set(rows["method"])])
        x = np.arange(len(by_model)) + position * width
        for axis, metric in zip(axes, ("psnr", "ssim")):
            errors = [by_model[metric] - by_model[f"{metric}_ci_low"], by_model[f"{metric}_ci_high"] - by_model[metric]]
            axis.bar(x, by_model[metric], width, yerr=errors, capsize=2, label=model)
            axis.set_xticks(np.arange(len(by_model)) + width * (len(models) - 1) / 2, by_model.index, rotation=30,
                            ha="right", fontsize=8)
            axis.set_ylabel(METRIC_LABELS[metric])
    for axis, metric in zip(axes, ("psnr", "ssim")):  # zoom on the bars' range, after every model is drawn
        margin = 0.05 if metric == "ssim" else 2
        axis.set_ylim(max(0, np.nanmin(rows[f"{metric}_ci_low"]) - margin),
                      np.nanmax(rows[f"{metric}_ci_high"]) + margin / 4)
    axes[0].legend(fontsize=8, frameon=False)
    figure.suptitle(f"{split}: frame 2 predicted from frames 1 and 3 (95% CI over triplets)", fontsize=10)
    return figure


def training_curves(predictor_dirs: dict[str, str]) -> plt.Figure:
    figure, axes = plt.subplots(1, len(predictor_dirs), figsize=(5.5 * len(predictor_dirs), 3.4), squeeze=False,
                                layout="constrained")
    for axis, (space, folder) in zip(axes[0], predictor_dirs.items()):
        table = pd.read_csv(Path(folder) / "training.csv")
        for name, rows in table.groupby("predictor", sort=False):
            if name == "linear":
                best = rows[rows["selected"]].iloc[0]
                axis.axhline(best["val_mse"], color="#555", linestyle=":",
                             label=f"linear (ridge λ {best['ridge_lambda']:g})")
                continue
            axis.plot(rows["epoch"], rows["val_mse"], label=f"{name} val")
            axis.plot(rows["epoch"], rows["train_mse"], linestyle="--", alpha=0.6, label=f"{name} train")
        lerp = table[(table["predictor"] != "linear") & (table["epoch"] == 0)]["val_mse"]
        if len(lerp):
            axis.axhline(lerp.iloc[0], color="k", linewidth=0.8, label="lerp (epoch 0)")
        axis.set_xlabel("epoch")
        axis.set_ylabel("latent MSE (lower is better)")
        axis.set_title(f"predictors of {space} latents", fontsize=9)
        axis.legend(fontsize=7, frameon=False)
    return figure


def gallery_figure(interp_path, frames_path, title: str, limit: int) -> plt.Figure | None:
    """Worst triplets first: frames 1, 2 (truth), 3, then each method's frame 2 with its error map beneath."""
    group = store.open_store(interp_path, "interp")
    picked = [str(v) for v in group["gallery_triplets"][:min(limit, group.attrs.get("gallery_worst", limit))]]
    if not picked:
        return None
    methods = group.attrs["methods"]
    frames_group = store.open_store(frames_path, "frames")
    position = {name: i for i, name in enumerate(store.names(frames_group))}
    columns = 3 + len(methods)
    # One mosaic in one axes, its labels as text: an axes per image (2 x (3 + methods) a triplet, 192 in a demo
    # gallery) made the galleries most of the report's time; first their layout, then creating the axes themselves.
    height, width = frames_group[store.FRAMES].shape[2:4]
    gap, band = max(2, width // 12), max(8, height // 4)  # px between tiles; a white band above a row for its labels
    row_height, column_width = band + height, width + gap
    mosaic = np.full((2 * len(picked) * row_height, columns * column_width - gap, 3), 255, np.uint8)
    labels, errors = [], matplotlib.colormaps["magma"]
    for row, name in enumerate(picked):
        truth = frames_group[store.FRAMES][position[name]]
        predictions = group["gallery"][row]
        panels = [(truth[0], "frame 1"), (truth[1], "frame 2 (truth)"), (truth[2], "frame 3")]
        panels += [(predictions[k], method + (" †" if method in interp.SEES_FRAME2 else ""))
                   for k, method in enumerate(methods)]
        top = 2 * row * row_height + band
        labels.append((-gap, top + height / 2, name, 90))
        for column, (image, label) in enumerate(panels):
            left = column * column_width
            mosaic[top:top + height, left:left + width] = image
            labels.append((left + width / 2, top - 2, label, 0))
            if column < 3:  # the inputs and the truth have no error map
                continue
            error = np.abs(image.astype(np.float32) - truth[1]).mean(axis=-1) / 255
            below = top + row_height
            mosaic[below:below + height, left:left + width] = (errors(np.clip(error / 0.5, 0, 1))[..., :3]
                                                                * 255).astype(np.uint8)
            labels.append((left + width / 2, below - 2, "|error|", 0))
    inches = 1.25 * columns
    figure = plt.figure(figsize=(inches, inches * mosaic.shape[0] / mosaic.shape[1] + 0.5))
    axis = figure.add_axes((0.03, 0.0, 0.96, 1 - 0.5 / figure.get_figheight()))
    axis.imshow(mosaic, interpolation="nearest")
    axis.set_axis_off()
    for x, y, text, rotation in labels:
        axis.text(x, y, text, fontsize=6, rotation=rotation, ha="right" if rotation else "center",
                  va="center" if rotation else "bottom")
    figure.suptitle(title, fontsize=9, y=1 - 0.1 / figure.get_figheight(), va="top")
    return figure


def breakdown_table(summary: pd.DataFrame, split: str) -> tables.Table | None:
    """Mean PSNR of each method by origin and, on annotated splits, by difficulty level."""
    motion_group = summary["motion"] if "motion" in summary else pd.Series("all", index=summary.index)
    grouped = (summary["origin"] != "all") | (summary["level"].astype(str) != "all") | (motion_group != "all")
    rows = summary[(summary["split"] == split) & grouped]
    if rows.empty:
        return None
    motion_group = motion_group[rows.index]
    rows = rows.assign(group=np.where(rows["level"].astype(str) != "all", "level " + rows["level"].astype(str),
                                      np.where(motion_group != "all", "motion " + motion_group, rows["origin"])))
    wide = rows.pivot_table(index=["model", "method"], columns="group", values="psnr", sort=False).reset_index()
    return tables.from_frame(wide, default_digits=2)


def timing_table(summary: pd.DataFrame, split: str) -> tuple[tables.Table, str] | None:
    """On the triplets whose t is not 0.5 (interp.time: true), each model's methods at t against the same methods at
    the midpoint (paired over those triplets), and a line on what predicting at the true time gains; None where the
    split has no such triplets."""
    if "n_off_midpoint" not in summary:
        return None
    rows = _overall(summary[(summary["split"] == split)])
    rows = rows[rows["n_off_midpoint"].fillna(0) > 0]
    if rows.empty:
        return None
    table = tables.Table(["model", "method", "triplets", "PSNR at t dB ↑", "PSNR at 0.5 dB ↑", "Δ PSNR dB",
                          "Δ SSIM"],
                         caption="The same method predicting each off-midpoint triplet's in-between at its true t "
                                 "and at 0.5, scored against the same true frame 2; Δ is at t minus at 0.5, paired "
                                 "over those triplets, with its 95% bootstrap interval (green or red where it "
                                 "excludes 0). † sees frame 2.")
    for row in rows.to_dict("records"):
        oracle = row["method"] in interp.SEES_FRAME2
        cells = [tables.text(row["model"]), tables.text(row["method"] + (" †" if oracle else "")),
                 tables.Cell(str(int(row["n_off_midpoint"])), int(row["n_off_midpoint"])),
                 tables.number(row.get("psnr_off_midpoint"), 2), tables.number(row.get("psnr_at_midpoint"), 2)]
        for metric, digits in (("psnr", 2), ("ssim", 4)):
            low, high = row.get(f"{metric}_vs_midpoint_ci_low"), row.get(f"{metric}_vs_midpoint_ci_high")
            cells.append(tables.number(row.get(f"{metric}_vs_midpoint"), digits, low, high, signed=True,
                                       tone=tables.difference_tone(low, high)))
        table.rows.append(cells)
    contenders = rows[~rows["method"].isin(list(interp.SEES_FRAME2) + ["repeat", "vae_ceiling"])]
    best = contenders.loc[contenders["psnr_vs_midpoint"].idxmax()] if contenders["psnr_vs_midpoint"].notna().any() \
        else None
    count = int(rows["n_off_midpoint"].max())
    line = f"{count} {split} triplets have their middle drawing off the midpoint."
    if best is not None:
        line += (f" Predicting them at their true t gains most for {best['method']} ({best['model']}): "
                 f"{best['psnr_vs_midpoint']:+.2f} dB [{best['psnr_vs_midpoint_ci_low']:+.2f}, "
                 f"{best['psnr_vs_midpoint_ci_high']:+.2f}].")
    return table, line


def triplet_table(ctx: Context) -> dict:
    """Every interpolated triplet and model: each method's PSNR, and which method did best. The row's first value is
    the triplet's key (not shown)."""
    methods = ctx.interp_methods
    rows = ctx.interp_rows
    wide = rows.pivot_table(index=["split", "triplet", "model"], columns="method", values="psnr", sort=False)
    wide = wide.reindex(columns=methods)
    contenders = [m for m in methods if m not in interp.SEES_FRAME2]
    best = wide[contenders].idxmax(axis=1).to_numpy()  # aligned with wide's rows
    origins = rows.drop_duplicates(["split", "triplet"]).set_index(["split", "triplet"])["origin"].to_dict()
    body = [[f"{split}/{name}", name, split, origins[(split, name)], model, winner]
            + [None if pd.isna(v) else round(float(v), 2) for v in values]
            for (split, name, model), winner, values in zip(wide.index, best, wide.to_numpy())]
    return {"columns": ["triplet", "split", "origin", "model", "best method"] + [f"{m} dB" for m in methods],
            "rows": body}


def section(ctx: Context) -> Section | None:
    summary = ctx.interp_summary
    if summary is None or not ctx.inputs.interp_stores:
        return None
    splits = list(dict.fromkeys(split for _, split in ctx.inputs.interp_stores))[::-1]  # test first: the reported one
    metrics = [m for m in METRIC_LABELS if m in summary and summary[m].notna().any()]
    blocks = []
    for split in splits:
        if not (summary["split"] == split).any():
            blocks.append({"split": split, "empty": True})
            continue
        models = []
        for model in dict.fromkeys(model for model, _ in ctx.inputs.interp_stores):
            rows = _overall(summary[(summary["model"] == model) & (summary["split"] == split)])
            depth = motion.depth_reading(rows)
            models.append({"model": model, "reading": reading(rows),
                           "motion": motion.readings(rows) + ([depth] if depth else []),
                           "table": method_table(rows, [m for m in metrics if rows[m].notna().any()])})
        by_motion, by_depth = motion.gap_by_motion(summary, split), motion.gap_by_depth(summary, split)
        blocks.append({"split": split, "empty": False, "models": models,
                       "bars": ctx.figures.save(method_bars(summary, split), f"interpolation_{split}",
                                                f"{split}: PSNR and SSIM of each method (95% CI over triplets)"),
                       "by_motion": by_motion and ctx.figures.save(
                           by_motion, f"interpolation_motion_{split}",
                           f"{split}: the share of latent_lerp's PSNR gap to each VAE's ceiling that each motion "
                           "method closes, by quantile bins of the flow's mean magnitude (95% paired CIs)"),
                       "by_depth": by_depth and ctx.figures.save(
                           by_depth, f"interpolation_depth_{split}",
                           f"{split}: the share of latent_lerp's PSNR gap to each VAE's ceiling closed by warping the "
                           "ends at each depth: the latent grid (latent_flow), each level of the decoder "
                           "(decoder_flow@k: 0 the latent grid after its first layers, the last full resolution), the "
                           "reconstructions (recon_flow); dashed: along the oracle flow; green: pixel_flow's bounds"),
                       "breakdown": breakdown_table(summary, split), "timing": timing_table(summary, split)})
    galleries = []
    for (model, split), path in ctx.inputs.interp_stores.items():
        keys, worst = interp_gallery(ctx, model, split)
        if not worst:
            continue
        shown = min(worst, ctx.settings.gallery_rows)
        figure = gallery_figure(path, ctx.inputs.frames[split], f"{model} / {split}: worst triplets first (lowest "
                                "latent_lerp PSNR); error maps: mean |prediction - truth| over RGB", shown)
        galleries.append({"model": model, "split": split, "triplets": [f"{split}/{k}" for k in keys[:shown]],
                          "figure": ctx.figures.save(figure, f"interpolation_gallery_{model}_{split}",
                                                     f"{model} / {split} gallery", embed=False)})
    curves = None
    if ctx.inputs.predictor_dirs:
        curves = ctx.figures.save(training_curves(ctx.inputs.predictor_dirs), "predictor_training",
                                  "Latent MSE per epoch on val (solid) and train (dashed); epoch 0 is lerp, the kept "
                                  "weights are those of the lowest val MSE. Linear: the val MSE of the ridge strength "
                                  "chosen on val.")
    ctx.payload["tables"]["interp-triplets"] = triplet_table(ctx)
    reported = splits[0]  # test where the run has it: the split the field reports
    field_rows = field.field_table(summary, reported, field.run_geometry(ctx.frames_store(reported)))
    clip_table, clips_skipped = clips.clips_table(ctx)
    return Section("interpolation", "Interpolation: frame 2 from frames 1 and 3", "interpolation.html.j2", {
        "blocks": blocks, "galleries": galleries, "curves": curves, "lpips_skipped": ctx.inputs.lpips_skipped,
        "models": ctx.inputs.models, "field": field_rows, "clips": clip_table, "clips_skipped": clips_skipped},
        parts=[("interp-methods", "Methods"), ("interp-field", "The field's table"),
               ("interp-triplets", "Every triplet"),
               ("interp-gallery", "Worst interpolated"), ("interp-predictors", "Learned predictors")]
        + ([("interp-clips", "Re-timed clips")] if ctx.inputs.clips else []))
