"""Rule equivariance: can a latent grid be moved like a picture? What latent warping (``latent_flow``) relies on.

Controlled shifts: each of the first ``frames`` test frames (frame 1 of each triplet) is translated by s pixels,
across and down (``np.roll``: the content moves by +s, what leaves one edge enters the other), for s in 1, 2, 4, f/2,
f and 2f (f the VAE's downsampling), and encoded. Its latent is compared with the unshifted frame's latent moved by
s / f cells (``warp.backward_warp``: bilinear below one cell, an exact roll for whole cells), inside a margin of
``margin_cells`` cells (where rolled-in content and the encoder's padding reach): the mean squared difference
relative to the latents' variance, and the PSNR of decoding the moved latent against the shifted frame, beside the
PSNR of decoding the shifted frame's own latent (the reconstruction at that shift: the best a moved latent could
give), inside the same margin.

On the triplets (the test split's latents and flow): latent2 against latent1 warped along the oracle flow 2->1 on
the latent grid (``warp.motion_to_latent_grid``), relative to the latents' variance, beside latent2 against latent1
unwarped: the first grows with motion where the latent space is not equivariant, the second where things move.

Table ``results/geometry/{model}/equivariance.csv``, one row per shift and direction:
    ``model``, ``shift_px``, ``direction`` (x or y), ``shift_cells`` (s / f), ``whole_cells`` (s a multiple of f),
    ``frames``, ``latent_error`` (mean over frames of the relative squared error), ``moved_psnr``,
    ``reencoded_psnr`` (dB, means over frames), ``psnr_lost`` (reencoded - moved).
Table ``results/geometry/{model}/equivariance_frames.csv``, the same per frame (what paired comparisons between
models resample, ``compare.finetune_effects``): ``model``, ``frame`` (index among the shifted test frames),
    ``shift_px``, ``direction``, ``whole_cells``, ``latent_error``, ``moved_psnr``, ``reencoded_psnr``.
Table ``results/geometry/{model}/equivariance_triplets.csv``, one row per test triplet:
    ``model``, ``split``, ``triplet``, ``origin``, ``motion_px`` (the flow table's), ``warped_error`` (latent2 vs
    latent1 warped along the oracle flow), ``unwarped_error`` (latent2 vs latent1), both relative to the variance.
Layer by layer (``layer_errors``): for shifts of 1, 2, f/2 and f px, across and down, the features of the shifted
frames at every level of the encoder and then of the decoder (``latent_interp.levels``; the decoder decodes the
shifted frame's own latent) against the unshifted frames' features at that level moved by s / stride cells
(bilinear below one cell), inside the margin (its pixels over the level's stride), relative to the unshifted
features' variance at that level. Where a shift is whole cells at a level (s a multiple of its stride) a translation-
equivariant layer gives 0 there; where it is not, the error says how much of the picture's motion the layer's grid
can still carry.
Table ``results/geometry/{model}/equivariance_layers.csv``, one row per part, level, shift and direction:
    ``model``, ``part`` (encoder, decoder), ``level`` (within the part), ``depth`` (0 the encoder's first level, on
    through the decoder's last), ``module`` (the module the level follows), ``stride``, ``shift_px``, ``direction``,
    ``shift_cells`` (s / stride), ``whole_cells``, ``frames``, ``error``.
``results/geometry/{model}/equivariance.json``: per shift class the mean figures (``subcell``: shifts below f that
are not whole cells; ``cell``: multiples of f), the triplets' medians and Spearman correlations with motion, per
shift the layer curve's summary (``layers``: where the sub-cell error first rises most), the settings, the VAE record
and provenance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

from latent_interp import encode, flow, levels, schema, store, vae, warp
from latent_interp.settings import VaeRun

SHIFTED_FRAMES = schema.section("geometry.equivariance_frames")["default"]  # config's default
SHIFT_COLUMNS = ["model", "shift_px", "direction", "shift_cells", "whole_cells", "frames", "latent_error",
                 "moved_psnr", "reencoded_psnr", "psnr_lost"]
FRAME_COLUMNS = ["model", "frame", "shift_px", "direction", "whole_cells", "latent_error", "moved_psnr",
                 "reencoded_psnr"]
TRIPLET_COLUMNS = ["model", "split", "triplet", "origin", "motion_px", "warped_error", "unwarped_error"]
LAYER_COLUMNS = ["model", "part", "level", "depth", "module", "stride", "shift_px", "direction", "shift_cells",
                 "whole_cells", "frames", "error"]


def shifts_for(downsampling: int) -> list[int]:
    """1, 2, 4, f/2, f and 2f pixels, each once, in order."""
    return sorted({1, 2, 4, max(1, downsampling // 2), downsampling, 2 * downsampling})


def margin_cells(downsampling: int, cells: int) -> int:
    """Cells left out at each border of a grid of ``cells`` a side: the largest shift (2f px: 2 cells) plus 2 for the
    encoder's padding, or as many as leave at least a 1-cell interior on a smaller grid."""
    return min(max(shifts_for(downsampling)) // downsampling + 2, max(0, (cells - 1) // 2))


def shift_frames(frames_uint8: np.ndarray, pixels: int, direction: str) -> np.ndarray:
    """[F, H, W, 3] with the content moved by ``pixels`` right (x) or down (y), wrapping around."""
    return np.roll(frames_uint8, pixels, axis=2 if direction == "x" else 1)


def move_latents(latents: np.ndarray, cells: float, direction: str) -> np.ndarray:
    """[F, C, h, w] moved by ``cells`` right or down: out(p) = z(p - d), bilinear, border-clamped."""
    tensor = torch.from_numpy(np.ascontiguousarray(latents))
    displacement = torch.zeros(len(latents), 2, *latents.shape[2:], dtype=tensor.dtype)
    displacement[:, 0 if direction == "x" else 1] = -cells
    return warp.backward_warp(tensor, displacement).numpy()


def _interior(array: np.ndarray, margin: int) -> np.ndarray:
    """The [..., h, w] array without ``margin`` at each border."""
    return array[..., margin:array.shape[-2] - margin, margin:array.shape[-1] - margin]


def _psnr(truth: np.ndarray, predicted: np.ndarray, margin_px: int) -> np.ndarray:
    """PSNR (dB, the metric tables' definition: [0, 1] images, data range 1) of each frame [F, H, W, 3] inside the
    margin; only PSNR, so an interior thinner than SSIM's 7 x 7 window (a 540p frame scaled down) is still scored."""
    inner = (slice(None), slice(margin_px, truth.shape[1] - margin_px), slice(margin_px, truth.shape[2] - margin_px))
    errors = ((truth[inner].astype(np.float64) - predicted[inner]) / 255.0) ** 2
    with np.errstate(divide="ignore"):  # identical frames: inf, as skimage gives
        return 10 * np.log10(1.0 / errors.reshape(len(truth), -1).mean(axis=1))


def relative_error(predicted: np.ndarray, truth: np.ndarray, variance: float) -> np.ndarray:
    """Per item [F, ...]: mean squared difference / ``variance``."""
    return ((predicted.astype(np.float64) - truth) ** 2).reshape(len(truth), -1).mean(axis=1) / variance


def shift_curve(model, frames_uint8: np.ndarray, downsampling: int, device, batch_size: int, dtype: str,
                model_name: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The controlled-shift table and its per-frame rows (module docstring) for these frames."""
    base, _ = encode.encode_frames(model, frames_uint8, device, batch_size, dtype)
    variance = float(base.var())
    margin = margin_cells(downsampling, min(base.shape[-2:]))
    rows, per_frame = [], []
    for direction in ("x", "y"):
        for pixels in tqdm(shifts_for(downsampling), desc=f"shifts {direction}", unit="shift"):
            shifted = shift_frames(frames_uint8, pixels, direction)
            encoded, _ = encode.encode_frames(model, shifted, device, batch_size, dtype)
            moved = move_latents(base, pixels / downsampling, direction)
            errors = relative_error(_interior(moved, margin), _interior(encoded, margin), variance)
            decoded = encode.decode_latents(model, np.concatenate([moved, encoded]), device, batch_size, dtype,
                                            shifted.shape[1:3])
            moved_psnr = _psnr(shifted, decoded[:len(moved)], margin * downsampling)
            reencoded_psnr = _psnr(shifted, decoded[len(moved):], margin * downsampling)
            rows.append([model_name, pixels, direction, pixels / downsampling, pixels % downsampling == 0,
                         len(frames_uint8), float(errors.mean()), float(np.nanmean(moved_psnr)),
                         float(np.nanmean(reencoded_psnr)), float(np.nanmean(reencoded_psnr - moved_psnr))])
            per_frame.append(pd.DataFrame({
                "model": model_name, "frame": np.arange(len(frames_uint8)), "shift_px": pixels, "direction": direction,
                "whole_cells": pixels % downsampling == 0, "latent_error": errors, "moved_psnr": moved_psnr,
                "reencoded_psnr": reencoded_psnr}))
    return pd.DataFrame(rows, columns=SHIFT_COLUMNS), pd.concat(per_frame, ignore_index=True)[FRAME_COLUMNS]


def layer_shifts(downsampling: int) -> list[int]:
    """1, 2, f/2 and f pixels, each once, in order."""
    return sorted({1, 2, max(1, downsampling // 2), downsampling})


def _level_features(chains, x: torch.Tensor) -> list[torch.Tensor]:
    """Every level's features of frames ``x`` (model range, padded): the encoder's, then the decoder's on the latent
    the encoder gives."""
    features = []
    for chain in chains:
        position = 0
        for stop in chain.levels:
            x = chain.run(x, position, stop)
            position = stop
            features.append(x.float())
        x = chain.run(x, position)
    return features


@torch.inference_mode()
def layer_errors(chains, frames_uint8: np.ndarray, downsampling: int, device, batch_size: int, dtype: str = "auto",
                 model_name: str = "", layout: torch.memory_format = torch.contiguous_format) -> pd.DataFrame:
    """The layer-by-layer table (module docstring) of ``chains`` (a VAE's: ``levels.encoder_chain`` and
    ``levels.decoder_chain``, the second fed what the first gives) for these frames: sums of squared differences and
    of the unshifted features (for their variance) gathered batch by batch, so one batch's features are in memory at
    once."""
    where = [(chain.part, index, name, stride) for chain in chains
             for index, (name, stride) in enumerate(zip(chain.names(), chain.strides))]
    shifts = [(pixels, direction) for direction in ("x", "y") for pixels in layer_shifts(downsampling)]
    margin_px = margin_cells(downsampling, min(frames_uint8.shape[1:3]) // downsampling) * downsampling
    squared = np.zeros((len(shifts), len(where)))
    counted = np.zeros((len(shifts), len(where)))
    moments = np.zeros((len(where), 3))  # count, sum, sum of squares of the unshifted features

    def features_of(frames: np.ndarray) -> list[torch.Tensor]:
        x = encode.pad_to_multiple(encode.to_model_input(frames, device, layout), downsampling)
        with encode.autocast_for(device, dtype):
            return _level_features(chains, x)

    for batch in tqdm(encode.batch_slices(len(frames_uint8), batch_size), desc="layers", unit="batch"):
        base = features_of(frames_uint8[batch])
        for k, feature in enumerate(base):
            values = feature.double()
            moments[k] += (values.numel(), float(values.sum()), float((values * values).sum()))
        for row, (pixels, direction) in enumerate(shifts):
            shifted = features_of(shift_frames(frames_uint8[batch], pixels, direction))
            for k, ((_, _, _, stride), feature, moved_from) in enumerate(zip(where, shifted, base)):
                moved = move_latents(moved_from.cpu().numpy(), pixels / stride, direction)
                inner = margin_px // stride
                difference = _interior(moved, inner) - _interior(feature.cpu().numpy(), inner)
                squared[row, k] += float((difference.astype(np.float64) ** 2).sum())
                counted[row, k] += difference.size
    variance = moments[:, 2] / moments[:, 0] - (moments[:, 1] / moments[:, 0]) ** 2
    rows = []
    for row, (pixels, direction) in enumerate(shifts):
        for depth, ((part, level, name, stride), total, count, spread) in enumerate(
                zip(where, squared[row], counted[row], variance)):
            rows.append([model_name, part, level, depth, name, stride, pixels, direction, pixels / stride,
                         pixels % stride == 0, len(frames_uint8), total / max(count, 1) / spread])
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


# A level whose layer error stays below this share of its features' variance still carries the shift (whole-cell
# shifts measure 1e-8 to 1e-4 at the encoder's levels, inside the margin); the first level above it loses it.
LOST_ABOVE = 1e-3


def layer_summary(layers: pd.DataFrame) -> dict:
    """Per sub-cell shift of the latent grid (1, 2 and f/2 px), the mean error over directions at each depth, the
    first level where it exceeds ``LOST_ABOVE`` and the level where it rises most from the one before: where inside
    the VAE sub-cell equivariance is lost."""
    result = {}
    mean = layers.groupby(["shift_px", "depth", "part", "module", "stride"], as_index=False)["error"].mean()
    largest_stride = int(layers["stride"].max()) if len(layers) else 1
    for pixels, rows in mean.groupby("shift_px"):
        rows = rows.sort_values("depth")
        if pixels % largest_stride == 0 or len(rows) < 2:
            continue
        rises = rows["error"].diff().to_numpy()
        lost = rows.iloc[int(np.nanargmax(rises[1:])) + 1]
        above = rows[rows["error"] > LOST_ABOVE]
        first = above.iloc[0] if len(above) else None
        result[f"{int(pixels)}px"] = {
            "errors": {f"{r.part} {r.module} (stride {r.stride})": float(r.error) for r in rows.itertuples()},
            "first_lost_at": None if first is None else f"{first['part']} {first['module']} (stride "
                                                         f"{int(first['stride'])})",
            "largest_rise_at": f"{lost['part']} {lost['module']} (stride {int(lost['stride'])})",
            "largest_rise": float(rises[1:][np.nanargmax(rises[1:])])}
    return result


def triplet_errors(latents: np.ndarray, flow_group, downsampling: int, names: list[str], origins: list[str],
                   split: str, model_name: str = "") -> pd.DataFrame:
    """The per-triplet table (module docstring): latent2 against latent1 moved along the oracle flow 2->1."""
    variance = float(latents.var()) if latents.size else 1.0
    warped = []
    for start, stop in store.chunk_ranges(flow_group["oracle_flow"]):
        rows = flow.read_rows(flow_group, start, stop)
        flow_21 = warp.motion_to_latent_grid(flow.motion_inputs(rows, "oracle", dict(flow_group.attrs["flow"])),
                                             downsampling)[0]
        with torch.no_grad():
            warped.append(warp.backward_warp(torch.from_numpy(np.ascontiguousarray(latents[start:stop, 0])),
                                             flow_21).numpy())
    if not names:
        return pd.DataFrame(columns=TRIPLET_COLUMNS)
    table = pd.DataFrame({"model": model_name, "split": split, "triplet": names, "origin": origins,
                          "motion_px": flow_group["motion_px"][:],
                          "warped_error": relative_error(np.concatenate(warped), latents[:, 1], variance),
                          "unwarped_error": relative_error(latents[:, 0], latents[:, 1], variance)})
    table.loc[~flow_group["ok"][:], ["warped_error", "motion_px"]] = np.nan  # a failed flow: unknown, not zero
    return table[TRIPLET_COLUMNS]


def summary(curve: pd.DataFrame, triplets: pd.DataFrame) -> dict:
    classes = {"subcell": curve[~curve["whole_cells"]], "cell": curve[curve["whole_cells"]]}
    result = {name: {column: float(rows[column].mean()) for column in ("latent_error", "moved_psnr",
                                                                       "reencoded_psnr", "psnr_lost")}
              for name, rows in classes.items() if len(rows)}
    known = triplets.dropna(subset=["warped_error", "motion_px"])
    result["triplets"] = {"count": int(len(known)),
                          "median_warped_error": float(known["warped_error"].median()) if len(known) else math.nan,
                          "median_unwarped_error": float(known["unwarped_error"].median()) if len(known)
                          else math.nan}
    for column in ("warped_error", "unwarped_error"):
        if len(known) > 2 and known[column].nunique() > 1 and known["motion_px"].nunique() > 1:
            rho, p_value = stats.spearmanr(known[column], known["motion_px"])
            result["triplets"][f"{column}_spearman_with_motion"] = {"rho": float(rho), "p_value": float(p_value)}
    return result


class EquivarianceOutputs(NamedTuple):
    """Rule equivariance's outputs (docs/outputs.md)."""
    curve: str  # the shift curve
    per_frame: str  # each shifted frame's errors
    triplets: str  # the oracle warps' table
    summary: str  # equivariance.json
    layers: str  # the layer-by-layer table


def analyse_equivariance(*, frames, latents, flow, outputs: EquivarianceOutputs, model: str, vae_run: VaeRun,
                         shifted_frames: int = SHIFTED_FRAMES, threads: int = 1) -> dict:
    """Rule equivariance: one latent space on the test split (the stores ``frames``, ``latents`` and ``flow``) ->
    the tables and JSON summary of ``outputs``, with ``shifted_frames`` test frames shifted."""
    return _analyse(frames, latents, flow, vae_run, outputs, model, shifted_frames, threads)


def _analyse(frames_path, latents_path, flow_path, vae_run: VaeRun, outputs: EquivarianceOutputs, model_name: str,
             frames: int, threads: int) -> dict:
    vae_source, batch_size, device = vae_run.source, vae_run.batch_size, vae_run.device
    vae_options, compile_setting = vae_run.options, vae_run.compile
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    frames_group = store.open_store(frames_path, "frames")
    latents_group = store.open_store(latents_path, "latents")
    flow_group = store.open_store(flow_path, "flow")
    names = store.require_same_triplets(frames_group, latents_group, frames_path, latents_path)
    store.require_same_triplets(frames_group, flow_group, frames_path, flow_path)
    model, record = vae.load_vae(vae_source, torch_device, **(vae_options or {}))
    model = encode.prepare_model(model, torch_device)
    batch_size = encode.resolve_batch_size(model, torch_device, batch_size, frames_group[store.FRAMES].shape[2:4],
                                           record)["batch_size"]
    vae.require_same_latent_space(dict(latents_group.attrs["vae"]), record, str(latents_path), str(vae_source))
    downsampling = int(record.get("downsampling", 8))
    picked = frames_group[store.FRAMES][:min(frames, len(names)), 0]
    if not len(picked):
        raise ValueError(f"{frames_path}: no triplets to shift (config key geometry.equivariance_frames)")
    # shift_curve encodes the frames once, then per shift and direction encodes them once and decodes them twice:
    # what decides vae.compile auto (the layer curve runs the modules' pieces, uncompiled)
    once, shifts = len(picked) * int(np.prod(picked.shape[1:3])) / 1e6, 2 * len(shifts_for(downsampling))
    compiled = encode.compile_for_job(model, torch_device, compile_setting,
                                      {"encoder": (1 + shifts) * once, "decoder": 2 * shifts * once})
    curve, per_frame = shift_curve(model, picked, downsampling, torch_device, batch_size, record["dtype"], model_name)
    curve.to_csv(outputs.curve, index=False, float_format="%.6g")
    per_frame.to_csv(outputs.per_frame, index=False, float_format="%.6g")
    split = str(frames_group.attrs["split"])
    triplets = triplet_errors(latents_group[store.MEAN][:], flow_group, downsampling, names,
                              store.origins(frames_group), split, model_name)
    triplets.to_csv(outputs.triplets, index=False, float_format="%.6g")
    layers = layer_errors((levels.encoder_chain(model), levels.decoder_chain(model)), picked, downsampling,
                          torch_device, batch_size, record["dtype"], model_name, encode.layout_of(model))
    layers.to_csv(outputs.layers, index=False, float_format="%.6g")
    settings = {"frames": int(len(picked)), "shifts_px": shifts_for(downsampling),
                "layer_shifts_px": layer_shifts(downsampling), "downsampling": downsampling,
                "margin_cells": margin_cells(downsampling, min(latents_group[store.MEAN].shape[-2:])),
                "split": split, "batch_size": batch_size, "device": torch_device.type, "compile": compiled}
    result = {"model": model_name, **summary(curve, triplets), "layers": layer_summary(layers), "settings": settings,
              "vae": {k: v for k, v in record.items() if k != "config"},
              "inputs": {"frames": str(frames_path), "latents": str(latents_path), "flow": str(flow_path)},
              "provenance": store.provenance("equivariance", settings)}
    Path(outputs.summary).write_text(json.dumps(result, indent=2) + "\n")
    return result
