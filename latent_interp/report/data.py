"""The data section: triplets found, ingested and skipped per split, every skipped triplet or stray file, the videos
they came from (layout video: per video what extraction found and dropped, and the triplets' true middle time t), and
the motion the flow stage found (with the triplets whose flow failed)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from latent_interp import store
from latent_interp.report import tables
from latent_interp.report.context import Context
from latent_interp.report.page import Section


def section(ctx: Context) -> Section:
    counts = tables.Table(["split", "triplets found", "ingested", "skipped", "stray files"])
    skipped = tables.Table(["split", "what", "triplet", "path", "reason"])
    for split, path in ctx.inputs.frames.items():
        found = store.open_store(path, "frames").attrs.get("counts", {})
        counts.rows.append([tables.text(split)] + [tables.Cell(str(found.get(k, "n/a")), found.get(k))
                                                   for k in ("found", "ingested", "skipped", "stray_files")])
        listed = pd.read_csv(ctx.inputs.skipped[split], keep_default_na=False)  # split, what, triplet, path, reason
        skipped.rows += [[tables.text(v) for v in row] for row in listed.itertuples(index=False)]
    origins = {}
    for split in ctx.inputs.splits:
        for origin in store.origins(ctx.frames_store(split)):
            origins.setdefault(origin, {}).setdefault(split, 0)
            origins[origin][split] += 1
    by_origin = tables.Table(["origin", *ctx.inputs.splits])
    by_origin.rows = [[tables.text(o)] + [tables.Cell(str(c.get(s, 0)), c.get(s, 0)) for s in ctx.inputs.splits]
                      for o, c in sorted(origins.items())]
    return Section("data", "Data", "data.html.j2", {"counts": counts, "skipped": skipped, "by_origin": by_origin,
                                                    **video_tables(ctx), **motion_tables(ctx)})


def video_tables(ctx: Context) -> dict:
    """Per video (layout video): frames decoded, drawings, held frames merged, cuts, candidate triplets, kept, why the
    others were dropped, and the kept triplets' t; with a histogram of t per split."""
    groups = {split: ctx.frames_store(split) for split in ctx.inputs.splits}  # each store opened once
    per_split = {split: group.attrs.get("videos") for split, group in groups.items()}
    if not any(videos is not None for videos in per_split.values()):
        return {"videos": None, "t_figure": None}
    table = tables.Table(["split", "video", "codec", "frames", "drawings", "held frames merged", "cuts",
                          "candidate triplets", "kept", "dropped", "median t", "t range", "skipped"])
    for split, videos in per_split.items():
        for entry in videos or []:
            counts = entry["counts"] or {}
            t = np.asarray(entry["t"], dtype=float)
            dropped = {reason: count for reason, count in counts.get("dropped", {}).items() if count}
            table.rows.append(
                [tables.text(split), tables.text(entry["video"], entry["path"]), tables.text(entry.get("codec") or "")]
                + [tables.Cell(str(counts.get(k, "n/a")), counts.get(k)) for k in (
                    "frames", "drawings", "held_frames_merged", "cuts", "candidates", "kept")]
                + [tables.Cell(", ".join(f"{reason} {count}" for reason, count in dropped.items()) or "none",
                               sum(dropped.values()), numeric=False),
                   tables.number(np.median(t), 3) if len(t) else tables.text(""),
                   tables.text(f"{t.min():.3f} to {t.max():.3f}" if len(t) else ""),
                   tables.text(entry["skipped"] or "")])
    times = {split: store.middle_times(group) for split, group in groups.items()}
    figure, axis = plt.subplots(figsize=(6.4, 2.8))
    # bins of 0.05 centred on the multiples of 0.05, so that t = 0.5 (even timing) is one bin's middle, not an edge
    axis.hist([values for values in times.values()], bins=np.linspace(-0.025, 1.025, 22),
              label=[f"{split} ({len(values)} triplets)" for split, values in times.items()])
    axis.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="t: where frame 2 lies between frames 1 and 3 in time", ylabel="triplets", xlim=(0, 1))
    axis.legend(fontsize=8)
    figure.tight_layout()
    t_figure = ctx.figures.save(figure, "video_middle_time", "The true time t of each triplet's middle drawing, from "
                                "the videos' timestamps, per split: 0.5 on even timing (on twos, on threes), "
                                "elsewhere on irregular timing. Every interpolation method predicts t = 0.5.")
    return {"videos": table, "t_figure": t_figure}


def motion_tables(ctx: Context) -> dict:
    """Per split, the flow's motion and consistency (``results/flow/{split}.csv``), and the triplets whose flow
    failed: listed, and left unscored by the flow methods."""
    if not ctx.inputs.flow_tables:
        return {"motion": None, "flow_failed": None}
    motion = tables.Table(["split", "triplets", "median motion px", "90th percentile motion px",
                           "consistent pixels", "flow failed"])
    failed = tables.Table(["split", "triplet", "status"])
    for split, path in ctx.inputs.flow_tables.items():
        table = pd.read_csv(path)
        bad = table[table["status"] != "ok"]
        motion.rows.append([tables.text(split), tables.Cell(str(len(table)), len(table)),
                            tables.number(table["motion_px"].median(), 2),
                            tables.number(table["motion_px"].quantile(0.9), 2),
                            tables.number(table["consistent_share"].mean(), 3),
                            tables.Cell(str(len(bad)), len(bad), "bad" if len(bad) else "")])
        failed.rows += [[tables.text(split), tables.text(row.triplet), tables.text(row.status)]
                        for row in bad.itertuples(index=False)]
    return {"motion": motion, "flow_failed": failed if failed.rows else None}
