"""The field's table: every method and VAE of the run in the published protocols (``metrics.protocol``), beside the
field's published rows, which are labelled as such and never rerun here.

Published rows are added only from a source that can be read: EISAI's readme (ShuhongChen/eisai-anime-interpolator,
``readme.md``, "evaluation": ``python3 -m _scripts.evaluate`` on all 2,000 ATD-12K test triplets at 960 x 540).
AnimeInterp's own figures are in its paper's tables, which no stored source here holds (its repository's README gives
none), so none is shown rather than one copied from memory.
"""

from __future__ import annotations

import pandas as pd

from latent_interp import interp, store
from latent_interp.report import tables

EISAI_SOURCE = ("EISAI (Chen & Zwicker, ECCV 2022), readme.md of ShuhongChen/eisai-anime-interpolator, 'evaluation': "
                "all 2,000 ATD-12K test triplets at 960 x 540")
# Each row: the published figures in this project's column names (SSIM as a fraction: the readme's 95.15 is x100).
PUBLISHED = (
    {"method": "EISAI (SoftsplatLite + DTM)", "subset": "all", "animeinterp_psnr": 29.29, "animeinterp_ssim": 0.9515,
     "eisai_lpips": 3.4943e-2, "eisai_chamfer": 4.3505e-5, "source": EISAI_SOURCE},
    {"method": "EISAI (SoftsplatLite + DTM)", "subset": "Japan_ (eastern)", "eisai_lpips": 3.8260e-2,
     "eisai_chamfer": 4.9791e-5, "source": EISAI_SOURCE},
    {"method": "EISAI (SoftsplatLite + DTM)", "subset": "Disney_ (western)", "eisai_lpips": 3.2915e-2,
     "eisai_chamfer": 3.9660e-5, "source": EISAI_SOURCE},
)
PUBLISHED_GEOMETRY = "ATD-12K test_2k_540p, 2,000 triplets at 960 x 540"
LEVELS = {"0": "easy", "1": "medium", "2": "hard"}
# (column of the summary, header, digits); None digits: scientific notation
WHOLE = [("animeinterp_psnr", "PSNR dB ↑", 2), ("animeinterp_ssim", "SSIM ↑", 4),
         ("animeinterp_roi_psnr", "RoI PSNR dB ↑", 2), ("animeinterp_roi_ssim", "RoI SSIM ↑", 4)]
PER_LEVEL = [("animeinterp_psnr", "PSNR", 2), ("animeinterp_ssim", "SSIM", 4)]
EISAI = [("eisai_lpips", "LPIPS ↓", None), ("eisai_chamfer", "chamfer ↓", None)]


def _cell(value, digits) -> tables.Cell:
    if tables.missing(value):
        return tables.Cell("", None)
    return tables.number(value, digits) if digits is not None else tables.Cell(f"{value:.4e}", float(value))


def run_geometry(frames_group) -> str:
    """How this run's frames were made, from the frames store's preprocess record."""
    record = frames_group.attrs.get("preprocess", {})
    height, width = frames_group[store.FRAMES].shape[2:4]
    return f"{width} x {height} ({record.get('fit', 'squash')})"


def field_table(summary: pd.DataFrame, split: str, geometry: str) -> tables.Table | None:
    """The run's rows on ``split`` (every model and method, all triplets, whole image, RoI, per level, EISAI's
    metrics) and the published rows; None when the run computed neither animeinterp nor eisai columns."""
    def shown(column: str) -> bool:  # computed by this run, or published
        return (column in summary and summary[column].notna().any()) or any(column in row for row in PUBLISHED)

    if not any(column in summary and summary[column].notna().any() for column, _, _ in WHOLE + EISAI):
        return None
    whole = [entry for entry in WHOLE if shown(entry[0])]  # no RoI columns where no split is annotated
    rows = summary[(summary["split"] == split) & (summary["origin"] == "all") & (summary["motion"] == "all")]
    overall = rows[rows["level"].astype(str) == "all"]
    levels = [level for level in LEVELS if (rows["level"].astype(str) == level).any()]
    columns = ["model", "method", "rows", *[h for _, h, _ in whole],
               *[f"{LEVELS[level]} {h}" for level in levels for _, h, _ in PER_LEVEL], *[h for _, h, _ in EISAI]]
    table = tables.Table(columns, caption=(
        f"This run: {split}, frames {geometry}. Published rows: {PUBLISHED_GEOMETRY}; they are comparable with this "
        "run's only at that geometry on that data. PSNR and SSIM as AnimeInterp's test script computes them (SSIM's "
        "data range 2, so higher than the standard SSIM of the same images), RoI: ATD-12K's motion RoI as that "
        "script cuts it, levels: its difficulty annotation; LPIPS (AlexNet, [0, 1] inputs) and chamfer as EISAI's "
        "evaluate.py computes them. † sees frame 2 (an oracle or the ceiling)."))
    for record in overall.to_dict("records"):
        method = record["method"]
        by_level = {level: rows[(rows["model"] == record["model"]) & (rows["method"] == method)
                                & (rows["level"].astype(str) == level)] for level in levels}
        cells = [tables.text(record["model"]), tables.text(method + (" †" if method in interp.SEES_FRAME2 else "")),
                 tables.text(f"this run, {record['n_triplets']} triplets")]
        cells += [_cell(record.get(c), d) for c, _, d in whole]
        cells += [_cell(by_level[level][c].iloc[0] if c in by_level[level] and len(by_level[level]) else None, d)
                  for level in levels for c, _, d in PER_LEVEL]
        cells += [_cell(record.get(c), d) for c, _, d in EISAI]
        table.rows.append(cells)
    for published in PUBLISHED:
        cells = [tables.text("published, not rerun here", published["source"]), tables.text(published["method"]),
                 tables.text(f"published, {published['subset']}", published["source"])]
        cells += [_cell(published.get(c), d) for c, _, d in whole]
        cells += [_cell(None, d) for _ in levels for _, _, d in PER_LEVEL]
        cells += [_cell(published.get(c), d) for c, _, d in EISAI]
        table.rows.append(cells)
    return table
