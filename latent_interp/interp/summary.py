"""Rule interp_summary: every interp table -> ``results/interp/summary.csv`` (columns in docs/outputs.md): per model,
method, split and group, the means with bootstrap CIs, the paired differences to lerp and to the ceiling, the
share of lerp's gap to the ceiling each method closes, and (``interp.time: true``, on the triplets whose t is not
0.5) each method at t against the same method at the midpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd

from latent_interp import metrics, schema
from latent_interp.interp.methods import METHODS, SEES_FRAME2, SUMMARY_METRICS

RESAMPLES = schema.section("metrics.bootstrap_resamples")["default"]  # config defaults
MOTION_BINS = schema.section("interp.motion_bins")["default"]


def _group_rows(table: pd.DataFrame, key: dict, resamples: int, seed: int) -> list[dict]:
    """Summary rows of one model, split and group (``key``): every method's means, its paired differences and the
    share of the gap to the ceiling it closes."""
    wide = {metric: table.pivot(index="triplet", columns="method", values=metric)
            for metric in SUMMARY_METRICS if metric in table and table[metric].notna().any()}
    triplets = next(iter(wide.values())).index
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(triplets), size=(resamples, len(triplets))) if len(triplets) > 1 \
        else np.empty((0, 0), int)
    psnr = wide["psnr"].replace([np.inf, -np.inf], np.nan) if "psnr" in wide else None
    # numpy, not pandas, per column: a summary is thousands of these (methods x metrics x references x groups)
    columns = {metric: ({method: k for k, method in enumerate(values.columns)}, values.to_numpy(float))
               for metric, values in wide.items()}
    rows = []
    for method in [m for m in METHODS if m in table["method"].unique()]:
        row = {**key, "method": method, "n_triplets": len(triplets), "sees_frame2": method in SEES_FRAME2}
        for metric, (position, values) in columns.items():
            for suffix, reference in (("", None), ("_vs_lerp", "latent_lerp"), ("_vs_ceiling", "vae_ceiling")):
                if reference is not None and reference not in position:
                    continue
                column = values[:, position[method]] - (values[:, position[reference]] if reference else 0)
                column[np.isinf(column)] = np.nan  # exact images: no finite PSNR
                finite = np.isfinite(column)
                row[f"{metric}{suffix}"] = float(column[finite].mean()) if finite.any() else np.nan
                row[f"{metric}{suffix}_ci_low"], row[f"{metric}{suffix}_ci_high"] = metrics.bootstrap_ci(
                    np.where(finite, column, 0.0), finite.astype(float), picks) if finite.any() else (np.nan, np.nan)
        row["gap_closed"], row["gap_closed_ci_low"], row["gap_closed_ci_high"] = _gap_closed(psnr, method, picks)
        rows.append(row)
    return rows


def _gap_closed(psnr: pd.DataFrame | None, method: str, picks: np.ndarray) -> tuple[float, float, float]:
    """(mean method - mean lerp) / (mean ceiling - mean lerp) PSNR over the triplets where all three are finite, and
    its paired bootstrap interval (the same resampled triplets in numerator and denominator)."""
    if psnr is None or not {"latent_lerp", "vae_ceiling", method} <= set(psnr):
        return np.nan, np.nan, np.nan
    gained = (psnr[method] - psnr["latent_lerp"]).to_numpy(float)
    gap = (psnr["vae_ceiling"] - psnr["latent_lerp"]).to_numpy(float)
    finite = np.isfinite(gained) & np.isfinite(gap)
    if not finite.any() or gap[finite].sum() == 0:
        return np.nan, np.nan, np.nan
    gained, gap = np.where(finite, gained, 0.0), np.where(finite, gap, 0.0)
    low, high = metrics.bootstrap_ci(gained, gap, picks)
    return float(gained.sum() / gap.sum()), low, high


MIDPOINT_METRICS = ("psnr", "ssim")  # compared at t and at the midpoint


def _midpoint_columns(at_t: pd.DataFrame, at_midpoint: pd.DataFrame, method: str, resamples: int,
                      seed: int) -> dict:
    """The triplets scored both at their t and at the midpoint (those off it): ``n_off_midpoint``, and per metric of
    ``MIDPOINT_METRICS`` the mean at t (``{metric}_off_midpoint``), at the midpoint (``{metric}_at_midpoint``) and
    their paired difference with its bootstrap CI (``{metric}_vs_midpoint``)."""
    mine = [frame[frame["method"] == method].set_index("triplet") for frame in (at_t, at_midpoint)]
    both = mine[0].index.intersection(mine[1].index)
    row = {"n_off_midpoint": len(both)}
    if not len(both):
        return row
    picks = np.random.default_rng(seed).integers(len(both), size=(resamples, len(both))) if len(both) > 1 \
        else np.empty((0, 0), int)
    for metric in MIDPOINT_METRICS:
        if metric not in at_t:
            continue
        values = [frame.loc[both, metric].replace([np.inf, -np.inf], np.nan).to_numpy(float) for frame in mine]
        finite = np.isfinite(values[0]) & np.isfinite(values[1])
        row[f"{metric}_off_midpoint"], row[f"{metric}_at_midpoint"] = (
            (float(v[finite].mean()) if finite.any() else np.nan) for v in values)
        difference = np.where(finite, values[0] - values[1], 0.0)
        row[f"{metric}_vs_midpoint"] = float(difference.sum() / finite.sum()) if finite.any() else np.nan
        row[f"{metric}_vs_midpoint_ci_low"], row[f"{metric}_vs_midpoint_ci_high"] = (
            metrics.bootstrap_ci(difference, finite.astype(float), picks) if finite.any() else (np.nan, np.nan))
    return row


def motion_bins(motion: pd.Series, bins: int) -> pd.Series:
    """Each triplet's quantile bin of its motion (``q1`` the stillest), named with its range in px; empty where the
    motion is unknown. Fewer bins where the motions do not have ``bins`` distinct quantiles."""
    known = motion.dropna()
    if known.empty or bins < 1:
        return pd.Series(np.nan, index=motion.index, dtype=object)
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([known.min(), known.max() + 1e-9])
    labels = [f"q{k + 1} ({low:.1f}-{high:.1f} px)" for k, (low, high) in enumerate(zip(edges[:-1], edges[1:]))]
    return pd.cut(motion, edges, labels=labels, include_lowest=True).astype(object)


SUMMARY_KEYS = ["model", "method", "split", "origin", "level", "motion"]


def summarize_interp(*, tables: list[str], summary, resamples: int = RESAMPLES, seed: int = 0,
                     bins: int = MOTION_BINS) -> pd.DataFrame:
    """Rule interp_summary: every interp table of ``tables`` -> ``summary`` (results/interp/summary.csv), motion
    grouped in ``bins`` quantile bins (config interp.motion_bins)."""
    table_paths, out_path = tables, summary
    rows = []
    for path in table_paths:
        table = pd.read_csv(path)
        if table.empty:
            continue
        model, split = table["model"].iloc[0], table["split"].iloc[0]
        study = metrics.study_rows(table)
        at_midpoint = table.drop(index=study.index)  # the off-midpoint triplets again at the midpoint
        table = study
        base = {"model": model, "split": split, "origin": "all", "level": "all", "motion": "all"}
        groups = [(base, table)]
        groups += [({**base, "origin": origin}, g) for origin, g in table.groupby("origin", sort=True)]
        if "level" in table:
            groups += [({**base, "level": str(int(level))}, g)
                       for level, g in table.dropna(subset=["level"]).groupby("level")]
        if "motion_px" in table and table["motion_px"].notna().any():
            per_triplet = table.drop_duplicates("triplet").set_index("triplet")["motion_px"]
            binned = motion_bins(per_triplet, bins)
            table = table.assign(motion_bin=table["triplet"].map(binned))
            for label, g in table.dropna(subset=["motion_bin"]).groupby("motion_bin", sort=True):
                low, high = g["motion_px"].min(), g["motion_px"].max()
                groups.append(({**base, "motion": label, "motion_low": low, "motion_high": high}, g))
        for key, group in groups:
            group_rows = _group_rows(group, key, resamples, seed)
            if key is base and not at_midpoint.empty:
                for row in group_rows:
                    row.update(_midpoint_columns(group, at_midpoint, row["method"], resamples, seed))
            rows += group_rows
    summary = pd.DataFrame(rows) if rows else pd.DataFrame(columns=SUMMARY_KEYS + ["n_triplets"])  # no triplets
    first = [c for c in SUMMARY_KEYS + ["motion_low", "motion_high", "n_triplets", "sees_frame2"] if c in summary]
    summary = summary[first + [c for c in summary.columns if c not in first]]
    summary.to_csv(out_path, index=False, float_format="%.6g")
    return summary
