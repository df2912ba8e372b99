"""``results/report.html``: the study in one self-contained page, and its figures as files under ``results/figures/``.

How it is built
    ``build_report`` loads the stage outputs lazily into a ``Context`` (``context.py``), indexes every triplet and
    embeds the images of the panel triplets (``triplets.py``), then calls the section functions of ``SECTIONS`` in
    reading order. A section function returns a ``page.Section`` (anchor, title, template under
    ``templates/sections/`` and its variables) or None when its inputs are absent. ``page.render`` puts the sections
    into ``templates/page.html.j2`` with the CSS, the page's script (``templates/report.js``), plotly.js inlined once
    and the JSON payload the script reads (tables, embeddings, thumbnails, triplet scores and images).
    A new analysis is a new module with a section function and a template, and one entry in ``SECTIONS``.
What stays bounded as the study grows
    Images are small JPEGs: frames in panels at ``report.image_width`` px, hover thumbnails at
    ``report.thumbnail_width`` px; panels exist for a fixed number of triplets per split (``triplets.py``);
    embeddings plot at most ``report.embedding_points`` frames (whole triplets); per-triplet tables are data that the
    page pages through, not HTML rows.
Figures
    Every matplotlib figure is written to ``results/figures/<name>.png`` and ``.svg`` by worker processes
    (``figures.FigureWriter``); the page embeds the PNG (or, for the large galleries and grids, links to the files
    and shows the same images as HTML).
"""

from __future__ import annotations

from pathlib import Path

from latent_interp.report import (comparison, data, embeddings, finetune, geometry, interpolation, motion, overview,
                                  page, provenance, reconstruction, triplets)
from latent_interp.report.context import Context, ReportInputs, ReportSettings

__all__ = ["ReportInputs", "ReportSettings", "build_report", "SECTIONS"]

# Reading order: what was run, the data, the VAEs side by side, how well each reconstructs, the fine-tune, the
# latent study, provenance.
SECTIONS = (overview.section, data.section, comparison.section, reconstruction.section, finetune.section,
            interpolation.section, geometry.section, embeddings.section, provenance.section)


def build_report(out_path, figures_dir, inputs: ReportInputs, linked_figures_dir=None, workers: int = 2) -> None:
    """Write the page to ``out_path`` and its figures under ``figures_dir``, which the page links as
    ``linked_figures_dir`` (default ``figures_dir``) relative to ``out_path``'s folder; ``workers`` processes draw
    the figures (``figures.FigureWriter``)."""
    ctx = Context(inputs, figures_dir, out_path, linked_figures_dir, workers)
    try:
        triplets.add_triplet_index(ctx)
        ctx.panel_keys = triplets.panel_keys(ctx, embeddings.trajectory_keys(ctx))
        triplets.add_panel_images(ctx, ctx.panel_keys)
        motion.add_flow_images(ctx, ctx.panel_keys)
        sections = [section for make in SECTIONS if (section := make(ctx)) is not None]
    finally:
        ctx.figures.close()
    Path(out_path).write_text(page.render(sections, ctx.payload, "latent-interp report"))
