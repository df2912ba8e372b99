"""The VAEs side by side (``results/compare/vaes.csv``): one row per VAE with the best of each column marked, a bar
chart of the figures that decide it, and the VAE switcher that the embeddings and galleries follow."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from latent_interp.compare import BETTER  # noqa: E402
from latent_interp.report import motion, tables  # noqa: E402
from latent_interp.report.context import Context  # noqa: E402
from latent_interp.report.page import Section  # noqa: E402

# column label, table column, digits, scale (what the reader sees: ms, KiB), whether a paired Δ exists
COLUMNS = [
    ("recon PSNR dB ↑", "recon_psnr", 2, 1.0, True),
    ("recon SSIM ↑", "recon_ssim", 4, 1.0, True),
    ("lerp gap to own ceiling dB ↓", "lerp_gap_db", 2, 1.0, True),
    ("best learned gap dB ↓", "best_gap_db", 2, 1.0, True),
    ("latent_flow gap dB ↓", "latent_flow_gap_db", 2, 1.0, True),
    ("midpoint deviation ↓", "midpoint_deviation", 3, 1.0, True),
    ("prior KL (scaled) ↓", "prior_kl", 3, 1.0, False),
    ("sub-cell shift error ↓", "shift_error_subcell", 3, 1.0, False),
    ("latent KiB / frame ↓", "latent_bytes", 1, 1 / 1024, False),
    ("encode ms / image ↓", "encode_ms_per_image", 1, 1.0, False),
    ("decode ms / image ↓", "decode_ms_per_image", 1, 1.0, False),
]


def headline_split(table: pd.DataFrame) -> str:
    """The split the comparison leads with: test when present (the reported one), else the last interpolated."""
    splits = list(dict.fromkeys(table["split"]))
    interpolated = [s for s in splits if table.loc[table["split"] == s, "lerp_gap_db"].notna().any()]
    return "test" if "test" in splits else (interpolated or splits)[-1]


def best_values(rows: pd.DataFrame) -> dict[str, float]:
    """Per column, the best value among the VAEs (ties all marked)."""
    best = {}
    for _, column, _, _, _ in COLUMNS:
        values = pd.to_numeric(rows[column], errors="coerce").dropna()
        if len(values) > 1 and values.nunique() > 1:
            best[column] = values.max() if BETTER[column] else values.min()
    return best


def vae_table(rows: pd.DataFrame, baseline: str) -> tables.Table:
    """One row per VAE: its figures, Δ vs the baseline with the paired CI under the compared ones, best marked ★."""
    best = best_values(rows)
    table = tables.Table(["VAE", "family", "latent C×h×w", *[label for label, *_ in COLUMNS], "best learned"],
                         caption=f"★ best in the column. Brackets: the paired difference to {baseline} on the same "
                                 "triplets with its 95% bootstrap interval (green or red where it excludes 0, by "
                                 "which way is better).")
    for row in rows.to_dict("records"):
        cells = [tables.text(row["model"] + (" (baseline)" if row["model"] == baseline else "")),
                 tables.text(row["family"] + ("" if row["posterior"] == "gaussian" else ", deterministic")),
                 tables.text(row["latent_shape"].replace(" x ", "×"))]
        for _, column, digits, scale, paired in COLUMNS:
            value = row[column]
            cell = tables.number(value, digits, scale=scale)
            if column in best and not tables.missing(value) and np.isclose(value, best[column]):
                cell.text, cell.tone = cell.text + " ★", "best"
            if paired and row["model"] != baseline and not tables.missing(row[f"{column}_vs_baseline"]):
                low, high = row[f"{column}_vs_baseline_ci_low"], row[f"{column}_vs_baseline_ci_high"]
                delta = tables.number(row[f"{column}_vs_baseline"], digits, low, high, signed=True)
                cell.title = f"vs {baseline}: {delta.text}"
                cell.text += f" (Δ {delta.text})"
                cell.tone = cell.tone or tables.difference_tone(low, high, BETTER[column])
            cells.append(cell)
        cells.append(tables.text(row["best_learned"]))
        table.rows.append(cells)
    return table


def breakdown_table(table: pd.DataFrame) -> tables.Table:
    """Every split, origin and level: the compared figures per VAE (the whole of vaes.csv, less the CIs)."""
    columns = ["model", "split", "origin", "level", "n_triplets", "recon_psnr", "recon_ssim", "lerp_gap_db",
               "best_gap_db", "latent_flow_gap_db", "midpoint_deviation"]
    frame = table[columns].copy()
    frame["level"] = frame["level"].astype(str)
    return tables.from_frame(frame, {"recon_psnr": 2, "recon_ssim": 4, "lerp_gap_db": 2, "best_gap_db": 2,
                                     "latent_flow_gap_db": 2, "midpoint_deviation": 3})


def bars(rows: pd.DataFrame, baseline: str, split: str) -> plt.Figure:
    """Reconstruction PSNR and the two interpolation gaps per VAE, with each VAE's paired CI against the baseline
    drawn around its bar (the baseline's bar has none)."""
    panels = [("recon_psnr", "reconstruction PSNR (dB), higher is better"),
              ("lerp_gap_db", "lerp gap to own ceiling (dB), lower is better"),
              ("best_gap_db", "best learned gap to own ceiling (dB), lower is better")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.5 + 0.45 * len(rows) + 1.2))
    names = rows["model"].tolist()
    positions = np.arange(len(names))
    for axis, (column, title) in zip(axes, panels):
        values = pd.to_numeric(rows[column], errors="coerce").to_numpy(float)
        delta = rows[f"{column}_vs_baseline"].to_numpy(float)
        low = values - delta + rows[f"{column}_vs_baseline_ci_low"].to_numpy(float)
        high = values - delta + rows[f"{column}_vs_baseline_ci_high"].to_numpy(float)
        errors = np.nan_to_num(np.vstack([values - low, high - values]), nan=0.0)
        colours = ["#888888" if name == baseline else "#3b75af" for name in names]
        axis.barh(positions, np.nan_to_num(values), xerr=np.abs(errors), color=colours, capsize=3)
        axis.set_yticks(positions, names)
        axis.invert_yaxis()
        axis.set_title(title, fontsize=9)
    figure.suptitle(f"{split}: VAEs side by side (grey: baseline {baseline}; whiskers: paired 95% CI vs it)",
                    fontsize=10)
    figure.tight_layout()
    return figure


def section(ctx: Context) -> Section | None:
    if ctx.inputs.compare_table is None:
        return None
    table = pd.read_csv(ctx.inputs.compare_table, keep_default_na=False, na_values=[""])
    summary = ctx.read_json(ctx.inputs.compare_summary)
    baseline = summary["settings"]["baseline"]
    split = headline_split(table)
    rows = table[(table["split"] == split) & (table["origin"] == "all") & (table["level"].astype(str) == "all")]
    figure = ctx.figures.save(bars(rows, baseline, split), "vae_comparison",
                              f"{split}: reconstruction and interpolation gaps per VAE")
    notes = [f"{name} decodes {record['latent_space']}'s latents (its encoder was not fine-tuned)"
             for name, record in summary["models"].items() if record["latent_space"] != name]
    notes += [f"{name} is an {record['family']}: its encoder gives one deterministic latent, so it has no posterior "
              "variance (no posterior KL, no logvar in its stores)"
              for name, record in summary["models"].items() if record["posterior"] != "gaussian"]
    curve, triplets = motion.equivariance_frames(ctx)
    shifts, layers = motion.equivariance_figure(curve, triplets), motion.layers_figure(ctx)
    return Section("comparison", "VAEs side by side", "comparison.html.j2", {
        "split": split, "baseline": baseline, "table": vae_table(rows, baseline), "bars": figure,
        "breakdown": breakdown_table(table), "notes": notes, "models": ctx.inputs.models,
        "val_split": summary["settings"]["val_split"],
        "equivariance": shifts and ctx.figures.save(
            shifts, "equivariance", "Equivariance to shifts per latent space (test frames shifted by whole pixels, "
            "compared with their unshifted latent moved by the same distance in cells), and on the test triplets "
            "latent1 moved along the oracle flow against latent2"),
        "equivariance_reading": motion.equivariance_reading(ctx),
        "layers": layers and ctx.figures.save(
            layers, "equivariance_layers", "Equivariance layer by layer per latent space: test frames shifted by 1, 2, "
            "f/2 and f px, each level's features (the encoder's, then the decoder's on the shifted frame's latent) "
            "against the unshifted frames' features moved by the shift over the level's stride"),
        "layers_reading": motion.layers_reading(ctx)},
        parts=[("comparison-table", "The VAEs"), ("comparison-equivariance", "Can a latent grid be moved?"),
               ("comparison-breakdown", "By split, origin and level")])
