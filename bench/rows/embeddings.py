"""PCA, UMAP and t-SNE as the points grow (P6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import Row, Timer


def _latent_points(count: int, seed: int = 0) -> np.ndarray:
    """[count, 4096] float32 with the structure of frame latents: 24 clusters (scenes) of triplets whose three
    frames lie close together, plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((24, 4096)).astype(np.float32)
    triplets = -(-count // 3)
    scene = rng.integers(0, len(centres), triplets)
    base = centres[scene] + 0.6 * rng.standard_normal((triplets, 4096)).astype(np.float32)
    frames = base[:, None] + 0.2 * rng.standard_normal((triplets, 3, 4096)).astype(np.float32)
    return frames.reshape(-1, 4096)[:count]


def p6_embeddings(quick: bool, tmp: Path) -> Row:
    """PCA + UMAP + t-SNE wall time as the points grow (4096-d, the size of a (4, 32, 32) latent)."""
    from latent_interp import embed

    sizes = (300, 1200) if quick else (1000, 4000, 16_000, 36_000)
    embed.embed_points(_latent_points(200), "umap")  # numba compiles UMAP once per process: not a cost of size
    seconds = {}
    for count in sizes:
        points = _latent_points(count)
        seconds[count] = {}
        for method in embed.METHODS:
            with Timer() as timer:
                embed.embed_points(points, method)
            seconds[count][method] = round(timer.seconds, 2)
        print(f"  P6 {count:>6} points: {seconds[count]}", flush=True)
    totals = {count: sum(by_method.values()) for count, by_method in seconds.items()}
    growth = totals[sizes[-1]] / totals[sizes[0]]
    limit = 45 * (sizes[-1] / sizes[0]) / 36
    return Row("P6", f"PCA + UMAP + t-SNE time, {sizes[-1]:,} points / {sizes[0]:,}", growth,
               f"<= {limit:.0f}x (about linear)", growth <= limit,
               f"{growth:.1f}x for {sizes[-1] // sizes[0]}x the points (" +
               ", ".join(f"{count:,}: {total:.0f} s" for count, total in totals.items()) + ")",
               {"seconds": seconds})

