"""2-D embeddings of the latent space (PCA, UMAP, t-SNE) and their plots.

Table ``results/embeddings/{model}/{method}.csv``, one row per embedded frame latent:
    ``model``, ``split``, ``triplet``, ``origin``, ``frame`` (1..3), ``x``, ``y``
Next to it ``{method}.json`` (settings actually used, points embedded, versions) and ``{method}.png`` (three panels
coloured by split, origin and frame index).

Each frame's posterior mean (C x h x w) is one point. UMAP and t-SNE run on the first PCA components (standard
practice: it removes noise dimensions and makes them fast); above ``max_points`` frames a fixed-seed subsample is
embedded, and the JSON says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # jobs run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from latent_interp import store  # noqa: E402

METHODS = ("pca", "umap", "tsne")
SPLIT_COLOURS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
ORIGIN_COLOURS = {"Disney": "#C44E52", "Japan": "#8172B3", "unknown": "#937860"}
FRAME_COLOURS = {1: "#1b9e77", 2: "#d95f02", 3: "#7570b3"}


def load_latent_points(latent_paths: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """All frame latents of the given stores as rows [F, C*h*w], and a table naming each row."""
    vectors, labels = [], []
    for path in latent_paths:
        group = store.open_store(path, "latents")
        mean = group[store.MEAN]
        names, origins = store.names(group), store.origins(group)
        split = group.attrs["split"]
        for start, stop in store.chunk_ranges(mean):
            chunk = mean[start:stop]
            vectors.append(chunk.reshape(len(chunk) * 3, -1))
            for index in range(start, stop):
                labels += [(split, names[index], origins[index], frame) for frame in (1, 2, 3)]
    table = pd.DataFrame(labels, columns=["split", "triplet", "origin", "frame"])
    return np.concatenate(vectors).astype(np.float32), table


def embed_points(points: np.ndarray, method: str, seed: int = 0, pca_components: int = 50) -> tuple[np.ndarray, dict]:
    """2-D coordinates of ``points`` by ``method`` and the settings used (some adapt to small point counts)."""
    count = len(points)
    if count < 3:
        raise ValueError(f"embedding needs at least 3 frames, got {count}")
    if method == "pca":
        pca = PCA(n_components=2, random_state=seed)
        coords = pca.fit_transform(points)
        return coords, {"explained_variance_ratio": pca.explained_variance_ratio_.round(6).tolist()}
    components = min(pca_components, count, points.shape[1])
    reduced = PCA(n_components=components, random_state=seed).fit_transform(points)
    if method == "umap":
        import umap  # slow to import (numba): only the UMAP job pays for it

        neighbours = min(15, count - 1)
        # A fixed random_state makes UMAP deterministic (and single-threaded).
        model = umap.UMAP(n_components=2, n_neighbors=neighbours, min_dist=0.1, random_state=seed, n_jobs=1)
        return model.fit_transform(reduced), {"pca_components": components, "n_neighbors": neighbours,
                                              "min_dist": 0.1}
    if method == "tsne":
        perplexity = float(min(30.0, max(1.0, (count - 1) / 3)))
        model = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        return model.fit_transform(reduced), {"pca_components": components, "perplexity": perplexity}
    raise ValueError(f"config key embed.methods: unknown method {method!r} (choose from {METHODS})")


def plot_embedding(table: pd.DataFrame, title: str, out_path) -> None:
    """Three panels of the same points, coloured by split, origin and frame index."""
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    panels = (("split", SPLIT_COLOURS), ("origin", ORIGIN_COLOURS), ("frame", FRAME_COLOURS))
    for axis, (column, colours) in zip(axes, panels):
        for value, points in table.groupby(column, sort=True):
            axis.scatter(points["x"], points["y"], s=9, alpha=0.75, color=colours.get(value, "#7f7f7f"),
                         label=f"{column} {value}" if column == "frame" else str(value), linewidths=0)
        axis.set_title(f"by {column}")
        axis.legend(markerscale=2, fontsize=8, frameon=False)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title)
    figure.savefig(out_path, dpi=110)
    plt.close(figure)


def embed_model(latent_paths: list[str], model: str, method: str, table_path, plot_path, json_path, seed: int = 0,
                max_points: int = 5000) -> pd.DataFrame:
    """The embedding stage for one model and method: table, settings JSON and plot."""
    points, table = load_latent_points(latent_paths)
    total = len(points)
    if total > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
        points, table = points[keep], table.iloc[keep].reset_index(drop=True)
    coords, settings = embed_points(points, method, seed)
    table.insert(0, "model", model)
    table["x"], table["y"] = coords[:, 0], coords[:, 1]
    table.to_csv(table_path, index=False, float_format="%.6g")
    record = {"model": model, "method": method, "seed": seed, "points_total": total, "points_embedded": len(table),
              "point": "one frame's posterior mean, flattened", "settings": settings, "versions": store.versions()}
    Path(json_path).write_text(json.dumps(record, indent=2) + "\n")
    plot_embedding(table, f"{method.upper()} of {model} latents ({len(table)} frames)", plot_path)
    return table
