"""Per-image reconstruction metrics (MSE, PSNR, SSIM) and their summaries with bootstrap confidence intervals.

Table ``results/metrics/{model}/{split}.csv``, one row per triplet and frame:
    ``model``, ``split``, ``triplet``, ``origin``, ``frame`` (1..3), ``mse``, ``psnr`` (dB), ``ssim``; splits with
    ATD-12K annotations add ``roi_mse``, ``roi_psnr``, ``roi_ssim`` (inside the motion RoI rescaled to the stored
    frame, at least 7x7), ``level`` (0 easy, 1 medium, 2 hard), ``general_motion_type``, ``behavior``.
Both stores are uint8 and are scaled to [0, 1] before comparison. The settings are the seed's (REFERENCE.md) and are
written next to each table as ``{split}.spec.json``.

Table ``results/metrics/summary.csv``, one row per model and group (a split and origin, a whole split, a difficulty
level of an annotated split, or ``all``):
    ``model``, ``split``, ``origin``, ``level`` (``all`` or 0/1/2), ``n_triplets``, ``n_images``, ``mse``, ``mse_std``,
    ``psnr``, ``psnr_std``, ``psnr_ci_low``, ``psnr_ci_high`` (mean of per-image PSNR, the seed's figure),
    ``psnr_pooled``, ``psnr_pooled_ci_low``, ``psnr_pooled_ci_high`` (PSNR of the pooled MSE),
    ``ssim``, ``ssim_std``, ``ssim_ci_low``, ``ssim_ci_high``,
    ``roi_psnr``, ``roi_psnr_pooled``, ``roi_ssim`` (inside the motion RoI; empty where the split has no annotations)
Table ``results/metrics/comparison.csv``, one row per (model, baseline) pair and split (and ``all``), over the
images both models reconstructed; the workflow pairs every model with ``compare.baseline`` and the fine-tuned model
with the VAE it started from:
    ``model``, ``baseline``, ``split``, ``n_images``, and for each of ``psnr``, ``ssim``, ``mse``:
    the model's mean, ``<metric>_baseline``, ``<metric>_diff`` (model - baseline), ``<metric>_diff_ci_low``,
    ``<metric>_diff_ci_high`` (paired bootstrap over triplets); ``psnr_improved_share`` (fraction of images whose
    PSNR rose).
Confidence intervals are 95% percentile intervals of a bootstrap that resamples triplets (the three frames of a
triplet are not independent), with a fixed seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from latent_interp import atomic, schema, store

DEVICE = schema.section("metrics.device")["default"]  # config metrics' defaults
RESAMPLES = schema.section("metrics.bootstrap_resamples")["default"]
SSIM_SETTINGS = {"win_size": 7, "channel_axis": -1, "data_range": 1.0}
TABLE_COLUMNS = ["model", "split", "triplet", "origin", "frame", "mse", "psnr", "ssim"]
# Annotated splits (ATD-12K test) add the metrics inside the motion RoI and the annotation fields.
ROI_COLUMNS = ["roi_mse", "roi_psnr", "roi_ssim"]
ANNOTATION_COLUMNS = ["level", "general_motion_type", "behavior"]


def image_metrics(truth_uint8: np.ndarray, reconstruction_uint8: np.ndarray) -> tuple[float, float, float]:
    """(MSE, PSNR, SSIM) of two uint8 [H, W, 3] images scaled to [0, 1], with the seed's skimage settings."""
    truth = truth_uint8.astype(np.float64) / 255.0
    reconstruction = reconstruction_uint8.astype(np.float64) / 255.0
    mse = float(np.mean((truth - reconstruction) ** 2))
    with np.errstate(divide="ignore"):  # identical images: skimage returns inf, which we keep
        psnr = float(peak_signal_noise_ratio(truth, reconstruction, data_range=1.0))
    ssim = float(structural_similarity(truth, reconstruction, **SSIM_SETTINGS))
    return mse, psnr, ssim


# The field's evaluation protocols (``metrics.protocol``), each a set of columns of the interpolation tables:
# standard (this project's, above), animeinterp (AnimeInterp's test script) and eisai (EISAI's evaluate.py).
PROTOCOLS = ("standard", "animeinterp", "eisai")
# AnimeInterp (lisiyao21/AnimeInterp, test_anime_sequence_one_by_one.py) calls scikit-image's
# compare_ssim(estimated, gt, multichannel=True, gaussian=True) on float images in [0, 1]. ``gaussian`` was never an
# argument (the real one is gaussian_weights), so the window is the uniform 7 x 7 one with sample covariance, and with
# no data_range the old function took the float dtype's range, -1..1: 2. compare_psnr took 1 (non-negative floats).
ANIMEINTERP_SSIM = {"win_size": 7, "channel_axis": -1, "data_range": 2.0, "gaussian_weights": False,
                    "use_sample_covariance": True}
ANIMEINTERP_SPEC = {
    "inputs": "float32 [0, 1] (uint8 / 255) of the prediction and the true frame 2, as the script's clamped floats",
    "psnr": "skimage peak_signal_noise_ratio(estimated, gt, data_range=1.0), float32 (compare_psnr's range for "
            "non-negative floats)",
    "ssim": "skimage structural_similarity(estimated, gt, win_size=7, channel_axis=-1, data_range=2.0, "
            "gaussian_weights=False, use_sample_covariance=True): the script's compare_ssim(multichannel=True, "
            "gaussian=True), whose 'gaussian' was ignored and whose data range was the float dtype's, 2",
    "roi": "motion_RoI (x, y, width, height) scaled as the script does: int(x // (image_size[0] / W)) and likewise, "
           "then [y:y+h, x:x+w]; not grown (an RoI under 7 px a side has no SSIM)",
    "averaging": "per triplet; whole and RoI means over all triplets, per level over that level's triplets",
    "source": "lisiyao21/AnimeInterp test_anime_sequence_one_by_one.py (config_test_w_sgm.py: test_size 960x540)",
}


def animeinterp_metrics(truth_uint8: np.ndarray, predicted_uint8: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) of a predicted frame 2 as AnimeInterp's test script computes them (``ANIMEINTERP_SPEC``); NaN
    where the image is empty, SSIM NaN where a side is under 7 px (where the script would fail)."""
    if truth_uint8.shape[0] < 1 or truth_uint8.shape[1] < 1:
        return np.nan, np.nan
    estimated = predicted_uint8.astype(np.float32) / 255.0
    truth = truth_uint8.astype(np.float32) / 255.0
    with np.errstate(divide="ignore"):
        psnr = float(peak_signal_noise_ratio(estimated, truth, data_range=1.0))
    if min(truth.shape[:2]) < ANIMEINTERP_SSIM["win_size"]:
        return psnr, np.nan
    return psnr, float(structural_similarity(estimated, truth, **ANIMEINTERP_SSIM))


def animeinterp_roi_box(annotation, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of the motion RoI as AnimeInterp's script cuts it from a frame of ``size``
    (H, W): each coordinate floor-divided by the original-to-frame scale, no growing, no clamping (numpy slicing clips
    at the edge, as in the script)."""
    height, width = size
    scale_y, scale_x = annotation.image_height / height, annotation.image_width / width
    x, y = int(annotation.roi_x // scale_x), int(annotation.roi_y // scale_y)
    w, h = int(annotation.roi_w // scale_x), int(annotation.roi_h // scale_y)
    return (y, y + h), (x, x + w)


def metric_spec() -> dict:
    """How the numbers in a metrics table were computed (the sidecar JSON, shown in the report)."""
    return {
        "inputs": "uint8 frames store vs uint8 recon store, both scaled to [0, 1] (x / 255), RGB",
        "pairing": "by triplet name; stores with different names are refused",
        "mse": "mean over H*W*C per image",
        "psnr": "skimage.metrics.peak_signal_noise_ratio(gt, rec, data_range=1.0) per image",
        "ssim": "skimage.metrics.structural_similarity(gt, rec, win_size=7, channel_axis=-1, data_range=1.0): "
                "uniform 7x7 window, sample covariance (skimage default), mean over channels",
        "colour_space": "RGB",
        "averaging": "per image; summaries give the mean of per-image values and the PSNR of the pooled MSE, with "
                     "a 95% bootstrap CI over triplets",
        "versions": store.versions(),
    }


def chunk_metrics(truth_chunk: np.ndarray, recon_chunk: np.ndarray, boxes: list) -> list[list[float]]:
    """Per image of a chunk of triplets [T, 3, H, W, 3]: (MSE, PSNR, SSIM) and, where ``boxes[t]`` is a RoI, the same
    inside it. A top-level function, so a process pool can run it."""
    rows = []
    for offset, box in enumerate(boxes):
        for frame in range(3):
            pair = truth_chunk[offset, frame], recon_chunk[offset, frame]
            row = list(image_metrics(*pair))
            if box is not None:
                (top, bottom), (left, right) = box
                row += image_metrics(pair[0][top:bottom, left:right], pair[1][top:bottom, left:right])
            rows.append(row)
    return rows


def torch_image_metrics(truth_uint8, reconstruction_uint8, device) -> np.ndarray:
    """``image_metrics`` of a batch [B, H, W, 3] on a torch device, as [B, 3] (MSE, PSNR, SSIM), equal to skimage's
    values to 1e-5 (tests/test_metrics.py): float64, and SSIM's uniform 7x7 window as an average pool over the
    interior, which is exactly the region skimage averages (it crops (7 - 1) / 2 pixels at each border)."""
    import torch
    import torch.nn.functional as F

    def to_unit(images):
        tensor = torch.as_tensor(np.ascontiguousarray(images)).to(device, non_blocking=True)
        return tensor.permute(0, 3, 1, 2).to(torch.float64) / 255.0

    x, y = to_unit(truth_uint8), to_unit(reconstruction_uint8)
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(1.0 / mse)  # inf where identical, as skimage gives
    win, c1, c2 = SSIM_SETTINGS["win_size"], (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    covariance_norm = win * win / (win * win - 1)  # skimage's sample covariance

    def mean(t):
        return F.avg_pool2d(t, win, stride=1)

    ux, uy = mean(x), mean(y)
    vx = covariance_norm * (mean(x * x) - ux * ux)
    vy = covariance_norm * (mean(y * y) - uy * uy)
    vxy = covariance_norm * (mean(x * y) - ux * uy)
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    ssim = ssim_map.mean(dim=(2, 3)).mean(dim=1)  # per channel, then over channels
    return torch.stack([mse, psnr, ssim], dim=1).cpu().numpy()


def torch_engine_device(device: str):
    """The torch device that scores for config value ``device`` (metrics.device), or None for skimage: a CUDA device
    for ``cuda``/``cuda:N``, and for ``auto`` when torch sees one."""
    if device == "cpu":
        return None
    import torch  # only here: the CPU engines never import it

    if device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else None
    picked = torch.device(device)
    if picked.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config key metrics.device asks for {device!r}, but torch sees no CUDA device")
    return picked if picked.type == "cuda" else None


class _Engine:
    """Where the per-image metrics run: skimage in this process (``workers`` 1), skimage in a pool of ``workers``
    processes (the CPU lever: the work is per image and independent), or torch on a CUDA device (the GPU lever,
    so that scoring keeps up with decoding). All three give the same rows, in the same order."""

    def __init__(self, workers: int, device: str):
        self.torch_device = torch_engine_device(device)
        self.pool = None
        if self.torch_device is None and workers > 1:
            self.pool = atomic.worker_pool(workers)  # before any store is opened (compute_split_metrics)
        self.workers = workers
        self.description = ("torch float64 on " + str(self.torch_device) if self.torch_device is not None
                            else f"skimage in {workers} processes" if self.pool else "skimage in one process")

    def map(self, chunks):
        """(truth, recon, boxes) chunks -> their rows, in order; a pool keeps 2 chunks per worker in flight."""
        if self.pool is None:
            for chunk in chunks:
                yield self._run(*chunk)
            return
        pending = []
        for chunk in chunks:
            pending.append(self.pool.submit(chunk_metrics, *chunk))
            if len(pending) >= 2 * self.workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()

    def _run(self, truth, recon, boxes):
        if self.torch_device is None:
            return chunk_metrics(truth, recon, boxes)
        whole = torch_image_metrics(truth.reshape(-1, *truth.shape[2:]), recon.reshape(-1, *recon.shape[2:]),
                                    self.torch_device)
        rows = []
        for offset, box in enumerate(boxes):
            for frame in range(3):
                row = [float(v) for v in whole[3 * offset + frame]]
                if box is not None:  # a few small crops per triplet: skimage on the CPU
                    (top, bottom), (left, right) = box
                    row += image_metrics(truth[offset, frame, top:bottom, left:right],
                                         recon[offset, frame, top:bottom, left:right])
                rows.append(row)
        return rows

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()


class MetricsOutputs(NamedTuple):
    """Rule metrics' outputs."""
    table: str  # the metrics table
    spec: str  # how it was computed (JSON)


def compute_split_metrics(*, frames, recon, outputs: MetricsOutputs, model: str, split: str,
                          shard: tuple[int, int] | None = None, threads: int = 1, device: str = DEVICE) -> pd.DataFrame:
    """Rule metrics: the metrics table of one model and split (and how it was computed), streamed chunk by chunk
    over the frames and recon stores; with ``shard`` (index, count), the rows of that shard's triplets
    (``gather_tables`` concatenates them). ``threads`` processes score the chunks on the CPU; ``device`` cuda (or
    auto with a GPU) scores them with torch instead."""
    engine = _Engine(threads, device)  # first: its worker processes start before the stores are opened
    try:
        return _score_split(engine, frames, recon, *outputs, model, split, shard)
    finally:
        engine.close()


def _score_split(engine: _Engine, frames_path, recon_path, table_path, spec_path, model: str, split: str,
                 shard: tuple[int, int] | None) -> pd.DataFrame:
    frames_group = store.open_store(frames_path, "frames")
    recon_group = store.open_store(recon_path, "recon")
    names = store.require_same_triplets(frames_group, recon_group, frames_path, recon_path)
    origins = store.origins(frames_group)
    truth, reconstruction = frames_group[store.FRAMES], recon_group[store.FRAMES]
    if truth.shape != reconstruction.shape:
        raise ValueError(f"{frames_path} has frames {truth.shape} but {recon_path} has {reconstruction.shape}")
    annotations = store.read_annotations(frames_group)
    size = truth.shape[2:4]
    first, last = (0, len(names)) if shard is None else store.shard_rows(len(names), *shard, align=truth.chunks[0])
    spans = [(max(start, first), min(stop, last)) for start, stop in store.chunk_ranges(truth)]
    spans = [(start, stop) for start, stop in spans if start < stop]

    def chunks():
        for start, stop in spans:
            boxes = [None if annotations is None else roi_box(annotations.iloc[index], size)
                     for index in range(start, stop)]
            yield truth[start:stop], reconstruction[start:stop], boxes

    print(f"metrics {model}/{split}: {engine.description}")
    rows = []
    with tqdm(total=last - first, desc=f"metrics {model}/{split}", unit="triplet") as progress:
        for (start, stop), values in zip(spans, engine.map(chunks())):
            for offset in range(stop - start):
                index = start + offset
                rows += [[model, split, names[index], origins[index], frame + 1, *values[3 * offset + frame]]
                         for frame in range(3)]
            progress.update(stop - start)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS + (ROI_COLUMNS if annotations is not None else []))
    if annotations is not None:
        table = table.merge(annotations[["triplet", *ANNOTATION_COLUMNS]], on="triplet", how="left")
    atomic.write_csv(table, table_path, "metrics" if shard is None else f"metrics-shard{shard[0]}",
                     float_format="%.8g")
    Path(spec_path).write_text(json.dumps(metric_spec(), indent=2) + "\n")
    return table


def gather_tables(*, tables: list[str], specs: list[str], table, spec) -> None:
    """Rule gather_metrics: the shards' metrics ``tables``, in order, as one ``table``: the bytes an unsharded run
    writes (the header once); their ``specs``, which must agree, as ``spec``."""
    shard_tables, shard_specs, table_path, spec_path = tables, specs, table, spec
    specs = {Path(path).read_text() for path in shard_specs}
    if len(specs) != 1:
        raise ValueError(f"the shards' metric specs differ ({', '.join(map(str, shard_specs))}): made by different "
                         "code")
    with open(table_path, "w", newline="") as out:
        for index, path in enumerate(shard_tables):
            with open(path, newline="") as table:
                header = table.readline()
                if index == 0:
                    out.write(header)
                out.writelines(table)
    Path(spec_path).write_text(specs.pop())


def roi_box(annotation, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of the motion RoI in the stored frame, rescaled from the original image size and
    grown to SSIM's 7x7 window where it is smaller."""
    height, width = size
    scale_y, scale_x = height / annotation.image_height, width / annotation.image_width
    spans = []
    for start, length, scale, limit in ((annotation.roi_y, annotation.roi_h, scale_y, height),
                                        (annotation.roi_x, annotation.roi_w, scale_x, width)):
        low, high = int(np.floor(start * scale)), int(np.ceil((start + length) * scale))
        low, high = max(0, min(low, limit - 1)), max(1, min(high, limit))
        while high - low < min(7, limit):  # grow symmetrically, within the frame
            low, high = max(0, low - 1), min(limit, high + 1)
        spans.append((low, high))
    return spans[0], spans[1]


def pooled_psnr(mse: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean(mse)), 1e-20)))


def study_rows(interp_table: pd.DataFrame) -> pd.DataFrame:
    """An interp table's rows of the study: each triplet predicted at its own t (at the midpoint for every triplet
    under ``interp.time: midpoint``), without the second scoring of the off-midpoint triplets at the midpoint, which
    only the comparison of the two reads (column ``at``). Here, not in the interp package, so that the readers of
    these tables need no torch."""
    if "at" not in interp_table:  # a table made by hand: one row per method and triplet
        return interp_table
    main = "t" if (interp_table["at"] == "t").any() else "midpoint"
    return interp_table[interp_table["at"] == main]


def bootstrap_ci(numerator: np.ndarray, denominator: np.ndarray, picks: np.ndarray, transform=None):
    """95% percentile interval of sum(numerator) / sum(denominator) over resampled triplets (rows of ``picks``)."""
    if picks.size == 0:
        return float("nan"), float("nan")
    ratios = numerator[picks].sum(axis=1) / denominator[picks].sum(axis=1)
    values = transform(ratios) if transform else ratios
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def summarize_group(group: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> dict:
    """Means, standard deviations and bootstrap CIs of one group of per-image rows."""
    finite_psnr = group["psnr"].replace(np.inf, np.nan)  # an exact reconstruction has no finite PSNR
    # Per-triplet sums make each bootstrap resample a vectorised sum instead of a table rebuild.
    per_triplet = group.assign(psnr=finite_psnr, finite=finite_psnr.notna()).groupby("triplet").agg(
        psnr=("psnr", "sum"), finite=("finite", "sum"), mse=("mse", "sum"), ssim=("ssim", "sum"), n=("mse", "size"))
    n_triplets = len(per_triplet)
    rng = np.random.default_rng(seed)
    picks = rng.integers(n_triplets, size=(resamples, n_triplets)) if n_triplets > 1 else np.empty((0, 0), int)
    images = per_triplet["n"].to_numpy(float)
    row = {"n_triplets": n_triplets, "n_images": len(group),
           "mse": group["mse"].mean(), "mse_std": group["mse"].std(ddof=1),
           "psnr": finite_psnr.mean(), "psnr_std": finite_psnr.std(ddof=1)}
    row["psnr_ci_low"], row["psnr_ci_high"] = bootstrap_ci(
        per_triplet["psnr"].to_numpy(), per_triplet["finite"].to_numpy(float), picks)
    row["psnr_pooled"] = pooled_psnr(group["mse"].to_numpy())
    # PSNR falls as MSE rises, so the MSE interval's ends swap; percentiles of the transform handle that.
    row["psnr_pooled_ci_low"], row["psnr_pooled_ci_high"] = bootstrap_ci(
        per_triplet["mse"].to_numpy(), images, picks, lambda mse: 10 * np.log10(1.0 / np.maximum(mse, 1e-20)))
    row["ssim"], row["ssim_std"] = group["ssim"].mean(), group["ssim"].std(ddof=1)
    row["ssim_ci_low"], row["ssim_ci_high"] = bootstrap_ci(per_triplet["ssim"].to_numpy(), images, picks)
    return row


def summarize(tables: list[pd.DataFrame], resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Summary rows per model: each split and origin, each split, each difficulty level of an annotated split, and
    ``all`` splits together. RoI columns are the means inside the motion RoI, where the split has one."""
    metrics = pd.concat(tables, ignore_index=True)
    rows = []
    for model, by_model in metrics.groupby("model", sort=False):
        groups = [((split, origin, "all"), g)
                  for (split, origin), g in by_model.groupby(["split", "origin"], sort=False)]
        groups += [((split, "all", "all"), g) for split, g in by_model.groupby("split", sort=False)]
        if "level" in by_model:
            groups += [((split, "all", str(int(level))), g)
                       for (split, level), g in by_model.dropna(subset=["level"]).groupby(["split", "level"])]
        groups += [(("all", "all", "all"), by_model)]
        for (split, origin, level), group in groups:
            row = {"model": model, "split": split, "origin": origin, "level": level,
                   **summarize_group(group, resamples, seed)}
            has_roi = "roi_psnr" in group and group["roi_psnr"].notna().any()
            row["roi_psnr"] = group["roi_psnr"].replace(np.inf, np.nan).mean() if has_roi else np.nan
            row["roi_psnr_pooled"] = pooled_psnr(group["roi_mse"].dropna().to_numpy()) if has_roi else np.nan
            row["roi_ssim"] = group["roi_ssim"].mean() if has_roi else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def compare_models(metrics: pd.DataFrame, pairs: list[tuple[str, str]], resamples: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """Each (model, baseline) pair on the same images: per split and ``all``, the means of both, their difference
    (model - baseline) with a paired 95% bootstrap CI over triplets, and the share of images improved."""
    keys = ["split", "triplet", "frame"]
    rows = []
    for model, baseline in pairs:
        base = metrics[metrics["model"] == baseline].set_index(keys)[["mse", "psnr", "ssim"]]
        by_model = metrics[metrics["model"] == model]
        paired = by_model.set_index(keys)[["mse", "psnr", "ssim"]].join(base.add_suffix("_baseline"), how="inner")
        paired = paired.replace(np.inf, np.nan).dropna().reset_index()  # an exact image has no PSNR difference
        groups = [(split, g) for split, g in paired.groupby("split", sort=False)] + [("all", paired)]
        for split, group in groups:
            row = {"model": model, "baseline": baseline, "split": split, "n_images": len(group)}
            per_triplet = group.groupby(["split", "triplet"]).sum(numeric_only=True)
            rng = np.random.default_rng(seed)
            picks = rng.integers(len(per_triplet), size=(resamples, len(per_triplet))) if len(per_triplet) > 1 \
                else np.empty((0, 0), int)
            images = group.groupby(["split", "triplet"]).size().to_numpy(float)
            for metric in ("psnr", "ssim", "mse"):
                difference = (per_triplet[metric] - per_triplet[f"{metric}_baseline"]).to_numpy()
                row[metric], row[f"{metric}_baseline"] = group[metric].mean(), group[f"{metric}_baseline"].mean()
                row[f"{metric}_diff"] = row[metric] - row[f"{metric}_baseline"]
                row[f"{metric}_diff_ci_low"], row[f"{metric}_diff_ci_high"] = bootstrap_ci(difference, images, picks)
            row["psnr_improved_share"] = float((group["psnr"] > group["psnr_baseline"]).mean())
            rows.append(row)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


COMPARISON_COLUMNS = ["model", "baseline", "split", "n_images"] + [
    f"{metric}{suffix}" for metric in ("psnr", "ssim", "mse")
    for suffix in ("", "_baseline", "_diff", "_diff_ci_low", "_diff_ci_high")] + ["psnr_improved_share"]


def summarize_tables(*, tables: list[str], summary, comparison=None, resamples: int = RESAMPLES,
                     seed: int = 0, pairs: list[tuple[str, str]] = ()) -> pd.DataFrame:
    """Rule metrics_summary: ``summary`` (summary.csv) from every metrics table and, when ``comparison`` is given,
    comparison.csv of the (model, baseline) ``pairs`` (no rows without pairs)."""
    table_paths, summary_path, comparison_path = tables, summary, comparison
    pairs = [tuple(pair) for pair in pairs]
    tables = [pd.read_csv(path) for path in table_paths]
    summary = summarize(tables, resamples, seed)
    summary.to_csv(summary_path, index=False, float_format="%.6g")
    if comparison_path is not None:
        compare_models(pd.concat(tables, ignore_index=True), list(pairs), resamples, seed).to_csv(
            comparison_path, index=False, float_format="%.6g")
    return summary
