"""Frame 2 from frames 1 and 3: the interpolation methods, their scores per triplet, and the summary.

Methods (``METHODS``, in table order):
    ``repeat``        frame 1 itself (its latent: latent1)
    ``pixel_blend``   the mean of frames 1 and 3 in pixel space, rounded to uint8 (no VAE, no latent)
    ``latent_lerp``   decode of (latent1 + latent3) / 2, latents being posterior means
    ``latent_slerp``  decode of the spherical midpoint over the flattened latent (``slerp_midpoint``)
    ``linear``, ``mlp``, ``unet``   decode of a learned predictor's latent2 (``latent_interp.predictors``)
    ``vae_ceiling``   the reconstruction of frame 2 (the recon store): what decoding the true latent2 gives, so no
                      latent method can beat it
Scores are against the true frame 2, with the metric tables' definitions (``metrics.image_metrics``, and inside the
motion RoI on annotated splits); ``latent_mse`` is the mean squared difference from the encoded latent2 (unscaled
latent units; empty for ``pixel_blend``); ``chamfer`` is EISAI's chamfer line distance and ``lpips`` LPIPS
(``latent_interp.perceptual``; empty when no LPIPS weights are configured).

Table ``results/interp/{model}/{split}.csv``, one row per triplet and method:
    ``model``, ``split``, ``triplet``, ``origin``, ``method``, ``latent_mse``, ``mse``, ``psnr`` (dB), ``ssim``,
    ``chamfer``, ``lpips``; annotated splits add ``roi_mse``, ``roi_psnr``, ``roi_ssim``, ``level``,
    ``general_motion_type``, ``behavior``. Next to it ``{split}.spec.json``: how each column was computed.
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
(``<m>_vs_ceiling``, likewise): the gap to the ceiling.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from latent_interp import data, encode, metrics, perceptual, predictors, store, vae

LATENT_METHODS = ("latent_lerp", "latent_slerp", *predictors.PREDICTORS)
METHODS = ("repeat", "pixel_blend", *LATENT_METHODS, "vae_ceiling")
TABLE_COLUMNS = ["model", "split", "triplet", "origin", "method", "latent_mse", "mse", "psnr", "ssim", "chamfer",
                 "lpips"]
SUMMARY_METRICS = ("psnr", "ssim", "mse", "latent_mse", "chamfer", "lpips", "roi_psnr", "roi_ssim")
# Which way is better, for tables and the report.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "roi_psnr": True, "roi_ssim": True, "mse": False,
                    "latent_mse": False, "chamfer": False, "lpips": False}
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


def predict_latents(first: np.ndarray, third: np.ndarray, learned: dict, device: torch.device) -> dict:
    """Every latent method's latent2 for a batch of latent1, latent3 [B, C, h, w]."""
    predicted = {"latent_lerp": lerp_midpoint(first, third), "latent_slerp": slerp_midpoint(first, third)}
    for name, model in learned.items():
        first_t, third_t = (torch.from_numpy(np.ascontiguousarray(z)).to(device) for z in (first, third))
        predicted[name] = predictors.predict(model, first_t, third_t).cpu().numpy()
    return predicted


def pixel_blend(first_uint8: np.ndarray, third_uint8: np.ndarray) -> np.ndarray:
    return np.rint((first_uint8.astype(np.float32) + third_uint8.astype(np.float32)) / 2).astype(np.uint8)


class Scorer:
    """Scores of predicted frames 2 against the true one: the metric tables' figures, chamfer, optional LPIPS."""

    def __init__(self, annotations, size, lpips_model=None, device=None):
        self.annotations, self.size, self.lpips_model, self.device = annotations, size, lpips_model, device

    def lpips(self, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """LPIPS of uint8 [B, H, W, 3] pairs, or NaN when no LPIPS weights were configured."""
        if self.lpips_model is None:
            return np.full(len(truth), np.nan)
        with torch.no_grad():
            a, b = (torch.from_numpy(data.to_model_range(x)).to(self.device) for x in (truth, predicted))
            return self.lpips_model(a, b).float().cpu().numpy()

    def rows(self, index: int, truth: np.ndarray, predicted: np.ndarray, latent_error: float, lpips: float) -> list:
        """[latent_mse, mse, psnr, ssim, chamfer, lpips] (+ RoI mse, psnr, ssim) of one prediction."""
        row = [latent_error, *metrics.image_metrics(truth, predicted), perceptual.chamfer_distance(truth, predicted),
               lpips]
        if self.annotations is not None:
            (top, bottom), (left, right) = metrics.roi_box(self.annotations.iloc[index], self.size)
            row += metrics.image_metrics(truth[top:bottom, left:right], predicted[top:bottom, left:right])
        return row


def interp_spec(lpips_record: str | None, predictors_dir) -> dict:
    return {
        "target": "the true frame 2 (uint8 frames store); every prediction is uint8 before scoring",
        "methods": {
            "repeat": "frame 1", "pixel_blend": "rint((frame1 + frame3) / 2) in pixel space",
            "latent_lerp": "decode((latent1 + latent3) / 2), posterior means, unscaled",
            "latent_slerp": "decode(sin(w/2)/sin(w) * (latent1 + latent3)), w the angle of the flattened latents; "
                            f"lerp where sin(w) < {PARALLEL_TOLERANCE} or a latent is zero",
            **{name: f"decode of predictor {name} ({predictors_dir})" for name in predictors.PREDICTORS},
            "vae_ceiling": "the reconstruction of frame 2 (decode of the true latent2)"},
        "mse, psnr, ssim, roi_*": metrics.metric_spec(),
        "latent_mse": "mean over C*h*w of (predicted latent2 - encoded latent2)^2, unscaled latent units; "
                      "repeat uses latent1; empty for pixel_blend; 0 for vae_ceiling",
        "chamfer": perceptual.CHAMFER_SPEC,
        "lpips": lpips_record or "skipped: no LPIPS weights configured (interp.lpips)",
        "better": {metric: "higher" if up else "lower" for metric, up in HIGHER_IS_BETTER.items()},
    }


def score_split(frames_path, latents_path, recon_path, predictors_dir, vae_source, table_path, spec_path, store_path,
                model_name: str, split: str, gallery_triplets=6, sample_triplets: int = 0, seed: int = 0,
                batch_size: int = 16, device: str = "auto", threads: int = 1, vae_options: dict | None = None,
                lpips_weights: dict | None = None) -> pd.DataFrame:
    """Rule interp: every method on one model's split -> table, spec and store (module docstring)."""
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    frames_group = store.open_store(frames_path, "frames")
    latents_group = store.open_store(latents_path, "latents")
    recon_group = store.open_store(recon_path, "recon")
    names = store.require_same_triplets(frames_group, latents_group, frames_path, latents_path)
    store.require_same_triplets(frames_group, recon_group, frames_path, recon_path)
    model, vae_record = vae.load_vae(vae_source, torch_device, **(vae_options or {}))
    model = encode.prepare_model(model, torch_device)
    if vae_record["sha256"] != recon_group.attrs["vae"]["sha256"]:
        raise ValueError(f"{recon_path} was decoded by {recon_group.attrs['vae']['source']}, not by {vae_source}")
    vae.require_same_latent_space(latents_group.attrs["vae"], vae_record, str(latents_path),
                                  f"the decoding VAE {vae_source}")
    learned, predictors_record = predictors.load_predictors(predictors_dir, torch_device)
    if predictors_record["vae"]["sha256"] != latents_group.attrs["vae"]["sha256"]:
        raise ValueError(f"{predictors_dir} was trained on latents of {predictors_record['vae']['source']}, "
                         f"but {latents_path} holds latents of {latents_group.attrs['vae']['source']}")
    lpips_model = lpips_record = None
    if lpips_weights and lpips_weights.get("backbone") and lpips_weights.get("linear"):
        lpips_model = perceptual.load_lpips(lpips_weights["backbone"], lpips_weights["linear"], torch_device)
        lpips_record = perceptual.lpips_spec(lpips_weights["backbone"], lpips_weights["linear"])
    else:
        print("LPIPS skipped: interp.lpips names no backbone and linear weight files")
    latent_methods = [m for m in LATENT_METHODS if m in ("latent_lerp", "latent_slerp") or m in learned]
    methods = ["repeat", "pixel_blend", *latent_methods, "vae_ceiling"]
    frames, recon, mean = frames_group[store.FRAMES], recon_group[store.FRAMES], latents_group[store.MEAN]
    annotations = store.read_annotations(frames_group)
    scorer = Scorer(annotations, frames.shape[2:4], lpips_model, torch_device)
    origins = store.origins(frames_group)
    group = store.create(store_path, "interp", split, {
        "model": model_name, "methods": methods, "latent_methods": latent_methods, "vae": vae_record,
        "latents_vae": dict(latents_group.attrs["vae"]),
        "predictors": {"folder": str(predictors_dir),
                       "selected": {k: v["selected"] for k, v in predictors_record["predictors"].items()}},
        "provenance": store.provenance("interp", {"batch_size": batch_size, "device": torch_device.type,
                                                  "gallery_triplets": gallery_triplets,
                                                  "sample_triplets": sample_triplets, "seed": seed})},
        names, origins)
    predicted_store = store.add_array(group, "predicted_latents", (len(latent_methods), *mean.shape[2:]), np.float32)
    keeper = GalleryKeeper(names, gallery_triplets, sample_triplets, seed)
    psnr_column = TABLE_COLUMNS.index("psnr")
    rows = []
    with tqdm(total=len(names), desc=f"interp {model_name}/{split}", unit="triplet") as progress:
        for start, stop in store.chunk_ranges(mean):
            latents, truth_frames = mean[start:stop], frames[start:stop]
            images, latent_errors, predicted = _predict_chunk(latents, truth_frames, recon[start:stop], learned,
                                                              model, latent_methods, torch_device, batch_size,
                                                              vae_record["dtype"])
            predicted_store[start:stop] = np.stack([predicted[m] for m in latent_methods], axis=1)
            truth = truth_frames[:, 1]
            lerp_first = len(rows) + methods.index("latent_lerp") * (stop - start)  # rows go method by method
            for method in methods:
                lpips = scorer.lpips(truth, images[method])
                for offset in range(stop - start):
                    index = start + offset
                    rows.append([model_name, split, names[index], origins[index], method,
                                 *scorer.rows(index, truth[offset], images[method][offset],
                                              latent_errors[method][offset], lpips[offset])])
            for offset, row in enumerate(rows[lerp_first:lerp_first + stop - start]):
                keeper.offer(names[start + offset], row[psnr_column],
                             lambda offset=offset: np.stack([images[m][offset] for m in methods]))
            progress.update(stop - start)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS + (metrics.ROI_COLUMNS if annotations is not None else []))
    if annotations is not None:
        table = table.merge(annotations[["triplet", *metrics.ANNOTATION_COLUMNS]], on="triplet", how="left")
    table.to_csv(table_path, index=False, float_format="%.8g")
    Path(spec_path).write_text(json.dumps(interp_spec(lpips_record, predictors_dir), indent=2) + "\n")
    _write_gallery(group, methods, frames.shape[2:], keeper, gallery_order(table, gallery_triplets, sample_triplets,
                                                                           seed))
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


def _predict_chunk(latents, truth_frames, recon_frames, learned, model, latent_methods, device, batch_size,
                   dtype: str = "auto"):
    """For a chunk of triplets: every method's frame 2 (uint8 [B, H, W, 3]), every method's latent MSE [B], and
    every latent method's predicted latent2."""
    first, second, third = latents[:, 0], latents[:, 1], latents[:, 2]
    predicted = predict_latents(first, third, learned, device)
    images = {"repeat": truth_frames[:, 0], "pixel_blend": pixel_blend(truth_frames[:, 0], truth_frames[:, 2]),
              "vae_ceiling": recon_frames[:, 1]}
    count = len(first)
    decoded = encode.decode_latents(model, np.concatenate([predicted[m] for m in latent_methods]), device, batch_size,
                                    dtype)
    for position, method in enumerate(latent_methods):
        images[method] = decoded[position * count:(position + 1) * count]
    errors = {"repeat": _latent_mse(first, second), "pixel_blend": np.full(count, np.nan),
              "vae_ceiling": np.zeros(count)}
    for method in latent_methods:
        errors[method] = _latent_mse(predicted[method], second)
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


def _group_rows(table: pd.DataFrame, key: tuple, resamples: int, seed: int) -> list[dict]:
    """Summary rows of one model, split and group: every method's means and its paired differences."""
    wide = {metric: table.pivot(index="triplet", columns="method", values=metric)
            for metric in SUMMARY_METRICS if metric in table and table[metric].notna().any()}
    triplets = next(iter(wide.values())).index
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(triplets), size=(resamples, len(triplets))) if len(triplets) > 1 \
        else np.empty((0, 0), int)
    rows = []
    for method in [m for m in METHODS if m in table["method"].unique()]:
        row = dict(zip(("model", "method", "split", "origin", "level"),
                       (key[0], method, key[1], key[2], key[3])), n_triplets=len(triplets))
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
        rows.append(row)
    return rows


def summarize_interp(table_paths: list[str], out_path, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Rule interp_summary: every interp table -> ``results/interp/summary.csv`` (module docstring)."""
    rows = []
    for path in table_paths:
        table = pd.read_csv(path)
        if table.empty:
            continue
        model, split = table["model"].iloc[0], table["split"].iloc[0]
        groups = [(("all", "all"), table)]
        groups += [((origin, "all"), g) for origin, g in table.groupby("origin", sort=True)]
        if "level" in table:
            groups += [(("all", str(int(level))), g) for level, g in table.dropna(subset=["level"]).groupby("level")]
        for (origin, level), group in groups:
            rows += _group_rows(group, (model, split, origin, level), resamples, seed)
    summary = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["model", "method", "split", "origin", "level",
                                                                    "n_triplets"])  # no split had a triplet
    summary.to_csv(out_path, index=False, float_format="%.6g")
    return summary
