"""Rule collapse_check: does a model's reconstruction still depend on its input? The figures of
``results/metrics/{model}/collapse.json`` (docs/outputs.md), also computed epoch by epoch by the fine-tune."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from latent_interp import store
from latent_interp.metrics import pooled_psnr

# A model has collapsed when its reconstructions no longer depend on the input (the seed's fine-tune: every output
# the same average image). Two symptoms, either one flags it:
COLLAPSE_VARIANCE_RATIO = 0.1  # reconstructions vary across images less than a tenth as much as the inputs do
COLLAPSE_PSNR_GAIN_DB = 1.0  # or beat "predict the mean image for every frame" by less than 1 dB


class CollapseMoments:
    """Streamed per-pixel first and second moments (float64) of inputs and reconstructions, and the squared error:
    enough for the collapse figures without holding a split in memory."""

    def __init__(self):
        self.count, self.error = 0, 0.0
        self.truth_sum = self.truth_squares = self.recon_sum = self.recon_squares = 0.0

    def add(self, truth_uint8: np.ndarray, recon_uint8: np.ndarray) -> None:
        """Add uint8 frames [F, H, W, 3] and their reconstructions."""
        truth = truth_uint8.astype(np.float64) / 255.0
        recon = recon_uint8.astype(np.float64) / 255.0
        self.count += len(truth)
        self.truth_sum = self.truth_sum + truth.sum(axis=0)
        self.truth_squares = self.truth_squares + (truth ** 2).sum(axis=0)
        self.recon_sum = self.recon_sum + recon.sum(axis=0)
        self.recon_squares = self.recon_squares + (recon ** 2).sum(axis=0)
        self.error += float(((truth - recon) ** 2).sum())

    def figures(self) -> dict:
        """``variance_ratio``: per-pixel variance of the reconstructions across frames over that of the inputs;
        ``mean_image_psnr``: PSNR of the mean frame used as the prediction of every frame (the baseline a model that
        learned nothing reaches); ``psnr_gain_db``: the model's PSNR of the pooled MSE minus that baseline;
        ``collapsed``: whether either figure crosses its threshold."""
        n = self.count
        if n < 2:
            raise ValueError(f"the collapse check needs at least 2 frames, found {n}")
        truth_variance = self.truth_squares / n - (self.truth_sum / n) ** 2  # per pixel, over images
        recon_variance = self.recon_squares / n - (self.recon_sum / n) ** 2
        baseline_mse = float(truth_variance.mean())  # the mean image's MSE is exactly the inputs' variance
        result = {
            "frames": int(n),
            "input_variance": baseline_mse,
            "recon_variance": float(recon_variance.mean()),
            "variance_ratio": float(recon_variance.mean() / max(baseline_mse, 1e-20)),
            "mean_image_psnr": pooled_psnr(np.array([baseline_mse])),
            "model_psnr_pooled": pooled_psnr(np.array([self.error / (n * truth_variance.size)])),
        }
        result["psnr_gain_db"] = result["model_psnr_pooled"] - result["mean_image_psnr"]
        result["collapsed"] = bool(result["variance_ratio"] < COLLAPSE_VARIANCE_RATIO
                                   or result["psnr_gain_db"] < COLLAPSE_PSNR_GAIN_DB)
        result["rule"] = (f"collapsed when variance_ratio < {COLLAPSE_VARIANCE_RATIO} or psnr_gain_db < "
                          f"{COLLAPSE_PSNR_GAIN_DB}")
        return result


def collapse_check(*, frames, recon, figures=None) -> dict:
    """Rule collapse_check: the collapse figures (``CollapseMoments.figures``) of one model on one split (val in the
    workflow), written as JSON to ``figures`` when it is given."""
    frames_path, recon_path, out_path = frames, recon, figures
    frames_group = store.open_store(frames_path, "frames")
    recon_group = store.open_store(recon_path, "recon")
    store.require_same_triplets(frames_group, recon_group, frames_path, recon_path)
    truth_array, recon_array = frames_group[store.FRAMES], recon_group[store.FRAMES]
    moments = CollapseMoments()
    for start, stop in store.chunk_ranges(truth_array):
        moments.add(truth_array[start:stop].reshape(-1, *truth_array.shape[2:]),
                    recon_array[start:stop].reshape(-1, *truth_array.shape[2:]))
    try:
        result = {"split": frames_group.attrs["split"], **moments.figures()}
    except ValueError as error:
        raise ValueError(f"{frames_path}: {error}") from None
    if out_path is not None:
        Path(out_path).write_text(json.dumps(result, indent=2) + "\n")
    return result
