"""2-D embeddings of the latent space (PCA, UMAP, t-SNE) and their plots.

Table ``results/embeddings/{model}/{method}.csv``, one row per embedded frame latent:
    ``model``, ``split``, ``triplet``, ``origin``, ``frame`` (1..3), ``x``, ``y``, ``cluster`` (the geometry stage's
    k-means cluster), ``level``, ``general_motion_type`` (annotated splits; empty elsewhere)
Next to it ``{method}.json`` (settings actually used, points embedded, the triplets whose trajectories are drawn,
``triplet_closeness``: how many times closer a triplet's frames lie to each other than two random frames, versions)
and ``{method}.png`` (panels coloured by split, origin, frame index, cluster and, with annotations, level and motion
type; and the 1 -> 2 -> 3 trajectories of a sample of triplets).

Each frame's posterior mean (C x h x w) is one point. UMAP and t-SNE run on the first PCA components (standard
practice: it removes noise dimensions and makes them fast); above ``max_points`` frames a fixed-seed subsample of
whole triplets is embedded (so every trajectory keeps its three points), and the JSON says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # jobs run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from latent_interp import store  # noqa: E402
from latent_interp.settings import EmbedSettings  # noqa: E402

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
        umap = import_umap()
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


def import_umap():
    """umap-learn, its numba functions compiled with ``cache=True``: umap leaves them uncached, so every UMAP job
    compiled them again (13.6 s of a tiny fit here; 0.1 s from the cache). With the cache (numba's, beside umap's
    sources or in the user's cache folder when those are read-only) only a machine's first UMAP job compiles; the
    code, and so the result, is the same. Imported here, not at the top: only the UMAP job pays for it."""
    if "umap" in sys.modules:
        return sys.modules["umap"]
    import numba

    plain = numba.njit

    def cached(*args, **options):
        return plain(*args, **{"cache": True, **options})

    numba.njit = cached
    try:
        import umap
    finally:
        numba.njit = plain
    return umap


PANEL_COLOURS = {"split": SPLIT_COLOURS, "origin": ORIGIN_COLOURS, "frame": FRAME_COLOURS}


def trajectory_sample(table: pd.DataFrame, count: int, seed: int) -> list[str]:
    """Names of ``count`` triplets (a fixed-seed sample) whose three frames are all embedded."""
    complete = table.groupby(["split", "triplet"]).size()
    complete = sorted(f"{split}/{name}" for (split, name), n in complete.items() if n == 3)
    if len(complete) <= count:
        return complete
    return sorted(np.random.default_rng(seed).choice(complete, size=count, replace=False).tolist())


def plot_embedding(table: pd.DataFrame, title: str, trajectories: list[str] = ()) -> plt.Figure:
    """Panels of the same points coloured by split, origin, frame, cluster, level and motion type (the last three
    where present), and a panel
    with the 1 -> 2 -> 3 trajectories of the sampled triplets over the grey cloud."""
    panels = ["split", "origin", "frame"] + [c for c in ("cluster", "level", "general_motion_type")
                                             if c in table and table[c].notna().any()]
    columns = max(3, -(-(len(panels) + 1) // 2))  # two rows: the panels and the trajectories
    figure, axes = plt.subplots(2, columns, figsize=(5 * columns, 9.6), constrained_layout=True)
    axes = axes.ravel()
    for axis, column in zip(axes, panels):
        colours = PANEL_COLOURS.get(column, {})
        palette = plt.get_cmap("tab10")
        for position, (value, points) in enumerate(table.dropna(subset=[column]).groupby(column, sort=True)):
            label = f"{column} {value:g}" if isinstance(value, float) else f"{column} {value}"
            axis.scatter(points["x"], points["y"], s=9, alpha=0.75, linewidths=0, label=label,
                         color=colours.get(value, palette(position % 10)))
        axis.set_title(f"by {column}")
        axis.legend(markerscale=2, fontsize=7, frameon=False, ncols=2 if column == "cluster" else 1)
    last = axes[len(panels)]
    last.scatter(table["x"], table["y"], s=6, color="#d0d0d0", linewidths=0)
    keyed = table.assign(key=table["split"] + "/" + table["triplet"]).set_index("key")
    palette = plt.get_cmap("tab20")
    for position, key in enumerate(trajectories):
        path = keyed.loc[[key]].sort_values("frame")
        colour = palette(position % 20)
        last.plot(path["x"], path["y"], "-", color=colour, linewidth=1)
        last.scatter(path["x"], path["y"], s=[10, 28, 10], color=colour, zorder=3)
        last.annotate("", xy=path[["x", "y"]].iloc[2], xytext=path[["x", "y"]].iloc[1],
                      arrowprops={"arrowstyle": "->", "color": colour})
    last.set_title(f"trajectories 1 -> 2 -> 3 of {len(trajectories)} triplets (large dot: frame 2)")
    for axis in axes[len(panels) + 1:]:
        axis.axis("off")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(title)
    return figure


def triplet_closeness(table: pd.DataFrame, seed: int = 0) -> float:
    """Median distance between two random embedded frames over the median spread (mean pairwise distance) of a
    triplet's three frames: how many times closer a triplet's frames lie to each other than to any frame."""
    coords = table[["x", "y"]].to_numpy(float)
    spreads = []
    for _, rows in table.groupby(["split", "triplet"]):
        if len(rows) == 3:
            p = rows[["x", "y"]].to_numpy(float)
            spreads.append(np.mean([np.linalg.norm(p[i] - p[j]) for i, j in ((0, 1), (0, 2), (1, 2))]))
    rng = np.random.default_rng(seed)
    pairs = rng.integers(len(coords), size=(2000, 2))
    random_distance = np.median(np.linalg.norm(coords[pairs[:, 0]] - coords[pairs[:, 1]], axis=1))
    spread = np.median(spreads) if spreads else np.nan
    return float(random_distance / spread) if spread > 0 else float("inf")


class EmbedOutputs(NamedTuple):
    """Rule embed's outputs."""
    table: str  # the embedded points
    plot: str
    record: str  # what was embedded, and how (JSON)


def embed_model(*, latents: list[str], model: str, method: str, outputs: EmbedOutputs, settings: EmbedSettings,
                clusters=None, trajectories=None) -> pd.DataFrame:
    """Rule embed: one latent space's embedding by ``method``: its table, the plot and the record of what was
    embedded. ``clusters`` and ``trajectories`` (the geometry stage's tables) add the cluster and annotation
    columns."""
    latent_paths = latents
    table_path, plot_path, json_path = outputs
    seed, max_points, trajectory_count = settings.seed, settings.max_points, settings.trajectories
    clusters_path, trajectories_path = clusters, trajectories
    points, table = load_latent_points(latent_paths)
    total = len(points)
    if total > max_points:  # whole triplets, so that every drawn trajectory has its three points
        triplet_rows = np.arange(total).reshape(-1, 3)
        keep = np.sort(np.random.default_rng(seed).choice(len(triplet_rows), size=max(1, max_points // 3),
                                                          replace=False))
        keep = triplet_rows[keep].ravel()
        points, table = points[keep], table.iloc[keep].reset_index(drop=True)
    coords, settings = embed_points(points, method, seed)
    table.insert(0, "model", model)
    table["x"], table["y"] = coords[:, 0], coords[:, 1]
    if clusters_path is not None:
        clusters = pd.read_csv(clusters_path)[["split", "triplet", "frame", "cluster"]]
        table = table.merge(clusters, on=["split", "triplet", "frame"], how="left", validate="one_to_one")
    if trajectories_path is not None:
        annotations = pd.read_csv(trajectories_path)[["split", "triplet", "level", "general_motion_type"]]
        table = table.merge(annotations, on=["split", "triplet"], how="left", validate="many_to_one")
    table.to_csv(table_path, index=False, float_format="%.6g")
    drawn = trajectory_sample(table, trajectory_count, seed)
    record = {"model": model, "method": method, "seed": seed, "points_total": total, "points_embedded": len(table),
              "point": "one frame's posterior mean, flattened", "settings": settings, "trajectories": drawn,
              "triplet_closeness": triplet_closeness(table, seed), "versions": store.versions()}
    Path(json_path).write_text(json.dumps(record, indent=2) + "\n")
    figure = plot_embedding(table, f"{method.upper()} of {model} latents ({len(table)} frames)", drawn)
    figure.savefig(plot_path, dpi=100)
    plt.close(figure)
    return table
