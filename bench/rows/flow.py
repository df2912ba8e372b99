"""The flow stage against the bare OpenCV calls on the same frames (P11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import Row, Timer, cartoon_triplets, cores, frames_store


class _Repeated:
    """``count`` triplets cycling through ``drawn`` (what ``frames_store`` reads, slice by slice): ATD-12K's size
    without holding 12,000 triplets in memory."""

    def __init__(self, drawn: np.ndarray, count: int):
        self.drawn, self.shape = drawn, (count, *drawn.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.drawn[np.arange(*rows.indices(len(self))) % len(self.drawn)]


def p11_flow(quick: bool, tmp: Path) -> Row:
    """The flow stage (read, four flows a triplet, the masks and figures, store write) against the bare OpenCV calls
    (grey conversion and the same four flows) on the same frames; full size: ATD-12K's 12,000 triplets at 256 px,
    whose wall time docs/performance.md states."""
    import cv2

    from latent_interp import flow, store

    count, size, sample = (8, 32, 8) if quick else (12000, 256, 300)
    path = frames_store(tmp / "p11-frames.zarr", _Repeated(cartoon_triplets(32, size), count))
    workers = cores()
    with Timer() as stage:
        flow.compute_split_flow(frames=path, flow=tmp / "p11-flow.zarr", table=tmp / "p11-flow.csv", split="bench",
                                settings={}, threads=workers)
    frames = store.open_store(path)[store.FRAMES][:sample]
    cv2.setNumThreads(workers)
    estimate = flow.estimator({})
    with Timer() as bare:
        for triplet in frames:
            flow.triplet_flows(triplet, estimate)
    stage_rate, bare_rate = count / stage.seconds, sample / bare.seconds
    ratio = stage_rate / bare_rate
    return Row("P11", "flow stage / bare cv2 (grey + the four DIS flows), same frames", ratio, ">= 0.9", ratio >= 0.9,
               f"{ratio:.2f} ({stage_rate:.1f} vs {bare_rate:.1f} triplets/s; {count:,} triplets at {size} px in "
               f"{stage.seconds / 60:.1f} min)",
               {"triplets": count, "size": size, "stage_seconds": stage.seconds, "bare_triplets": sample,
                "bare_seconds": bare.seconds, "threads": workers})
