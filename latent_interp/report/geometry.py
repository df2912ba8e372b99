"""Latent geometry: per latent space, the trajectories 1 -> 2 -> 3, the channels against the N(0, 1) prior, the
clusters and the linear probes; with a fine-tuned encoder, the two spaces side by side."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from latent_interp import store
from latent_interp.report import tables
from latent_interp.report.context import Context
from latent_interp.report.page import Section


def trajectory_reading(summary: dict) -> str:
    medians = summary["trajectories"]["all"]
    rho = summary["trajectories"]["spearman_with_pixel_motion"].get("midpoint_deviation")
    text = (f"Median over {medians['triplets']} triplets: latent2 is {medians['midpoint_deviation']:.2f} of the "
            f"1→3 distance away from the lerp midpoint and {medians['line_deviation']:.2f} away from the straight "
            f"line; the path turns by {medians['angle_deg']:.0f}° at latent2 (0° is straight on); step ratio "
            f"{medians['step_ratio']:.2f} (1 is halfway). ")
    text += ("The middle latent is far off the line between its neighbours: lerp cannot be exact. "
             if medians["line_deviation"] > 0.25
             else "The middle latent lies close to the line between its neighbours. ")
    if rho:
        text += (f"Spearman ρ between midpoint deviation and pixel motion: {rho['spearman_rho']:+.2f} "
                 f"(p = {rho['p_value']:.2g}).")
    return text


def trajectory_figure(table: pd.DataFrame, model: str) -> plt.Figure:
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


def posterior_kl_text(channels: pd.DataFrame) -> str:
    """The posterior KL total, or why there is none (a deterministic encoder has no posterior variance)."""
    total = channels["posterior_kl"].sum(min_count=1)
    return "none (a deterministic encoder has no posterior)" if pd.isna(total) else f"{total:.3g}"


def channel_reading(channels: pd.DataFrame, summary: dict) -> str:
    return (f"Channel standard deviations run from {channels['std'].min():.2f} to {channels['std'].max():.2f} "
            f"(the prior's is 1); the aggregate KL from N(0, I) totals {channels['aggregate_kl'].sum():.3g} nats per "
            f"position as stored, {channels['scaled_aggregate_kl'].sum():.3g} scaled as a diffusion model sees the "
            f"latents, and the posterior KL {posterior_kl_text(channels)}; mean |correlation| between "
            f"channels {summary['channels']['mean_abs_correlation_off_diagonal']:.2f}.")


def channel_figure(histograms: pd.DataFrame, correlation: pd.DataFrame, model: str) -> plt.Figure:
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


def structure(summary: dict) -> tuple[str, tables.Table]:
    """A reading of the origin probe and the table of clusters and probes."""
    clusters, probes = summary["clusters"], summary["probes"]
    table = tables.Table(["measure", "value", "reading"])
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
    table.rows = [[tables.text(a), tables.text(b), tables.text(c)] for a, b, c in rows]
    origin = probes.get("origin", {})
    text = ""
    if "accuracy" in origin:
        margin = origin["accuracy"] - origin["chance"]
        text = (f"A linear read-out tells a frame's origin {margin:+.0%} above chance: the latents "
                f"{'do' if margin > 0.1 else 'barely'} encode the studio style linearly.")
    return text, table


def spaces_side_by_side(ctx: Context) -> tables.Table:
    """One row per latent space: how far from the prior, how straight the trajectories, what the probes read."""
    rows = []
    for model, paths in ctx.inputs.geometry.items():
        summary = ctx.read_json(paths["summary"])
        channels = pd.read_csv(paths["channels"])
        origin = summary["probes"].get("origin", {})
        rows.append({"latent space": model,
                     "channel std (min–max)": f"{channels['std'].min():.2f}–{channels['std'].max():.2f}",
                     "aggregate KL to N(0, I), nats ↓": channels["aggregate_kl"].sum(),
                     "scaled aggregate KL, nats ↓": channels["scaled_aggregate_kl"].sum(),
                     "posterior KL, nats": posterior_kl_text(channels),
                     "median midpoint deviation ↓": summary["trajectories"]["all"]["midpoint_deviation"],
                     "origin probe accuracy": origin.get("accuracy", np.nan)})
    return tables.from_frame(pd.DataFrame(rows), default_digits=3)


def section(ctx: Context) -> Section | None:
    if not ctx.inputs.geometry:
        return None
    twins = []
    for model, twin in ctx.inputs.twins.items():  # the digest reconstruct checked against twin's latents
        decoder = store.open_store(ctx.inputs.recon[(model, ctx.inputs.splits[0])], "recon").attrs["vae"]
        twins.append({"model": model, "twin": twin, "encoder_sha256": decoder["encoder_sha256"]})
    spaces = []
    for model, paths in ctx.inputs.geometry.items():
        summary = ctx.read_json(paths["summary"])
        channels = pd.read_csv(paths["channels"])
        reading, probes = structure(summary)
        spaces.append({
            "model": model, "trajectory_reading": trajectory_reading(summary),
            "trajectories": ctx.figures.save(
                trajectory_figure(pd.read_csv(paths["trajectories"]), model), f"trajectories_{model}",
                "Midpoint and line deviation (relative to |latent3 - latent1|), the angle between the two steps, and "
                "how the deviation grows with pixel motion"),
            "channel_reading": channel_reading(channels, summary),
            "channels": tables.from_frame(channels.drop(columns=["model"])),
            "channel_figure": ctx.figures.save(
                channel_figure(pd.read_csv(paths["histograms"]), pd.read_csv(paths["correlation"], index_col=0),
                               model), f"channels_{model}",
                "Per-channel histograms with the N(0, 1) prior, and the channel correlations"),
            "probe_reading": reading, "probes": probes})
    return Section("geometry", "Latent geometry", "geometry.html.j2", {
        "twins": twins, "spaces": spaces,
        "side_by_side": spaces_side_by_side(ctx) if len(ctx.inputs.geometry) > 1 else None},
        parts=[(f"geometry-{s['model']}", f"{s['model']} latent space") for s in spaces])
