"""Frame 2 from frames 1 and 3: the interpolation methods, their scores per triplet, and the summary.

Methods (``METHODS``, in table order; each one registered ``Method``: what it reads, whether it sees frame 2, whether it
is learned, so that adding one touches no scoring loop):
    ``repeat``        frame 1 itself (its latent: latent1)
    ``pixel_blend``   the mean of frames 1 and 3 in pixel space, rounded to uint8 (no VAE, no latent)
    ``pixel_flow``    frames 1 and 3 warped to the middle along the estimated flow and blended (``latent_interp.warp``:
                      Super SloMo's intermediate flows, occlusion-aware weights, the blend kept where nothing moves)
    ``latent_lerp``   decode of (latent1 + latent3) / 2, latents being posterior means
    ``latent_slerp``  decode of the spherical midpoint over the flattened latent (``slerp_midpoint``)
    ``linear``, ``mlp``, ``unet``   decode of a learned predictor's latent2 (``latent_interp.predictors``)
    ``latent_flow``   decode of latent1 and latent3 warped like ``pixel_flow``, with the flows averaged over each
                      latent cell and divided by the VAE's downsampling
    ``flow_unet``     decode of a learned correction of ``latent_flow`` (``latent_interp.predictors``)
    ``recon_flow``    ``pixel_flow`` applied to the VAE's reconstructions of frames 1 and 3: against ``latent_flow``,
                      what warping inside the latent grid costs beyond what the decoder loses anyway
    ``pixel_flow_oracle``, ``latent_flow_oracle``   the same warps along the ORACLE flows 2->1 and 2->3, estimated from
                      frame 2 itself: the bound perfect motion gives in each space, not in-between methods
    ``vae_ceiling``   the reconstruction of frame 2 (the recon store): what decoding the true latent2 gives, so no
                      latent method can beat it
Methods that see frame 2 (``Method.sees_frame2``: the oracles and the ceiling) are never a "best method". A triplet
whose flow failed (the flow table's ``status``) has empty scores for the methods that read flow.
Scores are against the true frame 2, in each protocol of ``metrics.protocol`` (``PROTOCOL_COLUMNS``):
    ``standard``     ``latent_mse`` (mean squared difference from the encoded latent2, unscaled latent units; empty for
                     the pixel-space methods), ``mse``, ``psnr``, ``ssim`` (the metric tables' definitions,
                     ``metrics.image_metrics``) and ``lpips`` (inputs in [-1, 1]); inside the motion RoI on annotated
                     splits ``roi_mse``, ``roi_psnr``, ``roi_ssim`` (``metrics.roi_box``)
    ``animeinterp``  ``animeinterp_psnr``, ``animeinterp_ssim`` as AnimeInterp's test script computes them (SSIM's data
                     range 2, ``metrics.ANIMEINTERP_SPEC``); annotated splits add ``animeinterp_roi_psnr``,
                     ``animeinterp_roi_ssim`` in the script's RoI (``metrics.animeinterp_roi_box``)
    ``eisai``        ``eisai_lpips`` (AlexNet, [0, 1] inputs as EISAI feeds them) and ``eisai_chamfer`` (its chamfer
                     line distance, ``latent_interp.perceptual``)
LPIPS columns are empty when no LPIPS backbone is configured (``interp.lpips.backbone``).

Table ``results/interp/{model}/{split}.csv``, one row per triplet and method:
    ``model``, ``split``, ``triplet``, ``origin``, ``method``, the protocols' whole-image columns (above, in that
    order), ``motion_px`` (the flow table's mean |F_1->3|: every method's row of a triplet holds it), ``t`` (where
    frame 2 lies in time between frames 1 and 3, the frames store's ``t``: measured on videos, 0.5 assumed for
    triplet folders; every method predicts the midpoint, so a t far from 0.5 costs them all), then on
    annotated splits the RoI columns and ``level``, ``general_motion_type``, ``behavior``. Next to it
    ``{split}.spec.json``: how each column was computed.
Store ``results/interp/{model}/{split}.zarr`` (kind ``interp``):
    ``triplets``, ``origins`` str [N]
    ``predicted_latents`` float32 [N, M, C, h, w]   every latent method's latent2 (order: attrs ``latent_methods``)
    ``gallery`` uint8 [G, K, H, W, 3]   decoded (or blended) frame 2 of each method (order: attrs ``methods``) for
                                        ``gallery_triplets`` str [G]: first the ``gallery_worst`` with the lowest
                                        ``latent_lerp`` PSNR, worst first (all N with ``interp.gallery_triplets:
                                        all``), then a fixed-seed sample of the others (``interp.sample_triplets``,
                                        the same names for every model), by name: the report's triplet panels
    attrs: ``kind``, ``split``, ``model``, ``methods``, ``latent_methods``, ``gallery_worst``, ``vae`` (the decoder),
    ``latents_vae`` (the encoder of the latents), ``predictors`` (folder and selections), ``provenance``.
Table ``results/interp/summary.csv``, one row per model, method, split and group (``origin`` and, on annotated
splits, ``level``, ``all`` where not split by it): ``n_triplets`` and, for each metric of ``SUMMARY_METRICS``, its
mean ``<m>`` with a 95% bootstrap CI over triplets (``<m>_ci_low``, ``<m>_ci_high``), the paired difference to
``latent_lerp`` on the same triplets (``<m>_vs_lerp`` with ``_ci_low``/``_ci_high``) and to ``vae_ceiling``
(``<m>_vs_ceiling``, likewise): the gap to the ceiling; ``gap_closed`` (with ``_ci_low``/``_ci_high``): the share of
lerp's PSNR gap to the ceiling that the method closes, (mean PSNR - mean lerp PSNR) / (mean ceiling PSNR - mean lerp
PSNR) on the same triplets, with a paired bootstrap CI (0: lerp, 1: the ceiling, below 0: worse than lerp);
``sees_frame2`` (the oracles and the ceiling). Besides the groups by origin and level, ``motion`` groups the triplets
by quantile bins of ``motion_px`` (``interp.motion_bins`` of them, named ``q1`` .. with their range in px,
``motion_low``/``motion_high``; ``all`` in the other rows).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from latent_interp import data, encode, flow, metrics, perceptual, predictors, store, vae, warp

# The score columns of each protocol of ``metrics.protocol`` (metrics.PROTOCOLS), whole image, then inside the RoI
# (annotated splits only). Each protocol's columns carry its name, so no figure is read for another's.
PROTOCOL_COLUMNS = {"standard": ["latent_mse", "mse", "psnr", "ssim", "lpips"],
                    "animeinterp": ["animeinterp_psnr", "animeinterp_ssim"],
                    "eisai": ["eisai_lpips", "eisai_chamfer"]}
PROTOCOL_ROI_COLUMNS = {"standard": metrics.ROI_COLUMNS,
                        "animeinterp": ["animeinterp_roi_psnr", "animeinterp_roi_ssim"], "eisai": []}
KEY_COLUMNS = ["model", "split", "triplet", "origin", "method"]
SUMMARY_METRICS = ("psnr", "ssim", "mse", "latent_mse", "lpips", "roi_psnr", "roi_ssim", "animeinterp_psnr",
                   "animeinterp_ssim", "animeinterp_roi_psnr", "animeinterp_roi_ssim", "eisai_lpips", "eisai_chamfer")
# Which way is better, for tables and the report.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "roi_psnr": True, "roi_ssim": True, "mse": False,
                    "latent_mse": False, "lpips": False, "animeinterp_psnr": True, "animeinterp_ssim": True,
                    "animeinterp_roi_psnr": True, "animeinterp_roi_ssim": True, "eisai_lpips": False,
                    "eisai_chamfer": False}


def table_columns(protocols, annotated: bool) -> tuple[list[str], list[str]]:
    """(whole-image score columns, RoI score columns) of an interp table for ``protocols``, in table order."""
    chosen = [name for name in metrics.PROTOCOLS if name in protocols]
    roi = [c for name in chosen for c in PROTOCOL_ROI_COLUMNS[name]] if annotated else []
    return [c for name in chosen for c in PROTOCOL_COLUMNS[name]], roi


# LPIPS's inputs by column: standard maps uint8 to [-1, 1], the range LPIPS expects; eisai feeds [0, 1] images as
# they are, as EISAI's evaluate.py does (lpips.LPIPS called without normalize=True)
LPIPS_INPUTS = {"lpips": data.to_model_range,
                "eisai_lpips": lambda frames: np.moveaxis(frames, -1, -3).astype(np.float32) / 255.0}
PARALLEL_TOLERANCE = 1e-6  # sin(angle) below this: the vectors are (anti)parallel and slerp falls back to lerp


def lerp_midpoint(first: np.ndarray, third: np.ndarray) -> np.ndarray:
    return (first + third) / 2


def slerp_midpoint(first: np.ndarray, third: np.ndarray) -> np.ndarray:
    """Spherical midpoint of each pair of latents [B, ...], over the whole flattened latent.

    slerp(a, b, 1/2) = sin(w/2) / sin(w) * (a + b) with w the angle between a and b: it follows the great circle
    (equal-norm vectors keep their norm) rather than the chord. Where the angle is undefined or the formula
    degenerates (a zero vector, or a and b parallel or opposite: sin w ~ 0) it falls back to the lerp midpoint, which
    for equal vectors is that vector.
    """
    flat_first = first.reshape(len(first), -1).astype(np.float64)
    flat_third = third.reshape(len(third), -1).astype(np.float64)
    norms = np.linalg.norm(flat_first, axis=1) * np.linalg.norm(flat_third, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.clip(np.einsum("ij,ij->i", flat_first, flat_third) / norms, -1.0, 1.0)
        angle = np.arccos(cosine)
        weight = np.sin(angle / 2) / np.sin(angle)
    degenerate = (norms == 0) | ~np.isfinite(weight) | (np.sin(angle) < PARALLEL_TOLERANCE)
    weight = np.where(degenerate, 0.5, weight)  # 0.5 * (a + b): lerp
    return (weight[:, None] * (flat_first + flat_third)).reshape(first.shape).astype(first.dtype)


def pixel_blend(first_uint8: np.ndarray, third_uint8: np.ndarray) -> np.ndarray:
    return np.rint((first_uint8.astype(np.float32) + third_uint8.astype(np.float32)) / 2).astype(np.uint8)


@dataclass
class Chunk:
    """What the methods read for a run of triplets; the flows on each grid are derived once, when first asked."""
    frames: np.ndarray               # uint8 [B, 3, H, W, 3], the true frames
    recon: np.ndarray                # uint8 [B, 3, H, W, 3], the VAE's reconstructions of them
    latents: np.ndarray              # float32 [B, 3, C, h, w], posterior means
    flow_rows: dict | None           # the flow store's arrays for these triplets (``flow.read_rows``), or None
    learned: dict                    # name -> a loaded predictor
    device: torch.device
    flow_settings: dict = field(default_factory=dict)  # the flow store's settings
    downsampling: int = 8            # the VAE's (frame size over latent size, before the pad to its multiple)
    _motion: dict = field(default_factory=dict, init=False, repr=False)  # (kind, latent grid?) -> motion

    def motion(self, kind: str, latent: bool = False) -> tuple[torch.Tensor, ...]:
        """(F_t->1, F_t->3, weight of end 1, still) of ``kind`` ``estimated`` or ``oracle`` (``flow.motion_inputs``),
        on the pixel or the latent grid."""
        key = (kind, latent)
        if key not in self._motion:
            self._motion[key] = (warp.motion_to_latent_grid(self.motion(kind), self.downsampling) if latent else
                                 tuple(t.to(self.device) for t in flow.motion_inputs(self.flow_rows, kind,
                                                                                     self.flow_settings)))
        return self._motion[key]

    def warp_frames(self, frames_uint8: np.ndarray, kind: str) -> np.ndarray:
        """Frames [B, 3, H, W, 3] uint8: 1 and 3 warped to the middle and blended (``warp.warp_blend``)."""
        ends = [torch.from_numpy(np.moveaxis(frames_uint8[:, k], -1, 1).astype(np.float32) / 255).to(self.device)
                for k in (0, 2)]
        middle = warp.warp_blend(*ends, *self.motion(kind))
        return np.rint(np.moveaxis(middle.clamp(0, 1).cpu().numpy(), 1, -1) * 255).astype(np.uint8)

    def warp_latents(self, kind: str) -> np.ndarray:
        first, third = (torch.from_numpy(np.ascontiguousarray(self.latents[:, k])).to(self.device) for k in (0, 2))
        return warp.warp_blend(first, third, *self.motion(kind, latent=True)).cpu().numpy()

    def learned_latents(self, name: str) -> np.ndarray:
        first, third = (torch.from_numpy(np.ascontiguousarray(self.latents[:, k])).to(self.device) for k in (0, 2))
        extra = self.motion("estimated", latent=True) if name in predictors.FLOW_PREDICTORS else ()
        return predictors.predict(self.learned[name], first, third, *extra).cpu().numpy()


@dataclass(frozen=True)
class Method:
    """One way to predict frame 2. ``output`` "frame": ``predict`` gives uint8 frames [B, H, W, 3]; "latent": it gives
    latent2 [B, C, h, w], which the model's decoder turns into frames. ``reads``: frames, recon, latents, flow,
    oracle_flow, predictor. ``sees_frame2``: a bound (an oracle, the ceiling), never a "best method". ``stands_for``:
    the latent (0: latent1, 1: latent2) a frame method's frame is the decoding of, for its latent MSE."""
    name: str
    output: str
    reads: tuple[str, ...]
    formula: str
    predict: Callable[[Chunk], np.ndarray]
    sees_frame2: bool = False
    learned: bool = False
    stands_for: int | None = None

    @property
    def reads_flow(self) -> bool:
        return bool({"flow", "oracle_flow"} & set(self.reads))


def _learned(name: str, reads: tuple[str, ...], formula: str) -> Method:
    return Method(name, "latent", reads, formula, lambda chunk: chunk.learned_latents(name), learned=True)


REGISTRY: dict[str, Method] = {method.name: method for method in (
    Method("repeat", "frame", ("frames",), "frame 1", lambda c: c.frames[:, 0], stands_for=0),
    Method("pixel_blend", "frame", ("frames",), "rint((frame1 + frame3) / 2) in pixel space",
           lambda c: pixel_blend(c.frames[:, 0], c.frames[:, 2])),
    Method("pixel_flow", "frame", ("frames", "flow"),
           "frames 1 and 3 backward-warped along F_t->1, F_t->3 (Super SloMo, t = 0.5), occlusion-weighted blend, "
           "the plain blend kept where nothing moves (the flow store's still mask; latent_interp.warp)",
           lambda c: c.warp_frames(c.frames, "estimated")),
    Method("latent_lerp", "latent", ("latents",), "decode((latent1 + latent3) / 2), posterior means, unscaled",
           lambda c: lerp_midpoint(c.latents[:, 0], c.latents[:, 2])),
    Method("latent_slerp", "latent", ("latents",),
           "decode(sin(w/2)/sin(w) * (latent1 + latent3)), w the angle of the flattened latents; lerp where "
           f"sin(w) < {PARALLEL_TOLERANCE} or a latent is zero",
           lambda c: slerp_midpoint(c.latents[:, 0], c.latents[:, 2])),
    *(_learned(name, ("latents", "predictor"), f"decode of predictor {name}") for name in predictors.LATENT_PREDICTORS),
    Method("latent_flow", "latent", ("latents", "flow"),
           "decode of latent1 and latent3 warped like pixel_flow, flows and weights averaged over each latent cell "
           "and divided by the VAE's downsampling, lerp in the cells where most pixels are still",
           lambda c: c.warp_latents("estimated")),
    _learned("flow_unet", ("latents", "flow", "predictor"),
             "decode of latent_flow plus predictor flow_unet's residual"),
    Method("recon_flow", "frame", ("recon", "flow"), "pixel_flow applied to the reconstructions of frames 1 and 3",
           lambda c: c.warp_frames(c.recon, "estimated")),
    Method("pixel_flow_oracle", "frame", ("frames", "oracle_flow"),
           "ORACLE: frames 1 and 3 warped along F_2->1, F_2->3 (estimated from frame 2) and averaged",
           lambda c: c.warp_frames(c.frames, "oracle"), sees_frame2=True),
    Method("latent_flow_oracle", "latent", ("latents", "oracle_flow"),
           "ORACLE: latent1 and latent3 warped along F_2->1, F_2->3 (estimated from frame 2) on the latent grid and "
           "averaged", lambda c: c.warp_latents("oracle"), sees_frame2=True),
    Method("vae_ceiling", "frame", ("recon",), "the reconstruction of frame 2 (decode of the true latent2)",
           lambda c: c.recon[:, 1], sees_frame2=True, stands_for=1),
)}
METHODS = tuple(REGISTRY)
LATENT_METHODS = tuple(name for name, method in REGISTRY.items() if method.output == "latent")
SEES_FRAME2 = frozenset(name for name, method in REGISTRY.items() if method.sees_frame2)


def active_methods(learned: dict, with_flow: bool) -> list[str]:
    """The methods this run can score: learned ones only where trained, flow ones only with a flow store."""
    return [name for name, method in REGISTRY.items()
            if (not method.learned or name in learned) and (with_flow or not method.reads_flow)]


class Scorer:
    """Scores of predicted frames 2 against the true one, in every protocol asked for (``table_columns``)."""

    def __init__(self, annotations, size, protocols, lpips_model=None, device=None):
        self.annotations, self.size, self.lpips_model, self.device = annotations, size, lpips_model, device
        self.protocols = set(protocols)
        self.columns, self.roi_columns = table_columns(protocols, annotations is not None)

    def lpips(self, truth: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
        """LPIPS of uint8 [B, H, W, 3] pairs for each LPIPS column of the protocols (``LPIPS_INPUTS``), NaN when no
        LPIPS weights were configured."""
        wanted = [column for column in LPIPS_INPUTS if column in self.columns]
        if self.lpips_model is None:
            return {column: np.full(len(truth), np.nan) for column in wanted}
        with torch.no_grad():
            return {column: self.lpips_model(*(torch.from_numpy(np.ascontiguousarray(LPIPS_INPUTS[column](x)))
                                               .to(self.device) for x in (truth, predicted))).float().cpu().numpy()
                    for column in wanted}

    def scores(self, index: int, truth: np.ndarray, predicted: np.ndarray, latent_error: float, lpips: dict) -> dict:
        """column -> value of the prediction of triplet ``index`` of the split (``self.columns`` and
        ``self.roi_columns``); ``lpips``: its LPIPS values by column."""
        scores = dict(lpips)
        if "standard" in self.protocols:
            scores["latent_mse"] = latent_error
            scores["mse"], scores["psnr"], scores["ssim"] = metrics.image_metrics(truth, predicted)
        if "animeinterp" in self.protocols:
            scores["animeinterp_psnr"], scores["animeinterp_ssim"] = metrics.animeinterp_metrics(truth, predicted)
        if "eisai" in self.protocols:
            scores["eisai_chamfer"] = perceptual.chamfer_distance(truth, predicted)
        if self.annotations is not None:
            annotation = self.annotations.iloc[index]
            if "standard" in self.protocols:
                (top, bottom), (left, right) = metrics.roi_box(annotation, self.size)
                scores.update(zip(metrics.ROI_COLUMNS, metrics.image_metrics(truth[top:bottom, left:right],
                                                                             predicted[top:bottom, left:right])))
            if "animeinterp" in self.protocols:
                (top, bottom), (left, right) = metrics.animeinterp_roi_box(annotation, self.size)
                scores.update(zip(PROTOCOL_ROI_COLUMNS["animeinterp"], metrics.animeinterp_metrics(
                    truth[top:bottom, left:right], predicted[top:bottom, left:right])))
        return scores


def interp_spec(lpips_record: str | None, predictors_dir, methods: list[str], flow_settings: dict | None,
                protocols=("standard",)) -> dict:
    return {
        "target": "the true frame 2 (uint8 frames store); every prediction is uint8 before scoring",
        "protocols": [name for name in metrics.PROTOCOLS if name in protocols],
        "methods": {name: {"formula": REGISTRY[name].formula, "reads": list(REGISTRY[name].reads),
                           "sees_frame2": REGISTRY[name].sees_frame2, "learned": REGISTRY[name].learned}
                    for name in methods},
        "predictors": str(predictors_dir),
        "flow": flow_settings,
        "standard: mse, psnr, ssim, roi_*": metrics.metric_spec(),
        "standard: latent_mse": "mean over C*h*w of (predicted latent2 - encoded latent2)^2, unscaled latent units; "
                                "repeat uses latent1; empty for the other pixel-space methods; 0 for vae_ceiling",
        "standard: lpips": (lpips_record + "; inputs uint8 / 127.5 - 1") if lpips_record
        else "skipped: no LPIPS backbone configured (interp.lpips.backbone)",
        "animeinterp_*": metrics.ANIMEINTERP_SPEC,
        "eisai_chamfer": perceptual.CHAMFER_SPEC,
        "eisai_lpips": (lpips_record + "; inputs uint8 / 255 in [0, 1], fed as they are, as EISAI's evaluate.py does")
        if lpips_record else "skipped: no LPIPS backbone configured (interp.lpips.backbone)",
        "motion_px": "the flow table's motion_px of the triplet: mean |F_1->3| in pixels",
        "better": {metric: "higher" if up else "lower" for metric, up in HIGHER_IS_BETTER.items()},
    }


def score_split(frames_path, latents_path, recon_path, predictors_dir, vae_source, table_path, spec_path, store_path,
                model_name: str, split: str, gallery_triplets=6, sample_triplets: int = 0, seed: int = 0,
                batch_size: int | str = 16, device: str = "auto", threads: int = 1, vae_options: dict | None = None,
                lpips_weights: dict | None = None, flow_path=None, protocols=("standard",),
                compile_setting: str | bool = "auto") -> pd.DataFrame:
    """Rule interp: every method on one model's split -> table, spec and store (module docstring), scored in
    ``protocols`` (``metrics.protocol``). Without ``flow_path`` the methods that read flow are left out."""
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    frames_group = store.open_store(frames_path, "frames")
    latents_group = store.open_store(latents_path, "latents")
    recon_group = store.open_store(recon_path, "recon")
    names = store.require_same_triplets(frames_group, latents_group, frames_path, latents_path)
    store.require_same_triplets(frames_group, recon_group, frames_path, recon_path)
    flow_group = None
    if flow_path is not None:
        flow_group = store.open_store(flow_path, "flow")
        store.require_same_triplets(frames_group, flow_group, frames_path, flow_path)
    model, vae_record = vae.load_vae(vae_source, torch_device, **(vae_options or {}))
    model = encode.prepare_model(model, torch_device)
    batch_size = encode.resolve_batch_size(model, torch_device, batch_size, frames_group[store.FRAMES].shape[2:4],
                                           vae_record)["batch_size"]
    if vae_record["sha256"] != recon_group.attrs["vae"]["sha256"]:
        raise ValueError(f"{recon_path} was decoded by {recon_group.attrs['vae']['source']}, not by {vae_source}")
    vae.require_same_latent_space(latents_group.attrs["vae"], vae_record, str(latents_path),
                                  f"the decoding VAE {vae_source}")
    learned, predictors_record = predictors.load_predictors(predictors_dir, torch_device)
    if predictors_record["vae"]["sha256"] != latents_group.attrs["vae"]["sha256"]:
        raise ValueError(f"{predictors_dir} was trained on latents of {predictors_record['vae']['source']}, "
                         f"but {latents_path} holds latents of {latents_group.attrs['vae']['source']}")
    lpips_model = lpips_record = None
    if lpips_weights and lpips_weights.get("backbone"):
        lpips_model = perceptual.load_lpips(lpips_weights["backbone"], lpips_weights.get("linear"), torch_device)
        lpips_record = perceptual.lpips_spec(lpips_weights["backbone"], lpips_weights.get("linear"))
    else:
        print("LPIPS skipped: interp.lpips.backbone names no weight file")
    methods = active_methods(learned, flow_group is not None)
    latent_methods = [m for m in methods if REGISTRY[m].output == "latent"]
    # what this job decodes, every latent method's frame 2 of every triplet, decides vae.compile auto
    compiled = encode.compile_for_job(model, torch_device, compile_setting, {
        "decoder": len(names) * len(latent_methods) * int(np.prod(frames_group[store.FRAMES].shape[2:4])) / 1e6})
    flow_settings = dict(flow_group.attrs["flow"]) if flow_group is not None else None
    frames, recon, mean = frames_group[store.FRAMES], recon_group[store.FRAMES], latents_group[store.MEAN]
    annotations = store.read_annotations(frames_group)
    scorer = Scorer(annotations, frames.shape[2:4], protocols, lpips_model, torch_device)
    origins = store.origins(frames_group)
    flow_ok = flow_group["ok"][:] if flow_group is not None else np.ones(len(names), bool)
    motion = flow_group["motion_px"][:] if flow_group is not None else np.full(len(names), np.nan)
    middle_times = store.middle_times(frames_group)
    group = store.create(store_path, "interp", split, {
        "model": model_name, "methods": methods, "latent_methods": latent_methods,
        "sees_frame2": [m for m in methods if REGISTRY[m].sees_frame2], "vae": vae_record,
        "latents_vae": dict(latents_group.attrs["vae"]), "flow": flow_settings,
        "predictors": {"folder": str(predictors_dir),
                       "selected": {k: v["selected"] for k, v in predictors_record["predictors"].items()}},
        "provenance": store.provenance("interp", {"batch_size": batch_size, "device": torch_device.type,
                                                  "compile": compiled,
                                                  "gallery_triplets": gallery_triplets,
                                                  "sample_triplets": sample_triplets, "seed": seed,
                                                  "flow": str(flow_path) if flow_path else None})},
        names, origins)
    predicted_store = store.add_array(group, "predicted_latents", (len(latent_methods), *mean.shape[2:]), np.float32)
    keeper = GalleryKeeper(names, gallery_triplets, sample_triplets, seed)
    columns = [*KEY_COLUMNS, *scorer.columns, "motion_px", "t", *scorer.roi_columns]
    rows, guard = [], encode.NonFiniteGuard()
    with tqdm(total=len(names), desc=f"interp {model_name}/{split}", unit="triplet") as progress:
        for start, stop in store.chunk_ranges(mean):
            chunk = Chunk(frames[start:stop], recon[start:stop], mean[start:stop],
                          flow.read_rows(flow_group, start, stop) if flow_group is not None else None,
                          learned, torch_device, flow_settings or {}, vae_record["downsampling"])
            images, latent_errors, predicted = _predict_chunk(chunk, methods, model, batch_size, vae_record["dtype"],
                                                              guard, names[start:stop])
            predicted_store[start:stop] = np.stack([predicted[m] for m in latent_methods], axis=1)
            truth = chunk.frames[:, 1]
            lerp_first = len(rows) + methods.index("latent_lerp") * (stop - start)  # rows go method by method
            for method in methods:
                lpips = scorer.lpips(truth, images[method])
                unscored = REGISTRY[method].reads_flow
                for offset in range(stop - start):
                    index = start + offset
                    scores = ({} if unscored and not flow_ok[index] else  # a failed flow: no score
                              scorer.scores(index, truth[offset], images[method][offset],
                                            latent_errors[method][offset],
                                            {column: values[offset] for column, values in lpips.items()}))
                    rows.append({"model": model_name, "split": split, "triplet": names[index],
                                 "origin": origins[index], "method": method, "motion_px": motion[index],
                                 "t": middle_times[index], **scores})
            for offset, row in enumerate(rows[lerp_first:lerp_first + stop - start]):
                keeper.offer(names[start + offset], row.get("psnr", np.nan),
                             lambda offset=offset: np.stack([images[m][offset] for m in methods]))
            progress.update(stop - start)
    table = pd.DataFrame(rows, columns=columns)
    if annotations is not None:
        table = table.merge(annotations[["triplet", *metrics.ANNOTATION_COLUMNS]], on="triplet", how="left")
    table.to_csv(table_path, index=False, float_format="%.8g")
    Path(spec_path).write_text(json.dumps(interp_spec(lpips_record, predictors_dir, methods, flow_settings,
                                                      protocols), indent=2) + "\n")
    _write_gallery(group, methods, frames.shape[2:], keeper, gallery_order(table, gallery_triplets, sample_triplets,
                                                                           seed))
    group.attrs["non_finite"] = guard.record()
    store.seal(group)
    return table


class GalleryKeeper:
    """The in-betweens the gallery will hold, kept while the split streams by, so that none is decoded twice: the
    fixed-seed sample (known from the names alone) and the ``count`` worst latent_lerp PSNRs so far (the order
    ``gallery_order`` gives: lowest PSNR first, NaN last, ties by name). Memory: at most count + sample triplets."""

    def __init__(self, names: list[str], count, sample: int, seed: int):
        everyone = sorted(names)
        drawn = np.random.default_rng(seed).permutation(len(everyone))[:sample]  # as gallery_order draws them
        self.sampled = {everyone[i] for i in drawn}
        self.count = len(names) if count == "all" else int(count)
        self.worst: list[tuple] = []  # (key, name), the count lowest keys so far, sorted
        self.images: dict[str, np.ndarray] = {}

    def offer(self, name: str, psnr: float, images) -> None:
        """Consider triplet ``name`` (its latent_lerp PSNR); ``images()`` gives its methods' frames if it is kept."""
        key = (bool(np.isnan(psnr)), psnr, name)
        if self.count and (len(self.worst) < self.count or key < self.worst[-1][0]):
            bisect.insort(self.worst, (key, name))
            if len(self.worst) > self.count:
                _, dropped = self.worst.pop()
                if dropped not in self.sampled:
                    self.images.pop(dropped, None)
            self.images[name] = images()
        elif name in self.sampled:
            self.images[name] = images()

    def __getitem__(self, name: str) -> np.ndarray:
        return self.images[name]


def _predict_chunk(chunk: Chunk, methods: list[str], model, batch_size: int, dtype: str = "auto",
                   guard: encode.NonFiniteGuard | None = None, names: list[str] | None = None):
    """For a chunk of triplets (``names``, for errors): every method's frame 2 (uint8 [B, H, W, 3]), every method's
    latent MSE [B], and every latent method's predicted latent2 (decoded with the non-finite ``guard``)."""
    count, second = len(chunk.latents), chunk.latents[:, 1]
    predicted = {m: REGISTRY[m].predict(chunk) for m in methods if REGISTRY[m].output == "latent"}
    images = {m: REGISTRY[m].predict(chunk) for m in methods if REGISTRY[m].output == "frame"}
    if predicted:
        try:
            decoded = encode.decode_latents(model, np.concatenate(list(predicted.values())), chunk.device,
                                            batch_size, dtype, chunk.frames.shape[2:4], guard)
        except encode.NonFiniteError as error:
            bad = [f"{names[i % count] if names else i % count} ({list(predicted)[i // count]})" for i in error.frames]
            raise encode.NonFiniteError(f"{error} even in float32, predicted frame 2 of: {', '.join(bad[:10])}",
                                        error.frames) from None
        for position, method in enumerate(predicted):
            images[method] = decoded[position * count:(position + 1) * count]
    errors = {}
    for method in methods:
        stands_for = REGISTRY[method].stands_for
        errors[method] = (_latent_mse(predicted[method], second) if method in predicted
                          else _latent_mse(chunk.latents[:, stands_for], second) if stands_for is not None
                          else np.full(count, np.nan))
    return images, errors, predicted


def _latent_mse(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return ((predicted.astype(np.float64) - truth) ** 2).reshape(len(truth), -1).mean(axis=1)


def gallery_order(table: pd.DataFrame, count, sample: int = 0, seed: int = 0) -> tuple[list[str], int]:
    """Triplets whose in-betweens are kept, and how many of them lead as the worst: lowest ``latent_lerp`` PSNR first
    (the largest interpolation error), ``count`` of them or all with ``count == "all"``, ties by name; then
    ``sample`` names drawn with ``seed`` from all triplets (so every model keeps the same typical ones), less those
    already picked, by name."""
    lerp = table[table["method"] == "latent_lerp"].sort_values(["psnr", "triplet"])
    ordered = lerp["triplet"].tolist()
    worst = ordered if count == "all" else ordered[:int(count)]
    everyone = sorted(ordered)
    drawn = np.random.default_rng(seed).permutation(len(everyone))[:sample]
    typical = sorted(set(everyone[i] for i in drawn) - set(worst))
    return worst + typical, len(worst)


def _write_gallery(group, methods, frame_shape, keeper: GalleryKeeper, order: tuple[list[str], int]) -> None:
    picked, worst = order
    group.attrs["gallery_worst"] = worst
    store.write_strings(group, "gallery_triplets", picked)
    gallery = store.add_array(group, "gallery", (len(methods), *frame_shape), np.uint8, count=len(picked))
    for start in range(0, len(picked), gallery.chunks[0]):  # whole chunks, in gallery order
        gallery[start:start + gallery.chunks[0]] = np.stack([keeper[name]
                                                             for name in picked[start:start + gallery.chunks[0]]])


def _group_rows(table: pd.DataFrame, key: dict, resamples: int, seed: int) -> list[dict]:
    """Summary rows of one model, split and group (``key``): every method's means, its paired differences and the
    share of the gap to the ceiling it closes."""
    wide = {metric: table.pivot(index="triplet", columns="method", values=metric)
            for metric in SUMMARY_METRICS if metric in table and table[metric].notna().any()}
    triplets = next(iter(wide.values())).index
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(triplets), size=(resamples, len(triplets))) if len(triplets) > 1 \
        else np.empty((0, 0), int)
    psnr = wide["psnr"].replace([np.inf, -np.inf], np.nan) if "psnr" in wide else None
    rows = []
    for method in [m for m in METHODS if m in table["method"].unique()]:
        row = {**key, "method": method, "n_triplets": len(triplets), "sees_frame2": method in SEES_FRAME2}
        for metric, values in wide.items():
            for suffix, reference in (("", None), ("_vs_lerp", "latent_lerp"), ("_vs_ceiling", "vae_ceiling")):
                if reference is not None and reference not in values:
                    continue
                column = values[method] - (values[reference] if reference else 0)
                column = column.replace([np.inf, -np.inf], np.nan).to_numpy(float)  # exact images: no finite PSNR
                finite = np.isfinite(column)
                row[f"{metric}{suffix}"] = float(column[finite].mean()) if finite.any() else np.nan
                row[f"{metric}{suffix}_ci_low"], row[f"{metric}{suffix}_ci_high"] = metrics.bootstrap_ci(
                    np.where(finite, column, 0.0), finite.astype(float), picks) if finite.any() else (np.nan, np.nan)
        row["gap_closed"], row["gap_closed_ci_low"], row["gap_closed_ci_high"] = _gap_closed(psnr, method, picks)
        rows.append(row)
    return rows


def _gap_closed(psnr: pd.DataFrame | None, method: str, picks: np.ndarray) -> tuple[float, float, float]:
    """(mean method - mean lerp) / (mean ceiling - mean lerp) PSNR over the triplets where all three are finite, and
    its paired bootstrap interval (the same resampled triplets in numerator and denominator)."""
    if psnr is None or not {"latent_lerp", "vae_ceiling", method} <= set(psnr):
        return np.nan, np.nan, np.nan
    gained = (psnr[method] - psnr["latent_lerp"]).to_numpy(float)
    gap = (psnr["vae_ceiling"] - psnr["latent_lerp"]).to_numpy(float)
    finite = np.isfinite(gained) & np.isfinite(gap)
    if not finite.any() or gap[finite].sum() == 0:
        return np.nan, np.nan, np.nan
    gained, gap = np.where(finite, gained, 0.0), np.where(finite, gap, 0.0)
    low, high = metrics.bootstrap_ci(gained, gap, picks)
    return float(gained.sum() / gap.sum()), low, high


def motion_bins(motion: pd.Series, bins: int) -> pd.Series:
    """Each triplet's quantile bin of its motion (``q1`` the stillest), named with its range in px; empty where the
    motion is unknown. Fewer bins where the motions do not have ``bins`` distinct quantiles."""
    known = motion.dropna()
    if known.empty or bins < 1:
        return pd.Series(np.nan, index=motion.index, dtype=object)
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([known.min(), known.max() + 1e-9])
    labels = [f"q{k + 1} ({low:.1f}-{high:.1f} px)" for k, (low, high) in enumerate(zip(edges[:-1], edges[1:]))]
    return pd.cut(motion, edges, labels=labels, include_lowest=True).astype(object)


SUMMARY_KEYS = ["model", "method", "split", "origin", "level", "motion"]


def summarize_interp(table_paths: list[str], out_path, resamples: int = 1000, seed: int = 0,
                     bins: int = 4) -> pd.DataFrame:
    """Rule interp_summary: every interp table -> ``results/interp/summary.csv`` (module docstring)."""
    rows = []
    for path in table_paths:
        table = pd.read_csv(path)
        if table.empty:
            continue
        model, split = table["model"].iloc[0], table["split"].iloc[0]
        base = {"model": model, "split": split, "origin": "all", "level": "all", "motion": "all"}
        groups = [(base, table)]
        groups += [({**base, "origin": origin}, g) for origin, g in table.groupby("origin", sort=True)]
        if "level" in table:
            groups += [({**base, "level": str(int(level))}, g)
                       for level, g in table.dropna(subset=["level"]).groupby("level")]
        if "motion_px" in table and table["motion_px"].notna().any():
            per_triplet = table.drop_duplicates("triplet").set_index("triplet")["motion_px"]
            binned = motion_bins(per_triplet, bins)
            table = table.assign(motion_bin=table["triplet"].map(binned))
            for label, g in table.dropna(subset=["motion_bin"]).groupby("motion_bin", sort=True):
                low, high = g["motion_px"].min(), g["motion_px"].max()
                groups.append(({**base, "motion": label, "motion_low": low, "motion_high": high}, g))
        for key, group in groups:
            rows += _group_rows(group, key, resamples, seed)
    summary = pd.DataFrame(rows) if rows else pd.DataFrame(columns=SUMMARY_KEYS + ["n_triplets"])  # no triplets
    first = [c for c in SUMMARY_KEYS + ["motion_low", "motion_high", "n_triplets", "sees_frame2"] if c in summary]
    summary = summary[first + [c for c in summary.columns if c not in first]]
    summary.to_csv(out_path, index=False, float_format="%.6g")
    return summary
