"""Embeddings: PCA, UMAP and t-SNE of each latent space as interactive plots, coloured on demand, each point's frame
shown on hover, a point's triplet opened on click, and 1 -> 2 -> 3 trajectories drawn.

``payload["embeddings"]``: one entry per latent space and method: ``id``, ``model``, ``method``, ``title``,
``x``, ``y`` (rounded coordinates), ``triplet`` (indices into ``payload["triplets"]``), ``frame`` (1..3),
``cluster`` (the geometry stage's k-means cluster or null), ``trajectories`` (triplet indices drawn by default),
``caption``.
``payload["thumbs"]``: "split/name/frame" -> a small JPEG of every plotted frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from latent_interp import embed, store
from latent_interp.report.context import Context
from latent_interp.report.figures import jpeg_uri
from latent_interp.report.page import Section
from latent_interp.report.triplets import read_rows


def trajectory_keys(ctx: Context) -> list[str]:
    """The triplets whose trajectories the embed stage drew (they get panels too)."""
    keys = set()
    for _, _, _, settings_path in ctx.inputs.embeddings:
        keys |= set(ctx.read_json(settings_path).get("trajectories", []))
    return sorted(keys)


def plotted_triplets(table: pd.DataFrame, limit_frames: int, keep: set[str], seed: int) -> set[str]:
    """Whole triplets to plot: all when their frames fit in ``limit_frames``, else those of ``keep`` and a fixed-seed
    sample of the rest."""
    keys = sorted(set(table["split"] + "/" + table["triplet"]))
    if len(table) <= limit_frames:
        return set(keys)
    kept = [k for k in keys if k in keep]
    others = [k for k in keys if k not in keep]
    room = max(0, limit_frames // 3 - len(kept))
    drawn = np.random.default_rng(seed).permutation(len(others))[:room]
    return set(kept) | {others[i] for i in drawn}


def add_thumbnails(ctx: Context, frames: set[tuple[str, str, int]]) -> None:
    """``payload["thumbs"]`` for every (split, name, frame) plotted, read chunk by chunk."""
    by_split: dict[str, list[tuple[str, int]]] = {}
    for split, name, frame in frames:
        by_split.setdefault(split, []).append((name, frame))
    for split, wanted in by_split.items():
        position = {name: i for i, name in enumerate(ctx.triplet_names[split])}
        rows = read_rows(ctx.frames_store(split)[store.FRAMES], [position[n] for n, _ in wanted])
        for name, frame in wanted:
            key = f"{split}/{name}/{frame}"
            if key not in ctx.payload["thumbs"]:
                ctx.payload["thumbs"][key] = jpeg_uri(rows[position[name]][frame - 1], ctx.settings.thumbnail_width,
                                                      quality=70)


def section(ctx: Context) -> Section | None:
    if not ctx.inputs.embeddings:
        return None
    index = {record["key"]: i for i, record in enumerate(ctx.payload["triplets"])}
    keep = set(ctx.panel_keys)
    plots, frames, figures = [], set(), []
    for model, method, table_path, settings_path in ctx.inputs.embeddings:
        table = pd.read_csv(table_path)
        settings = ctx.read_json(settings_path)
        chosen = plotted_triplets(table, ctx.settings.embedding_points, keep, ctx.settings.seed)
        keys = table["split"] + "/" + table["triplet"]
        shown = table[keys.isin(chosen)].reset_index(drop=True)
        shown_keys = shown["split"] + "/" + shown["triplet"]
        frames |= set(zip(shown["split"], shown["triplet"], shown["frame"].astype(int)))
        closeness = settings["triplet_closeness"]
        plots.append({
            "id": f"embedding-{model}-{method}", "model": model, "method": method,
            # the models whose latents these are: the latent space and any model that shares it (twins)
            "models": [model, *(twin for twin, space in ctx.inputs.twins.items() if space == model)],
            "title": f"{method.upper()} of {model} latents",
            "x": shown["x"].round(3).tolist(), "y": shown["y"].round(3).tolist(),
            "triplet": [index[k] for k in shown_keys], "frame": shown["frame"].astype(int).tolist(),
            "cluster": [None if pd.isna(c) else int(c) for c in shown.get("cluster", pd.Series([np.nan] * len(shown)))],
            "trajectories": [index[k] for k in settings.get("trajectories", []) if k in index and k in chosen],
            "caption": (f"{len(shown)} of {settings['points_total']} frames plotted ({settings['points_embedded']} "
                        f"embedded); settings {settings['settings']}. A triplet's three frames lie {closeness:.1f}x "
                        "closer to each other than two random frames: "
                        + ("the map is organised by content more than by frame position." if closeness >= 2
                           else "frames of a triplet are not kept together."))})
        figure = embed.plot_embedding(table, f"{method.upper()} of {model} latents ({len(table)} frames)",
                                      settings.get("trajectories", []))
        figures.append(ctx.figures.save(figure, f"embedding_{model}_{method}", plots[-1]["title"], embed=False))
    add_thumbnails(ctx, frames)
    ctx.payload["embeddings"] = plots
    annotated = any(record["level"] is not None for record in ctx.payload["triplets"])
    colourings = ["split", "origin", "frame", "cluster"] + (["level", "motion"] if annotated else [])
    colourings += [f"psnr:{m}" for m in ctx.inputs.models]
    return Section("embeddings", "Embeddings", "embeddings.html.j2", {
        "plots": plots, "colourings": colourings, "figures": figures, "twins": ctx.inputs.twins,
        "models": ctx.inputs.models},
        parts=[(p["id"], p["title"]) for p in plots])
