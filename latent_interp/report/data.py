"""The data section: triplets found, ingested and skipped per split, every skipped triplet or stray file, and the
motion the flow stage found (with the triplets whose flow failed)."""

from __future__ import annotations

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
                                                    **motion_tables(ctx)})


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
