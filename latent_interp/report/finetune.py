"""The fine-tune: how it ran (recipe, overrides, steps, resumes), its curves, and its base VAE vs the fine-tuned one
image by image."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from latent_interp import finetune as finetune_stage
from latent_interp.report import tables
from latent_interp.report.context import Context
from latent_interp.report.page import Section


def comparison_table(comparison: pd.DataFrame) -> tables.Table:
    """Each model beside its baseline per split: both means and the paired difference with its 95% CI."""
    table = tables.Table(["model", "split", "images", "PSNR dB baseline", "PSNR dB model", "Δ PSNR dB [95% CI]",
                          "SSIM baseline", "SSIM model", "Δ SSIM [95% CI]", "images with higher PSNR"])
    for row in comparison.to_dict("records"):
        table.rows.append([
            tables.text(row["model"]), tables.text(row["split"]), tables.Cell(str(row["n_images"]), row["n_images"]),
            tables.number(row["psnr_baseline"]), tables.number(row["psnr"]),
            tables.number(row["psnr_diff"], 2, row["psnr_diff_ci_low"], row["psnr_diff_ci_high"], signed=True,
                          tone=tables.difference_tone(row["psnr_diff_ci_low"], row["psnr_diff_ci_high"])),
            tables.number(row["ssim_baseline"], 4), tables.number(row["ssim"], 4),
            tables.number(row["ssim_diff"], 4, row["ssim_diff_ci_low"], row["ssim_diff_ci_high"], signed=True,
                          tone=tables.difference_tone(row["ssim_diff_ci_low"], row["ssim_diff_ci_high"])),
            tables.Cell(f"{row['psnr_improved_share']:.0%}", row["psnr_improved_share"])])
    return table


def section(ctx: Context) -> Section | None:
    if ctx.inputs.finetune_dir is None:
        return None
    folder = Path(ctx.inputs.finetune_dir)
    record = ctx.read_json(folder / "finetune.json")
    epochs = pd.read_csv(folder / "training_epochs.csv")
    steps = pd.read_csv(folder / "training_steps.csv")
    comparison = pd.read_csv(ctx.inputs.comparison) if ctx.inputs.comparison else pd.DataFrame()
    if len(comparison):  # the fine-tuned model against the VAE it started from
        comparison = comparison[(comparison["model"] == ctx.inputs.finetuned)
                                & (comparison["baseline"] == ctx.inputs.finetune_base)]
    curves = ctx.figures.save(
        finetune_stage.plot_curves(steps, epochs, f"fine-tune, recipe {record['recipe']}"), "finetune_curves",
        "Training loss terms per step (log scale) and val PSNR per epoch; the dotted line is what the split's mean "
        "image scores.")
    columns = ["epoch", "step", "val_psnr", "val_ssim", "val_variance_ratio", "val_psnr_gain_db", "val_collapsed"]
    return Section("finetune", "Fine-tune", "finetune.html.j2", {
        "record": record, "model": ctx.inputs.finetuned, "base": ctx.inputs.finetune_base,
        "settings": record["provenance"]["settings"],
        "overrides": ", ".join(f"{k}={v}" for k, v in record["overrides"].items()) or "none",
        "before": record["pretrained_val"], "after": record["final_val"],
        "comparison": comparison_table(comparison) if len(comparison) else None, "curves": curves,
        "epochs": tables.from_frame(epochs[columns], {"val_psnr": 2, "val_ssim": 4, "val_variance_ratio": 3,
                                                      "val_psnr_gain_db": 2})})
