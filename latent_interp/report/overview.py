"""The top of the page: what was run, and per model the figures a reader asks for first."""

from __future__ import annotations

import pandas as pd

from latent_interp import interp
from latent_interp.report.context import Context
from latent_interp.report.page import Section


def headline(ctx: Context, model: str) -> dict:
    """Val/test PSNR and SSIM with their 95% CIs, the collapse verdict, and the best interpolation method beside
    latent_lerp on the last interpolated split (test where there is one)."""
    summary = ctx.metric_summary
    scores = []
    for split in ("val", "test"):
        rows = summary[(summary["model"] == model) & (summary["split"] == split) & (summary["origin"] == "all")
                       & (summary["level"].astype(str) == "all")]
        if len(rows) and rows.iloc[0]["n_images"] > 0:
            row = rows.iloc[0]
            scores.append({"split": split, "psnr": row["psnr"], "psnr_low": row["psnr_ci_low"],
                           "psnr_high": row["psnr_ci_high"], "ssim": row["ssim"], "ssim_low": row["ssim_ci_low"],
                           "ssim_high": row["ssim_ci_high"]})
    collapse = ctx.read_json(ctx.inputs.collapse[model])
    card = {"model": model, "scores": scores, "collapsed": collapse["collapsed"],
            "variance_ratio": collapse["variance_ratio"], "best": None}
    if ctx.interp_summary is not None:
        card["best"] = best_method(ctx.interp_summary, model)
    return card


def best_method(summary: pd.DataFrame, model: str) -> dict | None:
    """The highest-PSNR method that does not see frame 2, with its paired difference to lerp, on the last split."""
    rows = summary[(summary["model"] == model) & (summary["origin"] == "all") & (summary["level"].astype(str) == "all")
                   & ~summary["method"].isin(interp.SEES_FRAME2)]
    if "motion" in rows:
        rows = rows[rows["motion"] == "all"]
    if rows.empty:
        return None
    split = "test" if (rows["split"] == "test").any() else rows["split"].iloc[-1]
    rows = rows[rows["split"] == split].set_index("method")
    best = rows["psnr"].idxmax()
    row = rows.loc[best]
    return {"split": split, "method": best, "psnr": row["psnr"], "vs_lerp": row["psnr_vs_lerp"],
            "vs_lerp_low": row["psnr_vs_lerp_ci_low"], "vs_lerp_high": row["psnr_vs_lerp_ci_high"],
            "triplets": int(row["n_triplets"])}


def section(ctx: Context) -> Section:
    config = ctx.inputs.config
    counts = {split: len(names) for split, names in ctx.triplet_names.items()}
    data_config = config.get("data", {})
    return Section("overview", "What was run", "overview.html.j2", {
        "cards": [headline(ctx, model) for model in ctx.inputs.models],
        "counts": counts, "source": data_config.get("source", "files"), "root": data_config.get("root", ""),
        "vaes": ctx.inputs.vaes, "twins": ctx.inputs.twins,
        "size": config.get("preprocess", {}).get("size", "")})
