"""The fine-tunes: one table of what each was for and what it changed against its base (``compare``'s
finetunes.csv, with paired CIs), then per fine-tune how it ran (recipe, overrides, steps, resumes), its curves, and
its base VAE vs the fine-tuned one image by image."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from latent_interp import finetune as finetune_stage
from latent_interp.report import tables
from latent_interp.report.context import Context
from latent_interp.report.page import Section

# finetunes.csv's measures in the words of the table
MEASURE_NAMES = {
    "recon_psnr": "reconstruction PSNR", "lerp_psnr": "latent_lerp PSNR (frame 2)",
    "latent_flow_psnr": "latent_flow PSNR (frame 2)", "ceiling_psnr": "ceiling PSNR (vae_ceiling)",
    "lerp_gap_db": "latent_lerp's gap to the ceiling", "latent_flow_gap_db": "latent_flow's gap to the ceiling",
    "shift_error_1px": "equivariance error, 1 px shift", "shift_error_subcell": "equivariance error, sub-cell shifts",
    "shift_error_cell": "equivariance error, one-cell shift",
    "moved_psnr_1px": "PSNR of a latent moved by 1 px, decoded",
}


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


def effects_table(effects: pd.DataFrame, purposes: dict[str, str]) -> tables.Table:
    """finetunes.csv as one table: per fine-tune and measure, on the last split scored (test in the study), the
    base's and the fine-tune's means and the paired difference with its 95% CI, toned by which way is better."""
    table = tables.Table(["fine-tune", "what it was for", "split", "measure", "paired", "base", "fine-tune",
                          "Δ [95% CI]"])
    for row in effects.to_dict("records"):
        digits = 2 if row["unit"] == "dB" else 4
        higher = row["better"] == "higher"
        table.rows.append([
            tables.text(f"{row['finetune']} ({row['recipe']}, from {row['base']})"),
            tables.text(purposes.get(row["finetune"], "")), tables.text(row["split"]),
            tables.text(f"{MEASURE_NAMES.get(row['measure'], row['measure'])} ({row['unit']}, "
                        f"{row['better']} is better)"),
            tables.Cell(str(row["paired"]), row["paired"]), tables.number(row["base_value"], digits),
            tables.number(row["value"], digits),
            tables.number(row["difference"], digits, row["ci_low"], row["ci_high"], signed=True,
                          tone=tables.difference_tone(row["ci_low"], row["ci_high"], higher))])
    return table


# The measures a fine-tune's reading gives, in order: what it was for first, then what it may have cost.
READING_MEASURES = ("shift_error_subcell", "recon_psnr", "latent_flow_gap_db", "lerp_gap_db")


def readings(effects: pd.DataFrame) -> list[str]:
    """One line per fine-tune (finetunes.csv rows of one split): each of ``READING_MEASURES`` it has, against its
    base, with the paired interval, and whether that interval leaves zero out."""
    lines = []
    for name, rows in effects.groupby("finetune", sort=False):
        by_measure = rows.set_index("measure")
        parts = []
        for measure in READING_MEASURES:
            if measure not in by_measure.index:
                continue
            row = by_measure.loc[measure]
            digits = 2 if row["unit"] == "dB" else 4
            clear = row["ci_low"] > 0 or row["ci_high"] < 0
            parts.append(f"{MEASURE_NAMES[measure]} {row['base_value']:.{digits}f} -> {row['value']:.{digits}f} "
                         f"({row['difference']:+.{digits}f} [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"
                         f"{'' if clear else ', interval includes 0'})")
        if parts:
            lines.append(f"{name} against {rows['base'].iloc[0]} on {rows['split'].iloc[0]}: {'; '.join(parts)}.")
    return lines


def section(ctx: Context) -> Section | None:
    if not ctx.inputs.finetunes:
        return None
    comparison = pd.read_csv(ctx.inputs.comparison) if ctx.inputs.comparison else pd.DataFrame()
    runs, purposes = [], {}
    for name, entry in ctx.inputs.finetunes.items():
        folder = Path(entry["dir"])
        record = ctx.read_json(folder / "finetune.json")
        purposes[name] = record["purpose"]
        epochs = pd.read_csv(folder / "training_epochs.csv")
        steps = pd.read_csv(folder / "training_steps.csv")
        pair = (comparison[(comparison["model"] == name) & (comparison["baseline"] == entry["vae"])]
                if len(comparison) else comparison)
        curves = ctx.figures.save(
            finetune_stage.plot_curves(steps, epochs, f"{name}: recipe {record['recipe']}"), f"finetune_curves_{name}",
            f"{name}: training loss terms per step (log scale) and val PSNR per epoch; the dotted line is what the "
            "split's mean image scores.")
        columns = ["epoch", "step", "val_psnr", "val_ssim", "val_variance_ratio", "val_psnr_gain_db", "val_collapsed"]
        runs.append({
            "name": name, "record": record, "base": entry["vae"], "settings": record["provenance"]["settings"],
            "overrides": ", ".join(f"{k}={v}" for k, v in record["overrides"].items()) or "none",
            "before": record["pretrained_val"], "after": record["final_val"],
            "comparison": comparison_table(pair) if len(pair) else None, "curves": curves,
            "epochs": tables.from_frame(epochs[columns], {"val_psnr": 2, "val_ssim": 4, "val_variance_ratio": 3,
                                                          "val_psnr_gain_db": 2})})
    effects, lines = None, []
    if ctx.inputs.finetune_effects:
        table = pd.read_csv(ctx.inputs.finetune_effects)
        last_split = [split for split in ctx.inputs.splits if split in set(table["split"])][-1:]
        shown = table[table["split"].isin(last_split)]
        effects, lines = (effects_table(shown, purposes), readings(shown)) if len(table) else (None, [])
    return Section("finetune", "Fine-tunes", "finetune.html.j2", {"runs": runs, "effects": effects,
                                                                  "readings": lines})
