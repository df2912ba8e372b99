"""The report's sections on the latent study: interpolation of frame 2 and the geometry of the latent space.

Each section reads the stage outputs (tables, stores, JSON) and draws its figures from them, so every figure is also
there as data for the interactive report to come. Every table says its units and which way is better; each figure
comes with a one-line reading computed from the numbers it shows.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from latent_interp import interp, store  # noqa: E402
from latent_interp.report import figure_html  # noqa: E402

METRIC_LABELS = {"psnr": "PSNR dB ↑", "ssim": "SSIM ↑", "latent_mse": "latent MSE ↓", "chamfer": "chamfer ×10³ ↓",
                 "lpips": "LPIPS ↓", "roi_psnr": "RoI PSNR dB ↑", "roi_ssim": "RoI SSIM ↑"}
SCALE = {"chamfer": 1e3}  # chamfer distances are ~1e-3 of the diagonal: shown in thousandths
DIGITS = {"psnr": 2, "roi_psnr": 2, "ssim": 4, "roi_ssim": 4, "latent_mse": 3, "chamfer": 3, "lpips": 4}


def _cell(row, metric: str, suffix: str = "") -> str:
    value = row.get(f"{metric}{suffix}", np.nan)
    if pd.isna(value):
        return "<td>n/a</td>"
    scale, digits = SCALE.get(metric, 1), DIGITS[metric]
    low, high = row.get(f"{metric}{suffix}_ci_low", np.nan), row.get(f"{metric}{suffix}_ci_high", np.nan)
    sign = "+" if suffix else ""
    text = f"{value * scale:{sign}.{digits}f}"
    if not pd.isna(low):
        text += f" [{low * scale:{sign}.{digits}f}, {high * scale:{sign}.{digits}f}]"
    colour = ""
    if suffix == "_vs_lerp" and not pd.isna(low):  # green: better than lerp beyond doubt, red: worse
        better = low > 0 if interp.HIGHER_IS_BETTER[metric] else high < 0
        worse = high < 0 if interp.HIGHER_IS_BETTER[metric] else low > 0
        colour = " style='color:#1b7f3b'" if better else " style='color:#b00020'" if worse else ""
    return f"<td{colour}>{text}</td>"


def method_table(rows: pd.DataFrame, metrics: list[str]) -> str:
    """Methods as rows: each metric's mean [95% CI], and for PSNR the difference to lerp and the gap to the ceiling."""
    header = "<tr><th>method</th><th>triplets</th>" + "".join(
        f"<th>{METRIC_LABELS[m]}</th>" + ("<th>Δ PSNR vs lerp dB</th><th>gap to ceiling dB</th>" if m == "psnr" else "")
        for m in metrics) + "</tr>"
    body = []
    for row in rows.to_dict("records"):
        cells = "".join(_cell(row, m) + (_cell(row, m, "_vs_lerp") + _cell(row, m, "_vs_ceiling")
                                         if m == "psnr" else "") for m in metrics)
        body.append(f"<tr><td class=text>{html.escape(row['method'])}</td><td>{row['n_triplets']}</td>{cells}</tr>")
    return f"<table>{header}{''.join(body)}</table>"


def _method_bars(summary: pd.DataFrame, split: str) -> plt.Figure:
    rows = summary[(summary["split"] == split) & (summary["origin"] == "all") & (summary["level"] == "all")]
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


def _training_curves(predictor_dirs: dict[str, str]) -> plt.Figure:
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


def gallery_figure(interp_path, frames_path, title: str, limit: int = 6) -> plt.Figure | None:
    """Worst triplets first: frames 1, 2 (truth), 3, then each method's frame 2 with its error map beneath."""
    group = store.open_store(interp_path, "interp")
    picked = [str(v) for v in group["gallery_triplets"][:limit]] if group["gallery_triplets"].shape[0] else []
    if not picked:
        return None
    methods = group.attrs["methods"]
    frames_group = store.open_store(frames_path, "frames")
    position = {name: i for i, name in enumerate(store.names(frames_group))}
    columns = 3 + len(methods)
    figure, axes = plt.subplots(2 * len(picked), columns, figsize=(1.25 * columns, 2.6 * len(picked)),
                                squeeze=False, layout="constrained")
    for row, name in enumerate(picked):
        truth = frames_group[store.FRAMES][position[name]]
        predictions = group["gallery"][row]
        panels = [(truth[0], "frame 1"), (truth[1], "frame 2 (truth)"), (truth[2], "frame 3")]
        panels += [(predictions[k], method) for k, method in enumerate(methods)]
        for column, (image, label) in enumerate(panels):
            top, bottom = axes[2 * row, column], axes[2 * row + 1, column]
            top.imshow(image)
            top.set_title(label, fontsize=6)
            top.set_xticks([])
            top.set_yticks([])
            if column < 3:  # the inputs and the truth have no error map
                bottom.axis("off")
                continue
            error = np.abs(image.astype(np.float32) - truth[1]).mean(axis=-1) / 255
            bottom.imshow(error, cmap="magma", vmin=0, vmax=0.5)
            bottom.set_title("|error|", fontsize=6)
            bottom.set_xticks([])
            bottom.set_yticks([])
        axes[2 * row, 0].set_ylabel(name, fontsize=6)
    figure.suptitle(title, fontsize=9)
    return figure


def interpolation_section(summary_path, interp_stores: dict, frames_paths: dict, predictor_dirs: dict,
                          lpips_skipped: bool, gallery_limit: int = 6) -> str:
    """The interpolation section: method tables with CIs and the gap to the ceiling, bars, curves, galleries."""
    summary = pd.read_csv(summary_path, keep_default_na=False, na_values=[""])
    splits = list(dict.fromkeys(split for _, split in interp_stores))[::-1]  # test before val: the reported split
    parts = ["<h2 id=interpolation>Interpolation: frame 2 from frames 1 and 3</h2>",
             "<p>Each method predicts the middle frame of a triplet from the outer two. <i>repeat</i> copies frame "
             "1, <i>pixel_blend</i> averages frames 1 and 3 in pixel space, the latent methods decode a predicted "
             "latent2 (<i>latent_lerp</i>: the midpoint of the posterior means; <i>latent_slerp</i>: the spherical "
             "midpoint; <i>linear</i>, <i>mlp</i>, <i>unet</i>: predictors fitted on train and selected on val only), "
             "and <i>vae_ceiling</i> is the reconstruction of the true frame 2, which no latent method can beat. "
             "Arrows say which way is better; brackets are 95% bootstrap intervals over triplets; Δ vs lerp is "
             "paired on the same triplets (green or red where the interval excludes 0); the gap to the ceiling is "
             "the method minus vae_ceiling. Chamfer is EISAI's line distance, in thousandths of the image diagonal."
             + (" LPIPS was skipped: no LPIPS weights are configured (interp.lpips)." if lpips_skipped else "")
             + "</p>"]
    metrics = [m for m in ("psnr", "ssim", "latent_mse", "chamfer", "lpips", "roi_psnr", "roi_ssim")
               if m in summary and summary[m].notna().any()]
    for split in splits:
        if not (summary["split"] == split).any():  # no triplet was ingested
            parts.append(f"<p>{html.escape(split)}: no triplets to interpolate (see Data above).</p>")
            continue
        for model in dict.fromkeys(model for model, _ in interp_stores):
            rows = summary[(summary["model"] == model) & (summary["split"] == split) & (summary["origin"] == "all")
                           & (summary["level"] == "all")]
            parts.append(f"<h3>{html.escape(model)} / {html.escape(split)}</h3>" + _reading(rows) +
                         method_table(rows, [m for m in metrics if rows[m].notna().any()]))
        parts.append(figure_html(_method_bars(summary, split), f"{split}: PSNR and SSIM of each method"))
        parts.append(_breakdown(summary, split))
    parts.append("<h3>The learned predictors</h3>" + figure_html(
        _training_curves(predictor_dirs), "Latent MSE per epoch on val (solid) and train (dashed); epoch 0 is lerp, "
        "the kept weights are those of the lowest val MSE. Linear: the val MSE of the ridge strength chosen on val."))
    for (model, split), path in interp_stores.items():
        figure = gallery_figure(path, frames_paths[split], f"{model} / {split}: worst triplets first (lowest "
                                "latent_lerp PSNR); error maps: mean |prediction - truth| over RGB", gallery_limit)
        if figure is not None:
            parts.append(figure_html(figure, f"{model} / {split} gallery"))
    return "".join(parts)


def _reading(rows: pd.DataFrame) -> str:
    """One line: the best method that does not see frame 2, its margin over lerp, and the ceiling."""
    by_method = rows.set_index("method")
    if "latent_lerp" not in by_method.index:
        return ""
    candidates = by_method.drop(index=[m for m in ("vae_ceiling",) if m in by_method.index])
    best = candidates["psnr"].idxmax()
    line = (f"<p>Best without frame 2: <b>{html.escape(best)}</b> at {candidates.loc[best, 'psnr']:.2f} dB "
            f"({candidates.loc[best, 'psnr_vs_lerp']:+.2f} dB vs latent_lerp")
    if "vae_ceiling" in by_method.index:
        line += f"; the VAE ceiling is {by_method.loc['vae_ceiling', 'psnr']:.2f} dB"
    return line + ").</p>"


def _breakdown(summary: pd.DataFrame, split: str) -> str:
    """Mean PSNR of each method by origin and, on annotated splits, by difficulty level."""
    rows = summary[(summary["split"] == split) & ((summary["origin"] != "all") | (summary["level"] != "all"))]
    if rows.empty:
        return ""
    rows = rows.assign(group=np.where(rows["level"] != "all", "level " + rows["level"].astype(str), rows["origin"]))
    table = rows.pivot_table(index=["model", "method"], columns="group", values="psnr", sort=False)
    return (f"<p>{html.escape(split)}: mean PSNR dB (higher is better) by origin and difficulty level "
            "(0 easy, 1 medium, 2 hard, ATD-12K's annotation)</p>" +
            table.to_html(float_format=lambda v: f"{v:.2f}", border=0))


def geometry_section(geometry_outputs: dict[str, dict], twins: dict[str, str], twin_records: dict[str, str]) -> str:
    """The latent-geometry section: trajectories, channels, clusters and probes of each latent space."""
    parts = ["<h2 id=geometry>Latent geometry</h2>"]
    for model, twin in twins.items():
        record = json.loads(Path(twin_records[model]).read_text())
        parts.append(f"<p>The {html.escape(model)} model's encoder was not fine-tuned: its latents are "
                     f"{html.escape(twin)}'s (largest difference {record['max_abs_difference']:.3g}), so its geometry, "
                     "predictors and embeddings are shown once, under " + html.escape(twin) + ".</p>")
    if len(geometry_outputs) > 1:  # the encoder was fine-tuned too: its latent space beside the pretrained one
        parts.append(_spaces_side_by_side(geometry_outputs))
    for model, paths in geometry_outputs.items():
        summary = json.loads(Path(paths["summary"]).read_text())
        trajectories = pd.read_csv(paths["trajectories"])
        parts.append(f"<h3>{html.escape(model)}: trajectories 1 → 2 → 3</h3>" + _trajectory_reading(summary))
        parts.append(figure_html(_trajectory_figure(trajectories, model),
                                 "Midpoint and line deviation (relative to |latent3 - latent1|), the angle between the "
                                 "two steps, and how the deviation grows with pixel motion"))
        channels = pd.read_csv(paths["channels"])
        parts.append(f"<h3>{html.escape(model)}: channels</h3>" + _channel_reading(channels, summary) +
                     channels.drop(columns=["model"]).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
                     + "<p>Units: latent units (posterior means, not multiplied by the scaling factor). The prior is "
                     "N(0, 1) per element: std 1, skew 0, kurtosis 0, KL 0 (nats; lower is closer).</p>")
        parts.append(figure_html(_channel_figure(pd.read_csv(paths["histograms"]),
                                                 pd.read_csv(paths["correlation"], index_col=0), channels, model),
                                 "Per-channel histograms with the N(0, 1) prior, and the channel correlations"))
        parts.append(f"<h3>{html.escape(model)}: clusters and probes</h3>" + _structure_html(summary))
    return "".join(parts)


def _trajectory_reading(summary: dict) -> str:
    medians = summary["trajectories"]["all"]
    rho = summary["trajectories"]["spearman_with_pixel_motion"].get("midpoint_deviation")
    text = (f"<p>Median over {medians['triplets']} triplets: latent2 is {medians['midpoint_deviation']:.2f} of the "
            f"1→3 distance away from the lerp midpoint and {medians['line_deviation']:.2f} away from the straight "
            f"line; the path turns by {medians['angle_deg']:.0f}° at latent2 (0° is straight on); step ratio "
            f"{medians['step_ratio']:.2f} (1 is halfway). ")
    text += ("The middle latent is far off the line between its neighbours: lerp cannot be exact. "
             if medians["line_deviation"] > 0.25
             else "The middle latent lies close to the line between its neighbours. ")
    if rho:
        text += (f"Spearman ρ between midpoint deviation and pixel motion: {rho['spearman_rho']:+.2f} "
                 f"(p = {rho['p_value']:.2g}).")
    return text + "</p>"


def _trajectory_figure(table: pd.DataFrame, model: str) -> plt.Figure:
    figure, axes = plt.subplots(1, 4, figsize=(15, 3.4), layout="constrained")
    for column, colour in (("midpoint_deviation", "#4C72B0"), ("line_deviation", "#DD8452")):
        axes[0].hist(table[column].dropna(), bins=30, alpha=0.6, color=colour, label=column)
    axes[0].set_xlabel("deviation / |latent3 - latent1|")
    axes[0].legend(fontsize=7, frameon=False)
    axes[1].hist(table["angle_deg"].dropna(), bins=30, color="#55A868")
    axes[1].set_xlabel("angle between the steps (degrees)")
    for origin, rows in table.groupby("origin"):
        axes[2].scatter(rows["pixel_motion"], rows["midpoint_deviation"], s=8, alpha=0.7, label=origin)
    axes[2].set_xlabel("pixel motion: mean |frame3 - frame1|")
    axes[2].set_ylabel("midpoint deviation")
    axes[2].legend(fontsize=7, frameon=False)
    by = "level" if table["level"].notna().any() else "origin"
    groups = [(str(int(k)) if by == "level" else str(k), g["midpoint_deviation"].dropna())
              for k, g in table.dropna(subset=[by]).groupby(by)]
    axes[3].boxplot([g for _, g in groups], tick_labels=[k for k, _ in groups])
    axes[3].set_xlabel(by + (" (0 easy, 2 hard)" if by == "level" else ""))
    axes[3].set_ylabel("midpoint deviation")
    figure.suptitle(f"{model}: latent trajectories", fontsize=10)
    return figure


def _channel_reading(channels: pd.DataFrame, summary: dict) -> str:
    return (f"<p>Channel standard deviations run from {channels['std'].min():.2f} to {channels['std'].max():.2f} "
            f"(the prior's is 1); the aggregate KL from N(0, I) totals {channels['aggregate_kl'].sum():.3g} nats per "
            f"position and the posterior KL {channels['posterior_kl'].sum():.3g}; mean |correlation| between "
            f"channels {summary['channels']['mean_abs_correlation_off_diagonal']:.2f}.</p>")


def _channel_figure(histograms: pd.DataFrame, correlation: pd.DataFrame, channels: pd.DataFrame,
                    model: str) -> plt.Figure:
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.6), layout="constrained", width_ratios=[2.2, 1])
    for channel, rows in histograms.groupby("channel"):
        centres, widths = (rows["bin_low"] + rows["bin_high"]) / 2, rows["bin_high"] - rows["bin_low"]
        density = rows["count"] / max(rows["count"].sum(), 1) / widths
        axes[0].plot(centres, density, label=f"channel {channel}")
    grid = np.linspace(histograms["bin_low"].min(), histograms["bin_high"].max(), 200)
    axes[0].plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k--", linewidth=0.8, label="N(0, 1) prior")
    axes[0].set_xlabel("latent value")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=7, frameon=False)
    image = axes[1].imshow(correlation.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    axes[1].set_xticks(range(len(correlation)))
    axes[1].set_yticks(range(len(correlation)))
    axes[1].set_title("channel correlation", fontsize=9)
    figure.colorbar(image, ax=axes[1])
    figure.suptitle(f"{model}: latent channels", fontsize=10)
    return figure


def _structure_html(summary: dict) -> str:
    clusters, probes = summary["clusters"], summary["probes"]
    rows = [("k-means clusters (k)", f"{clusters['k']} on {clusters['pca_components']} principal components", ""),
            ("adjusted Rand index, clusters vs origin", f"{clusters['adjusted_rand_index_origin']:.3f}",
             "0: unrelated, 1: the clusters are the origins"),
            ("triplets whose 3 frames share a cluster", f"{clusters['triplets_in_one_cluster']:.0%}",
             "high: clusters follow content, not frame position")]
    for target, probe in probes.items():
        label = f"linear probe for {target} ({probe.get('train_split')} → {probe.get('test_split')})"
        if "skipped" in probe:
            rows.append((label, "skipped", probe["skipped"]))
        else:
            rows.append((label, f"{probe['accuracy']:.1%} accuracy", f"chance (majority class) {probe['chance']:.1%}"
                         f"; {probe['train_frames']} train / {probe['test_frames']} test frames"))
    body = "".join(f"<tr><td class=text>{html.escape(a)}</td><td>{html.escape(b)}</td>"
                   f"<td class=text>{html.escape(c)}</td></tr>" for a, b, c in rows)
    reading = ""
    origin = probes.get("origin", {})
    if "accuracy" in origin:
        margin = origin["accuracy"] - origin["chance"]
        reading = (f"<p>A linear read-out tells a frame's origin {margin:+.0%} above chance: the latents "
                   f"{'do' if margin > 0.1 else 'barely'} encode the studio style linearly.</p>")
    return reading + f"<table><tr><th>measure</th><th>value</th><th>reading</th></tr>{body}</table>"


def _spaces_side_by_side(geometry_outputs: dict[str, dict]) -> str:
    """One row per latent space: how far from the prior, how straight the trajectories, what the probes read."""
    rows = []
    for model, paths in geometry_outputs.items():
        summary = json.loads(Path(paths["summary"]).read_text())
        channels = pd.read_csv(paths["channels"])
        origin = summary["probes"].get("origin", {})
        rows.append({"latent space": model, "channel std (min–max)": f"{channels['std'].min():.2f}–"
                     f"{channels['std'].max():.2f}", "aggregate KL to N(0, I), nats ↓": channels["aggregate_kl"].sum(),
                     "posterior KL, nats": channels["posterior_kl"].sum(),
                     "median midpoint deviation ↓": summary["trajectories"]["all"]["midpoint_deviation"],
                     "origin probe accuracy": origin.get("accuracy", np.nan)})
    return ("<p>Before and after fine-tuning the encoder (per position; deviations relative to |latent3 - "
            "latent1|):</p>" + pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0))
