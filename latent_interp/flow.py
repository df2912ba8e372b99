"""Rule flow: optical flow of every triplet of a split, once for every VAE (it reads the frames store only).

Flows come from OpenCV (``flow.method``): DIS (Kroeger et al. 2016) with a preset (``flow.preset``, medium by default),
or Farneback; both on the grey frames (ITU-R 601 luma, as ``cv2.cvtColor`` makes it). Conventions:
``latent_interp.warp``.

Store ``results/flow/{split}.zarr`` (kind ``flow``), in the frames store's triplet order:
    ``flow_ends``         float16 [N, 2, H, W, 2]  F_1->3 and F_3->1 (x, y in pixels)
    ``consistent``        uint8   [N, 2, H, W]     forward-backward consistency of F_1->3 and of F_3->1 (1: consistent)
    ``still``             uint8   [N, H, W]        1 where nothing moves between frames 1 and 3 (``still_mask``, with
                                                   the flows to their midpoint): the motion methods keep the plain
                                                   blend there, whatever the in-between's time
    ``oracle_flow``       float16 [N, 2, H, W, 2]  F_2->1 and F_2->3: ORACLE, estimated from frame 2 itself
    ``ok``                bool    [N]              false: a flow was not finite (listed in the table; every flow of
                                                   the triplet is stored as zero, and no flow method is scored on it)
    ``motion_px``         float32 [N]              mean |F_1->3| over pixels (NaN where not ok)
    ``triplets``, ``origins`` str [N]
    attrs: ``kind``, ``split``, ``flow`` (the settings), ``preprocess`` (the frames store's), ``provenance``.
float16 keeps 1/16 px up to 128 px of motion and halves the store (256 px frames: 1 MiB of flows a triplet before
compression). The flows from the in-between to its ends are not stored: every method computes them at its triplet's
time from ``flow_ends`` (``motion_inputs``), so one store serves any t.
Table ``results/flow/{split}.csv``, one row per triplet: ``split``, ``triplet``, ``origin``, ``motion_px`` (mean
|F_1->3| over pixels), ``motion_max_px`` (its 99th percentile), ``consistent_share`` (the share of pixels of both
end flows that pass the check), ``warp_error`` (mean |frame 1 warped onto frame 3 - frame 3| over pixels and
channels, frames in [0, 1]), ``status`` (``ok`` or why the triplet's flow failed).
"""

from __future__ import annotations

import functools
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from latent_interp import schema, store, warp

FLOW_METHODS = ("dis", "farneback")
DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
# OpenCV's documented example values (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma)
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}
DEFAULTS = schema.defaults("flow")  # config flow's defaults
TABLE_COLUMNS = ["split", "triplet", "origin", "motion_px", "motion_max_px", "consistent_share", "warp_error",
                 "status"]
# (array, the pairs (from frame, to frame) it holds), in the store's order
PAIRS = {"ends": ((1, 3), (3, 1)), "oracle": ((2, 1), (2, 3))}


class FlowFailed(ValueError):
    pass


def settings_with_defaults(settings: dict | None) -> dict:
    settings = {**DEFAULTS, **(settings or {})}
    if settings["method"] not in FLOW_METHODS:
        raise ValueError(f"config key flow.method: {settings['method']!r} is not one of {FLOW_METHODS}")
    if settings["method"] == "dis" and settings["preset"] not in DIS_PRESETS:
        raise ValueError(f"config key flow.preset: {settings['preset']!r} is not one of {tuple(DIS_PRESETS)}")
    return settings


def estimator(settings: dict):
    """A function (grey_a, grey_b) uint8 [H, W] -> F_a->b float32 [H, W, 2], from the flow settings."""
    settings = settings_with_defaults(settings)
    if settings["method"] == "dis":
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[settings["preset"]])
        return lambda a, b: dis.calc(a, b, None)
    return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, flags=0, **FARNEBACK)


def grey(frame_uint8: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame_uint8), cv2.COLOR_RGB2GRAY)


def triplet_flows(frames_uint8: np.ndarray, estimate) -> dict[str, np.ndarray]:
    """Every flow of one triplet [3, H, W, 3]: name -> [2, H, W, 2] float32 (the pairs of ``PAIRS``)."""
    greys = {k: grey(frames_uint8[k - 1]) for k in (1, 2, 3)}
    return {name: np.stack([estimate(greys[a], greys[b]) for a, b in pairs]) for name, pairs in PAIRS.items()}


def _channels_first(flows: np.ndarray) -> torch.Tensor:
    """[B, H, W, 2] numpy -> [B, 2, H, W] float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(flows, dtype=np.float32)).permute(0, 3, 1, 2)


def remap(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` [H, W, ...] sampled at p + flow(p) (flow [H, W, 2]): ``warp.backward_warp`` on one image with OpenCV
    (bilinear, edge pixels repeated outside), several times faster on the CPU; OpenCV rounds the sampling position
    to 1/32 px."""
    positions = flow + _pixel_grid(*flow.shape[:2])
    return cv2.remap(image, positions, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@functools.lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """[H, W, 2] float32 (x, y) of every pixel, made once per frame size (read-only)."""
    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), axis=-1)
    grid.flags.writeable = False
    return grid


def _squared_norm(flow: np.ndarray) -> np.ndarray:
    return np.einsum("...k,...k->...", flow, flow)


def consistency(flow_ab: np.ndarray, flow_ba: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """uint8 [H, W], 1 where a's pixel p comes back: |F_ab(p) + F_ba(p + F_ab(p))|^2 < alpha (|F_ab|^2 +
    |F_ba(..)|^2) + beta (Sundaram et al. 2010, as UnFlow uses it), else 0 (occluded or unreliable)."""
    back = remap(flow_ba, flow_ab)
    gap = _squared_norm(flow_ab + back)
    return (gap < alpha * (_squared_norm(flow_ab) + _squared_norm(back)) + beta).astype(np.uint8)


def still_mask(first: np.ndarray, third: np.ndarray, flow_t1: np.ndarray, flow_t3: np.ndarray,
               threshold: float) -> np.ndarray:
    """uint8 [H, W], 1 where nothing moves: frames 1 and 3 (float [H, W, 3] in [0, 1]) differ there by less than
    ``threshold`` (3 x 3 box mean of the channel-mean |difference|) and agree at least as well unwarped as warped to
    the middle along F_t->1, F_t->3.

    Where nothing moves, a flow estimate is noise (flat colour, sub-pixel motion) and bilinear sampling only blurs, so
    a warp loses to the plain blend there; the methods keep the blend (``warp.warp_blend``). It looks at frames 1 and 3
    only, never at frame 2. A threshold of 0 turns it off."""
    if threshold <= 0:
        return np.zeros(first.shape[:2], np.uint8)
    # channel sums rather than means (3 x the mean): the same comparisons, one division fewer per pixel
    warped_gap = cv2.blur(cv2.absdiff(remap(first, flow_t1), remap(third, flow_t3)).sum(-1), (3, 3))
    plain_gap = cv2.blur(cv2.absdiff(first, third).sum(-1), (3, 3))
    return ((plain_gap < 3 * threshold) & (plain_gap <= warped_gap)).astype(np.uint8)


def end_masks(first_uint8: np.ndarray, third_uint8: np.ndarray, flow_13: np.ndarray, flow_31: np.ndarray,
              settings: dict) -> dict[str, np.ndarray]:
    """The masks the methods read beside the end flows of a pair of frames [H, W, 3]: ``consistent`` [2, H, W] (the
    forward-backward check of each end flow) and ``still`` [H, W] (``still_mask``, with the flows to the pair's
    midpoint: whether anything moves between the two is a property of the pair, whatever t)."""
    alpha, beta = settings["consistency_alpha"], settings["consistency_beta"]
    t1, t3 = warp.intermediate_flows(flow_13, flow_31)  # plain arithmetic: numpy arrays work as tensors do
    first, third = (frame.astype(np.float32) * np.float32(1 / 255) for frame in (first_uint8, third_uint8))
    return {"consistent": np.stack([consistency(flow_13, flow_31, alpha, beta),
                                    consistency(flow_31, flow_13, alpha, beta)]),
            "still": still_mask(first, third, t1, t3, settings["still_threshold"])}


def triplet_record(frames_uint8: np.ndarray, estimate, settings: dict) -> dict:
    """Everything the store and the table hold for one triplet [3, H, W, 3] (module docstring), the arrays in their
    store dtypes (``ARRAYS``); ``ok`` False, with every array zero, where a flow is not finite."""
    flows = triplet_flows(frames_uint8, estimate)
    if not all(np.isfinite(f).all() for f in flows.values()):
        return {"ok": False, **{name: np.zeros(shape, ARRAYS[name])
                                for name, shape in array_shapes(*frames_uint8.shape[1:3]).items()}}
    f13, f31 = flows["ends"]
    masks = end_masks(frames_uint8[0], frames_uint8[2], f13, f31, settings)
    magnitude = np.hypot(f13[..., 0], f13[..., 1])
    first, third = (frames_uint8[k].astype(np.float32) * np.float32(1 / 255) for k in (0, 2))
    return {"ok": True, "flow_ends": flows["ends"].astype(np.float16),
            "oracle_flow": flows["oracle"].astype(np.float16), **masks, "motion_px": float(magnitude.mean()),
            "motion_max_px": float(np.percentile(magnitude, 99)),
            "consistent_share": float(masks["consistent"].mean()),
            "warp_error": float(cv2.absdiff(remap(first, f31), third).mean())}  # frame 1 at frame 3's pixels


def pair_rows(pairs_uint8: np.ndarray, settings: dict | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The flow arrays ``read_rows`` gives, for pairs of frames [P, 2, H, W, 3] that no flow store holds (the
    drawings of a video that ``inbetween`` re-times): the two end flows and their masks, no oracle (there is no
    frame between them); and ``ok`` [P], false where a flow is not finite (its arrays zero)."""
    settings = settings_with_defaults(settings)
    estimate = estimator(settings)
    height, width = pairs_uint8.shape[2:4]
    shapes = array_shapes(height, width)
    rows = {name: np.zeros((len(pairs_uint8), *shapes[name]), dtype) for name, dtype in ARRAYS.items()}
    ok = np.zeros(len(pairs_uint8), bool)
    for index, (first, third) in enumerate(pairs_uint8):
        greys = grey(first), grey(third)
        ends = np.stack([estimate(greys[0], greys[1]), estimate(greys[1], greys[0])])
        if not np.isfinite(ends).all():
            continue
        ok[index] = True
        rows["flow_ends"][index] = ends
        for name, mask in end_masks(first, third, ends[0], ends[1], settings).items():
            rows[name][index] = mask
    return rows, ok


ARRAYS = {"flow_ends": np.float16, "consistent": np.uint8, "still": np.uint8, "oracle_flow": np.float16}


def array_shapes(height: int, width: int) -> dict[str, tuple[int, ...]]:
    """Each array's shape for one triplet (module docstring)."""
    return {"flow_ends": (2, height, width, 2), "consistent": (2, height, width), "still": (height, width),
            "oracle_flow": (2, height, width, 2)}


def compute_split_flow(*, frames, flow, table, split: str, settings: dict | None = None, on_error: str = "skip",
                       threads: int = 1) -> pd.DataFrame:
    """Rule flow: the frames store ``frames`` -> the flow store ``flow`` and its ``table`` (docs/outputs.md).

    The triplets run in a pool of ``threads`` threads, each with its own estimator (OpenCV releases the GIL), with
    OpenCV's own threading off: on 2 cores that is 54 against 44 triplets/s of flows for one loop with 2 OpenCV
    threads (256 px, DIS medium); the store is written in another thread while the next chunk is computed."""
    frames_path, store_path, table_path = frames, flow, table
    settings = settings_with_defaults(settings)
    frames_group = store.open_store(frames_path, "frames")
    names, origins = store.names(frames_group), store.origins(frames_group)
    frames = frames_group[store.FRAMES]
    group = store.create(store_path, "flow", split, {
        "flow": settings, "preprocess": dict(frames_group.attrs.get("preprocess", {})),
        "frames": str(frames_path), "provenance": store.provenance("flow", settings)}, names, origins)
    shapes = array_shapes(*frames.shape[2:4])
    rows_per_chunk = store.triplets_per_chunk(shapes["flow_ends"], np.float16, len(names))
    arrays = {name: store.add_array(group, name, shapes[name], dtype, chunk_rows=rows_per_chunk)
              for name, dtype in ARRAYS.items()}
    local = threading.local()

    def work(triplet):
        if not hasattr(local, "estimate"):
            local.estimate = estimator(settings)
        return triplet_record(triplet, local.estimate, settings)

    threads_before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    ok, rows = np.ones(len(names), bool), []
    # whole chunks of the flow store at a time (they hold fewer triplets than the frames store's); the next chunk's
    # triplets are queued before this one's are collected, so the threads never wait for the writes
    spans = list(store.chunk_ranges(arrays["flow_ends"]))
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool, store.WriteBehind() as writer, \
                tqdm(total=len(names), desc=f"flow {split}", unit="triplet") as progress:
            def submit(span):
                return [pool.submit(work, triplet) for triplet in frames[span[0]:span[1]]]

            queued = submit(spans[0]) if spans else []
            for position, (start, stop) in enumerate(spans):
                current, queued = queued, submit(spans[position + 1]) if position + 1 < len(spans) else []
                buffers = {name: np.empty((stop - start, *shapes[name]), dtype) for name, dtype in ARRAYS.items()}
                for offset, future in enumerate(current):
                    record, index = future.result(), start + offset
                    if not record["ok"]:
                        if on_error == "fail":
                            raise FlowFailed(f"flow {split}: {frames_path}: the flow of triplet {names[index]} is not "
                                             "finite (config key data.on_error is 'fail'; 'skip' lists it in the flow "
                                             "table and leaves it unscored by the flow methods)")
                        ok[index] = False
                    rows.append([split, names[index], origins[index],
                                 *(record.get(key, np.nan) for key in ("motion_px", "motion_max_px",
                                                                       "consistent_share", "warp_error")),
                                 "ok" if record["ok"] else "skipped: a flow was not finite"])
                    for name in ARRAYS:
                        buffers[name][offset] = record[name]
                    progress.update(1)
                writer.write(*((arrays[name], slice(start, stop), buffers[name]) for name in ARRAYS))
    finally:
        cv2.setNumThreads(threads_before)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    store.create_array(group, "ok", (len(names),), bool)[:] = ok
    store.create_array(group, "motion_px", (len(names),), np.float32)[:] = table["motion_px"].to_numpy(np.float32)
    store.seal(group)
    table.to_csv(table_path, index=False, float_format="%.6g")
    print(f"flow {split}: {len(names)} triplets, {int((~ok).sum())} skipped; median motion "
          f"{table['motion_px'].median():.2f} px; settings {json.dumps(settings)}")
    return table


def read_rows(group, start: int, stop: int) -> dict[str, np.ndarray]:
    """The flow arrays of triplets [start, stop) that the methods warp with."""
    return {name: group[name][start:stop]
            for name in ("flow_ends", "consistent", "still", "oracle_flow")}


def motion_inputs(rows: dict[str, np.ndarray], kind: str, settings: dict, times=None):
    """(F_t->1, F_t->3, weight of end 1, still) [B, 2 | 2 | 1 | 1, H, W] float32 tensors at the in-betweens' ``times``
    (None: the midpoint; a number; or one per triplet [B]) for ``kind`` ``estimated`` (Super SloMo's flows at t from
    the stored end flows, the weight from ``warp.visibility_middle``, the store's still mask) or ``oracle`` (F_2->1
    and F_2->3, estimated from frame 2 itself, so at its own time whatever ``times`` says: weights 1 - t and t, and
    no still mask, as its motion is right by construction; weighting it by the oracle flows' own consistency measured
    0.5 dB worse on the demo's test split)."""
    settings = settings_with_defaults(settings)
    if kind == "oracle":
        flow_t1, flow_t3 = (_channels_first(rows["oracle_flow"][:, k]) for k in (0, 1))
        weight_1 = torch.zeros_like(flow_t1[:, :1]) + (1 - warp.times_of(times, flow_t1))
        return flow_t1, flow_t3, weight_1, torch.zeros_like(flow_t1[:, :1])
    if kind != "estimated":
        raise ValueError(f"motion kind {kind!r}: expected 'estimated' or 'oracle'")
    flow_13, flow_31 = (_channels_first(rows["flow_ends"][:, k]) for k in (0, 1))
    t = warp.times_of(times, flow_13)
    flow_t1, flow_t3 = warp.intermediate_flows(flow_13, flow_31, t)
    consistent_13, consistent_31 = (torch.from_numpy(rows["consistent"][:, k:k + 1].astype(np.float32))
                                    for k in (0, 1))
    with torch.no_grad():
        visible_1, visible_3 = warp.visibility_middle(flow_t1, flow_t3, flow_13, flow_31, consistent_13,
                                                      consistent_31, t=t, tolerance=settings["visibility_tolerance"])
    still = torch.from_numpy(rows["still"][:, None].astype(np.float32))
    return flow_t1, flow_t3, warp.blend_weights(visible_1, visible_3, t), still
