"""The data section: triplets found, ingested and skipped per split, and every skipped triplet or stray file."""

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
    return Section("data", "Data", "data.html.j2", {"counts": counts, "skipped": skipped, "by_origin": by_origin})
