"""The re-timed clips (rule inbetween, ``results/inbetween/<model>/<video>/``): what each holds, with links to its
files, and a line for each video that has none and why."""

from __future__ import annotations

import json
import os
from pathlib import Path

from latent_interp import video
from latent_interp.report import tables
from latent_interp.report.context import Context


def clips_table(ctx: Context) -> tuple[tables.Table | None, list[str]]:
    """One row per clip (model, video: drawings, frames, in-betweens, held slots, method and factor, its files), and
    the lines of the videos without one."""
    table = tables.Table(["video", "model", "drawings", "frames", "in-betweens", "held at cuts", "method", "factor",
                          "files"],
                         caption="Each video re-timed: between every two drawings factor − 1 in-betweens at "
                                 "t = k / factor, each at its own time, none across a scene cut (those slots hold the "
                                 "drawing before it). compare.mp4: the source as it plays, the method and pixel_blend "
                                 "side by side.")
    skipped = []
    for (model, name), folder in sorted(ctx.inputs.clips.items(), key=lambda item: (item[0][1], item[0][0])):
        record = json.loads((Path(folder) / video.CLIP_RECORD).read_text())
        if record["skipped"]:
            skipped.append(f"{name} ({model}): no clip, {record['skipped']}.")
            continue
        counts, settings = record["counts"], record["settings"]
        links = [(file, os.path.relpath(Path(folder) / file, ctx.report_dir))
                 for file in (video.CLIP, video.COMPARE, video.CLIP_MANIFEST)]
        table.rows.append([tables.text(name), tables.text(model)]
                          + [tables.Cell(str(counts[key]), counts[key])
                             for key in ("drawings", "frames", "inbetweens", "held")]
                          + [tables.text(settings["method"]), tables.Cell(str(settings["factor"]), settings["factor"]),
                             tables.Cell(video.CLIP, None, numeric=False, links=links)])
    return (table if table.rows else None), skipped
