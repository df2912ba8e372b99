"""Motion in the report: the flow of each panel triplet as a colour wheel with its occlusion mask, the share of the
lerp-to-ceiling gap each motion method closes by motion magnitude, one line of reading per motion method, and the
equivariance curves of every latent space."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import hsv_to_rgb  # noqa: E402

from latent_interp import interp, store  # noqa: E402
from latent_interp.equivariance import LOST_ABOVE  # noqa: E402
from latent_interp.report import tables  # noqa: E402
from latent_interp.report.context import Context  # noqa: E402
from latent_interp.report.figures import jpeg_uri  # noqa: E402
from latent_interp.report.triplets import read_rows  # noqa: E402

# The methods that move pictures or latents along flow, in the order the readings and the plot give them.
MOTION_METHODS = ("pixel_flow", "latent_flow", *(f"decoder_flow@{k}" for k in range(interp.MAX_LEVELS)), "flow_unet",
                  "recon_flow", "pixel_flow_oracle", "latent_flow_oracle")
# The warping depths, from the latent grid to the picture: (label, estimated method, oracle method or None).
DEPTHS = (("latent grid", "latent_flow", "latent_flow_oracle"),
          *((f"decoder level {k}", f"decoder_flow@{k}", f"decoder_flow_oracle@{k}") for k in range(interp.MAX_LEVELS)),
          ("reconstructions", "recon_flow", None))
READING_CONTROLS = {"pixel_flow": "pixel_blend", "recon_flow": "pixel_blend"}  # besides lerp and the ceiling


def flow_colour(flow: np.ndarray, largest: float | None = None) -> np.ndarray:
    """[H, W, 2] flow -> uint8 [H, W, 3] on the usual colour wheel: hue the direction (right red, down yellow-green,
    left cyan, up violet), saturation the magnitude relative to ``largest`` (default the largest in the image),
    white where nothing moves."""
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    largest = largest or float(magnitude.max()) or 1.0
    hue = (np.arctan2(flow[..., 1], flow[..., 0]) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.clip(magnitude / largest, 0, 1), np.ones_like(hue)], axis=-1)
    return np.rint(hsv_to_rgb(hsv) * 255).astype(np.uint8)


def occlusion_image(consistent: np.ndarray, still: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: red where F_1->3 fails the forward-backward check (occluded or unreliable), grey where the
    methods keep the plain blend (nothing moves), white elsewhere."""
    image = np.full((*consistent.shape, 3), 255, np.uint8)
    image[still > 0] = (190, 190, 190)
    image[consistent == 0] = (214, 39, 40)
    return image


def add_flow_images(ctx: Context, keys: list[str]) -> None:
    """``payload["images"][key]["flow"]``: [flow colour uri, occlusion uri, largest motion in px] of every panel
    triplet that has a flow store."""
    width = ctx.settings.image_width
    by_split: dict[str, list[str]] = {}
    for key in keys:
        split, name = key.split("/", 1)
        if split in ctx.inputs.flow and key in ctx.payload["images"]:
            by_split.setdefault(split, []).append(name)
    for split, names in by_split.items():
        group = store.open_store(ctx.inputs.flow[split], "flow")
        position = {name: i for i, name in enumerate(store.names(group))}
        names = [name for name in names if name in position]
        indices = [position[name] for name in names]
        flows, consistent = read_rows(group["flow_ends"], indices), read_rows(group["consistent"], indices)
        still = read_rows(group["still"], indices)
        for name, index in zip(names, indices):
            flow = flows[index][0].astype(np.float32)  # F_1->3
            largest = float(np.hypot(flow[..., 0], flow[..., 1]).max())
            ctx.payload["images"][f"{split}/{name}"]["flow"] = [
                jpeg_uri(flow_colour(flow, largest), width), jpeg_uri(occlusion_image(consistent[index][0],
                                                                                      still[index]), width),
                round(largest, 1)]


def readings(rows: pd.DataFrame) -> list[str]:
    """One line per motion method of one model and split (the summary's overall rows): its PSNR, what it gains over
    lerp and its control, and the share of lerp's gap to the ceiling it closes."""
    by_method = rows.set_index("method")
    lines = []
    for method in MOTION_METHODS:
        if method not in by_method.index:
            continue
        row = by_method.loc[method]
        line = f"{method}{' (oracle: sees frame 2)' if method in interp.SEES_FRAME2 else ''}: {row['psnr']:.2f} dB"
        control = READING_CONTROLS.get(method)
        if control in by_method.index:
            line += f", {row['psnr'] - by_method.loc[control, 'psnr']:+.2f} dB vs {control}"
        line += f", {row['psnr_vs_lerp']:+.2f} dB vs latent_lerp"
        if not tables.missing(row.get("gap_closed")):
            line += (f", closes {row['gap_closed']:.0%} [{row['gap_closed_ci_low']:.0%}, "
                     f"{row['gap_closed_ci_high']:.0%}] of lerp's gap to the ceiling")
        lines.append(line + ".")
    return lines


def gap_by_motion(summary: pd.DataFrame, split: str) -> plt.Figure | None:
    """Per model, the share of the lerp-to-ceiling gap each motion method closes in each motion bin, with its
    paired 95% interval."""
    if "motion" not in summary:
        return None
    rows = summary[(summary["split"] == split) & (summary["motion"] != "all")]
    if rows.empty or rows["gap_closed"].isna().all():
        return None
    models = list(dict.fromkeys(rows["model"]))
    figure, axes = plt.subplots(1, len(models), figsize=(4.4 * len(models), 3.4), squeeze=False, sharey=True,
                                layout="constrained")
    for axis, model in zip(axes[0], models):
        by_model = rows[rows["model"] == model]
        bins = sorted(by_model["motion"].unique())
        centres = [by_model[by_model["motion"] == b][["motion_low", "motion_high"]].iloc[0].mean() for b in bins]
        for index, method in enumerate(("pixel_blend", *MOTION_METHODS)):
            values = by_model[by_model["method"] == method].set_index("motion").reindex(bins)
            if values["gap_closed"].isna().all():
                continue
            errors = np.nan_to_num(np.abs([values["gap_closed"] - values["gap_closed_ci_low"],
                                           values["gap_closed_ci_high"] - values["gap_closed"]]))
            # more methods than the default cycle's ten colours: one of tab20's each, so no two lines share one
            axis.errorbar(centres, values["gap_closed"], yerr=errors, marker="o", capsize=2, label=method,
                          linestyle="--" if method in interp.SEES_FRAME2 else "-", color=plt.cm.tab20(index % 20))
        axis.axhline(0, color="k", linewidth=0.8)
        axis.axhline(1, color="#888", linewidth=0.8, linestyle=":")
        axis.set_xlabel("mean motion |F_1→3| (px, bin centre)")
        axis.set_title(model, fontsize=9)
    axes[0, 0].set_ylabel("share of lerp's gap to the ceiling closed")
    axes[0, -1].legend(fontsize=7, frameon=False)
    figure.suptitle(f"{split}: 0 = latent_lerp, 1 = the VAE's ceiling; dashed: oracles (see frame 2)", fontsize=9)
    return figure


def gap_by_depth(summary: pd.DataFrame, split: str) -> plt.Figure | None:
    """Per model, the share of the lerp-to-ceiling gap closed by warping at each depth, from the latent grid
    (latent_flow) through the decoder's levels (decoder_flow@k) to its reconstructions (recon_flow), along the
    estimated flows (solid) and the oracle flows (dashed), with pixel_flow and its oracle as the bounds."""
    if "motion" not in summary:
        return None
    rows = summary[(summary["split"] == split) & (summary["motion"] == "all") & (summary["origin"] == "all")
                   & (summary["level"].astype(str) == "all")]
    if not rows["method"].isin([f"decoder_flow@{k}" for k in range(interp.MAX_LEVELS)]).any():
        return None
    models = list(dict.fromkeys(rows["model"]))
    figure, axes = plt.subplots(1, len(models), figsize=(4.4 * len(models), 3.4), squeeze=False, sharey=True,
                                layout="constrained")
    for axis, model in zip(axes[0], models):
        by_method = rows[rows["model"] == model].set_index("method")
        depths = [depth for depth in DEPTHS if depth[1] in by_method.index]
        positions = np.arange(len(depths))
        for column, style, label in ((1, "-", "along the estimated flow"), (2, "--", "oracle (sees frame 2)")):
            methods = [depth[column] for depth in depths]
            values = by_method.reindex([m for m in methods if m is not None])
            if values.empty or values["gap_closed"].isna().all():
                continue
            where = positions[[m is not None for m in methods]]
            errors = np.nan_to_num(np.abs([values["gap_closed"] - values["gap_closed_ci_low"],
                                           values["gap_closed_ci_high"] - values["gap_closed"]]))
            axis.errorbar(where, values["gap_closed"], yerr=errors, marker="o", capsize=2, linestyle=style,
                          color="C0", label=label)
        for method, style in (("pixel_flow", "-"), ("pixel_flow_oracle", "--")):
            if method in by_method.index and not tables.missing(by_method.loc[method, "gap_closed"]):
                axis.axhline(by_method.loc[method, "gap_closed"], color="C2", linestyle=style, linewidth=1,
                             label=f"{method} (bound)")
        axis.axhline(0, color="k", linewidth=0.8)
        axis.set_xticks(positions, [depth[0] for depth in depths], rotation=30, ha="right", fontsize=7)
        axis.set_title(model, fontsize=9)
    axes[0, 0].set_ylabel("share of lerp's gap to the ceiling closed")
    axes[0, -1].legend(fontsize=7, frameon=False)
    figure.suptitle(f"{split}: where the ends are warped, from the latent grid to the picture (95% paired CIs)",
                    fontsize=9)
    return figure


def depth_reading(rows: pd.DataFrame) -> str | None:
    """One line for a model and split (the summary's overall rows): the depth at which warping along the estimated
    flow closes most of the gap, against the latent grid's and the pixels'."""
    by_method = rows.set_index("method")
    closed = {label: by_method.loc[method, "gap_closed"] for label, method, _ in DEPTHS
              if method in by_method.index and not tables.missing(by_method.loc[method, "gap_closed"])}
    if len(closed) < 3:
        return None
    best = max(closed, key=closed.get)
    line = (f"Warping inside the decoder: {', '.join(f'{label} {value:.0%}' for label, value in closed.items())} "
            f"of lerp's gap closed; the most at the {best}")
    if "pixel_flow" in by_method.index and not tables.missing(by_method.loc["pixel_flow", "gap_closed"]):
        line += f" (pixel_flow: {by_method.loc['pixel_flow', 'gap_closed']:.0%})"
    return line + "."


def equivariance_frames(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    curves = [pd.read_csv(paths["curve"]) for paths in ctx.inputs.equivariance.values()]
    triplets = [pd.read_csv(paths["triplets"]) for paths in ctx.inputs.equivariance.values()]
    return (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
            pd.concat(triplets, ignore_index=True) if triplets else pd.DataFrame())


def equivariance_figure(curve: pd.DataFrame, triplets: pd.DataFrame) -> plt.Figure | None:
    """Per latent space: the shift error against the shift, the PSNR lost by moving the latent instead of
    re-encoding, and on the triplets the error of latent1 moved along the oracle flow against motion."""
    if curve.empty:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.5), layout="constrained")
    for model, rows in curve.groupby("model", sort=False):
        mean = rows.groupby("shift_px")[["latent_error", "psnr_lost"]].mean()
        axes[0].plot(mean.index, mean["latent_error"], marker="o", label=model)
        axes[1].plot(mean.index, mean["psnr_lost"], marker="o", label=model)
    for axis in axes[:2]:
        axis.set_xscale("log", base=2)
        axis.set_xlabel("shift (px; whole cells at multiples of f)")
    axes[0].set_ylabel("moved vs re-encoded latent\n(MSE / latent variance) ↓")
    axes[1].set_ylabel("PSNR lost by moving the latent (dB) ↓")
    for model, rows in triplets.groupby("model", sort=False):
        axes[2].scatter(rows["motion_px"], rows["warped_error"], s=10, label=f"{model}: warped")
        axes[2].scatter(rows["motion_px"], rows["unwarped_error"], s=10, marker="x", alpha=0.5,
                        label=f"{model}: unwarped")
    axes[2].set_xlabel("mean motion |F_1→3| (px)")
    axes[2].set_ylabel("latent2 vs latent1 (MSE / variance) ↓")
    axes[2].set_title("latent1 moved along the oracle flow 2→1", fontsize=9)
    for axis in axes:
        axis.legend(fontsize=7, frameon=False)
    return figure


def layers_figure(ctx: Context) -> plt.Figure | None:
    """Per latent space: the layer error (features of the shifted frames against the unshifted features moved by
    s / stride, relative to their variance) at each level of the encoder and then the decoder, one line per shift;
    a hollow marker where the shift is whole cells at that level."""
    layers = [pd.read_csv(paths["layers"]) for paths in ctx.inputs.equivariance.values() if paths.get("layers")]
    if not layers or all(table.empty for table in layers):
        return None
    figure, axes = plt.subplots(1, len(layers), figsize=(4.6 * len(layers), 3.6), squeeze=False, sharey=True,
                                layout="constrained")
    for axis, table in zip(axes[0], layers):
        mean = table.groupby(["shift_px", "depth", "part", "stride", "whole_cells"], as_index=False)["error"].mean()
        for (pixels, rows), colour in zip(mean.groupby("shift_px"), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
            axis.plot(rows["depth"], rows["error"].clip(lower=1e-8), marker="o", color=colour, label=f"{pixels} px")
            whole = rows[rows["whole_cells"]]
            axis.scatter(whole["depth"], whole["error"].clip(lower=1e-8), s=40, facecolors="white", edgecolors=colour,
                         zorder=3)
        ticks = mean.drop_duplicates("depth").sort_values("depth")
        axis.set_xticks(ticks["depth"], [f"{'E' if part == 'encoder' else 'D'} /{stride}"
                                         for part, stride in zip(ticks["part"], ticks["stride"])], fontsize=7)
        axis.axvline(ticks.loc[ticks["part"] == "encoder", "depth"].max() + 0.5, color="#888", linewidth=0.8)
        axis.set_yscale("log")
        axis.set_xlabel("level: E encoder, D decoder; /stride")
        axis.set_title(str(table["model"].iloc[0]), fontsize=9)
    axes[0, 0].set_ylabel("shifted vs moved features\n(MSE / feature variance) ↓")
    axes[0, -1].legend(fontsize=7, frameon=False, title="shift", title_fontsize=7)
    figure.suptitle("Equivariance layer by layer: hollow markers where the shift is whole cells at that level",
                    fontsize=9)
    return figure


def layers_reading(ctx: Context) -> list[str]:
    """One line per latent space: where a 1 px shift is first lost and where its error rises most, from the
    summary's ``layers``."""
    lines = []
    for model, paths in ctx.inputs.equivariance.items():
        layers = (ctx.read_json(paths["summary"]).get("layers") or {}).get("1px")
        if layers:
            errors = list(layers["errors"].values())
            lost = layers.get("first_lost_at") or "no level"
            lines.append(f"{model}: a 1 px shift is first lost at {lost} (error above {LOST_ABOVE:g} of the "
                         f"features' variance), and its error rises most at {layers['largest_rise_at']} "
                         f"(+{layers['largest_rise']:.3f}); {errors[0]:.3f} at the encoder's first level, "
                         f"{errors[-1]:.3f} at the decoder's last.")
    return lines


def equivariance_reading(ctx: Context) -> list[str]:
    lines = []
    for model, paths in ctx.inputs.equivariance.items():
        result = ctx.read_json(paths["summary"])
        sub, cell, trip = result.get("subcell"), result.get("cell"), result.get("triplets", {})
        if not sub or not cell:
            continue
        line = (f"{model}: a latent moved by less than a cell is {sub['latent_error']:.2f} of the latent variance "
                f"away from the shifted frame's own latent (whole cells: {cell['latent_error']:.2f}); decoding it "
                f"loses {sub['psnr_lost']:.2f} dB against re-encoding (whole cells: {cell['psnr_lost']:.2f} dB)")
        if trip.get("count"):
            line += (f". On the {trip['count']} test triplets, latent1 moved along the oracle flow is "
                     f"{trip['median_warped_error']:.2f} of the variance from latent2 (median; unwarped "
                     f"{trip['median_unwarped_error']:.2f})")
        lines.append(line + ".")
    return lines
