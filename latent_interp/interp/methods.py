"""The interpolation methods (``REGISTRY``, in table order) and the columns they are scored in: each method is a
registered ``Method`` (what it reads, whether it sees frame 2, whether it is learned), so that adding one touches no
scoring loop. The list of methods and what each computes is in the package docstring (``latent_interp.interp``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from latent_interp import data, flow, metrics, predictors, warp
from latent_interp.interp.depth import MAX_LEVELS, DecoderWarps

FLOW_KINDS = ("estimated", "oracle")  # flow.motion_inputs: from the end frames, or (oracle) from frame 2

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


def _per_row(times, count: int) -> np.ndarray:
    """t per row [B] float32 (``times``: None for the midpoint, a number, or one per row)."""
    return np.broadcast_to(np.asarray(0.5 if times is None else times, np.float32), (count,))


def lerp(first: np.ndarray, third: np.ndarray, times=None) -> np.ndarray:
    """(1 - t) latent1 + t latent3 per row [B, ...] (at t = 0.5 the midpoint (latent1 + latent3) / 2 to the bit,
    ``warp.lerp``)."""
    t = _per_row(times, len(first)).reshape(-1, *([1] * (first.ndim - 1)))
    return warp.lerp(first, third, t).astype(first.dtype, copy=False)


def slerp(first: np.ndarray, third: np.ndarray, times=None) -> np.ndarray:
    """Spherical interpolation of each pair of latents [B, ...] at t (None: the midpoint), over the whole flattened
    latent: sin((1 - t) w) / sin(w) a + sin(t w) / sin(w) b, with w the angle between a and b.

    It follows the great circle (equal-norm vectors keep their norm) rather than the chord; at t = 0.5 both weights
    are sin(w/2) / sin(w) and it is computed as that weight times (a + b), the midpoint's formula. Where the angle is
    undefined or the formula degenerates (a zero vector, or a and b parallel or opposite: sin w ~ 0) it falls back to
    the lerp at t, which for equal vectors is that vector.
    """
    t = _per_row(times, len(first)).astype(np.float64)
    flat_first = first.reshape(len(first), -1).astype(np.float64)
    flat_third = third.reshape(len(third), -1).astype(np.float64)
    norms = np.linalg.norm(flat_first, axis=1) * np.linalg.norm(flat_third, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.clip(np.einsum("ij,ij->i", flat_first, flat_third) / norms, -1.0, 1.0)
        angle = np.arccos(cosine)
        weight_first, weight_third = np.sin((1 - t) * angle) / np.sin(angle), np.sin(t * angle) / np.sin(angle)
    degenerate = ((norms == 0) | ~np.isfinite(weight_first) | ~np.isfinite(weight_third)
                  | (np.sin(angle) < PARALLEL_TOLERANCE))
    weight_first, weight_third = np.where(degenerate, 1 - t, weight_first), np.where(degenerate, t, weight_third)
    middle = t == 0.5
    blended = np.where(middle[:, None], weight_first[:, None] * (flat_first + flat_third),
                       weight_first[:, None] * flat_first + weight_third[:, None] * flat_third)
    return blended.reshape(first.shape).astype(first.dtype)


def pixel_blend(first_uint8: np.ndarray, third_uint8: np.ndarray, times=None) -> np.ndarray:
    """rint((1 - t) frame1 + t frame3) per frame [B, H, W, 3] uint8 (at t = 0.5: rint((frame1 + frame3) / 2))."""
    t = _per_row(times, len(first_uint8)).reshape(-1, 1, 1, 1)
    return np.rint(warp.lerp(first_uint8.astype(np.float32), third_uint8.astype(np.float32), t)).astype(np.uint8)


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
    decoder: DecoderWarps | None = None  # the model's decoder, for the warps inside it (decoder_flow@k)
    times: np.ndarray | None = None  # t of each triplet's in-between [B] (None: the midpoint, 0.5)
    _motion: dict = field(default_factory=dict, init=False, repr=False)  # (kind, latent grid?) -> motion
    _decoder_frames: dict = field(default_factory=dict, init=False, repr=False)  # (kind, level) -> frames

    def motion(self, kind: str, latent: bool = False) -> tuple[torch.Tensor, ...]:
        """(F_t->1, F_t->3, weight of end 1, still) of ``kind`` ``estimated`` or ``oracle`` (``flow.motion_inputs``)
        at the triplets' times, on the pixel or the latent grid."""
        key = (kind, latent)
        if key not in self._motion:
            self._motion[key] = (warp.motion_to_latent_grid(self.motion(kind), self.downsampling) if latent else
                                 tuple(t.to(self.device) for t in flow.motion_inputs(self.flow_rows, kind,
                                                                                     self.flow_settings, self.times)))
        return self._motion[key]

    def t(self, like: torch.Tensor):
        """The triplets' times as ``warp`` takes them, on ``like``'s device."""
        return warp.times_of(self.times, like)

    def warp_frames(self, frames_uint8: np.ndarray, kind: str) -> np.ndarray:
        """Frames [B, 3, H, W, 3] uint8: 1 and 3 warped to the in-between and blended (``warp.warp_blend``)."""
        ends = [torch.from_numpy(np.moveaxis(frames_uint8[:, k], -1, 1).astype(np.float32) / 255).to(self.device)
                for k in (0, 2)]
        middle = warp.warp_blend(*ends, *self.motion(kind), self.t(ends[0]))
        return np.rint(np.moveaxis(middle.clamp(0, 1).cpu().numpy(), 1, -1) * 255).astype(np.uint8)

    def warp_latents(self, kind: str) -> np.ndarray:
        first, third = (torch.from_numpy(np.ascontiguousarray(self.latents[:, k])).to(self.device) for k in (0, 2))
        return warp.warp_blend(first, third, *self.motion(kind, latent=True), self.t(first)).cpu().numpy()

    def decoder_flow(self, kind: str, level: int) -> np.ndarray:
        """Frames [B, H, W, 3] uint8 of ``decoder_flow@level`` along ``kind`` flows; every level and kind comes from
        one pass over the ends (``DecoderWarps``), on the first ask."""
        if not self._decoder_frames:
            self._decoder_frames = self.decoder.frames(self.latents, {k: self.motion(k) for k in FLOW_KINDS},
                                                       times=self.times)
        return self._decoder_frames[kind, level]

    def learned_latents(self, name: str) -> np.ndarray:
        first, third = (torch.from_numpy(np.ascontiguousarray(self.latents[:, k])).to(self.device) for k in (0, 2))
        extra = self.motion("estimated", latent=True) if name in predictors.FLOW_PREDICTORS else ()
        return predictors.predict(self.learned[name], first, third, *extra, times=self.times).cpu().numpy()


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


def _decoder_flow(level: int, kind: str) -> Method:
    oracle = kind == "oracle"
    formula = (f"{'ORACLE: ' if oracle else ''}latent1 and latent3 decoded together to the decoder's level {level} "
               "(level 0: the latent grid after its first layers; the last: full resolution before the output layers; "
               "latent_interp.levels), both feature maps warped like pixel_flow along "
               f"{'F_2->1, F_2->3 (estimated from frame 2)' if oracle else 'F_t->1, F_t->3'} averaged over each cell "
               "of the level's stride and divided by it, blended, and the blend decoded from there")
    return Method(f"decoder_flow{'_oracle' if oracle else ''}@{level}", "frame",
                  ("latents", "oracle_flow" if oracle else "flow"), formula,
                  lambda chunk: chunk.decoder_flow(kind, level), sees_frame2=oracle)


def decoder_level(method: str) -> int | None:
    """The decoder level ``decoder_flow@k`` and its oracle warp at, or None for every other method."""
    return int(method.rsplit("@", 1)[1]) if method.startswith("decoder_flow") else None


def _learned(name: str, reads: tuple[str, ...], formula: str) -> Method:
    return Method(name, "latent", reads, formula, lambda chunk: chunk.learned_latents(name), learned=True)


REGISTRY: dict[str, Method] = {method.name: method for method in (
    Method("repeat", "frame", ("frames",), "frame 1", lambda c: c.frames[:, 0], stands_for=0),
    Method("pixel_blend", "frame", ("frames",), "rint((1 - t) frame1 + t frame3) in pixel space",
           lambda c: pixel_blend(c.frames[:, 0], c.frames[:, 2], c.times)),
    Method("pixel_flow", "frame", ("frames", "flow"),
           "frames 1 and 3 backward-warped along F_t->1, F_t->3 (Super SloMo's, at the triplet's t), "
           "occlusion-weighted blend, the plain blend kept where nothing moves (the flow store's still mask; "
           "latent_interp.warp)",
           lambda c: c.warp_frames(c.frames, "estimated")),
    Method("latent_lerp", "latent", ("latents",), "decode((1 - t) latent1 + t latent3), posterior means, unscaled",
           lambda c: lerp(c.latents[:, 0], c.latents[:, 2], c.times)),
    Method("latent_slerp", "latent", ("latents",),
           "decode(sin((1-t)w)/sin(w) latent1 + sin(tw)/sin(w) latent3), w the angle of the flattened latents; lerp "
           f"where sin(w) < {PARALLEL_TOLERANCE} or a latent is zero",
           lambda c: slerp(c.latents[:, 0], c.latents[:, 2], c.times)),
    *(_learned(name, ("latents", "predictor"), f"decode of predictor {name}") for name in predictors.LATENT_PREDICTORS),
    Method("latent_flow", "latent", ("latents", "flow"),
           "decode of latent1 and latent3 warped like pixel_flow, flows and weights averaged over each latent cell "
           "and divided by the VAE's downsampling, lerp in the cells where most pixels are still",
           lambda c: c.warp_latents("estimated")),
    _learned("flow_unet", ("latents", "flow", "predictor"),
             "decode of latent_flow plus predictor flow_unet's residual"),
    Method("recon_flow", "frame", ("recon", "flow"), "pixel_flow applied to the reconstructions of frames 1 and 3",
           lambda c: c.warp_frames(c.recon, "estimated")),
    *(_decoder_flow(level, "estimated") for level in range(MAX_LEVELS)),
    Method("pixel_flow_oracle", "frame", ("frames", "oracle_flow"),
           "ORACLE: frames 1 and 3 warped along F_2->1, F_2->3 (estimated from frame 2) and blended with weights "
           "1 - t, t",
           lambda c: c.warp_frames(c.frames, "oracle"), sees_frame2=True),
    Method("latent_flow_oracle", "latent", ("latents", "oracle_flow"),
           "ORACLE: latent1 and latent3 warped along F_2->1, F_2->3 (estimated from frame 2) on the latent grid and "
           "blended with weights 1 - t, t", lambda c: c.warp_latents("oracle"), sees_frame2=True),
    *(_decoder_flow(level, "oracle") for level in range(MAX_LEVELS)),
    Method("vae_ceiling", "frame", ("recon",), "the reconstruction of frame 2 (decode of the true latent2)",
           lambda c: c.recon[:, 1], sees_frame2=True, stands_for=1),
)}
METHODS = tuple(REGISTRY)
LATENT_METHODS = tuple(name for name, method in REGISTRY.items() if method.output == "latent")
SEES_FRAME2 = frozenset(name for name, method in REGISTRY.items() if method.sees_frame2)


def active_methods(learned: dict, with_flow: bool, decoder_levels: int = MAX_LEVELS) -> list[str]:
    """The methods this run can score: learned ones only where trained, flow ones only with a flow store, the warps
    inside the decoder at the levels its decoder has (``decoder_levels``)."""
    return [name for name, method in REGISTRY.items()
            if (not method.learned or name in learned) and (with_flow or not method.reads_flow)
            and (decoder_level(name) or 0) < decoder_levels]
