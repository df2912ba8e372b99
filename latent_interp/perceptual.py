"""The frame-interpolation field's image metrics beyond MSE/PSNR/SSIM: EISAI's chamfer line distance and LPIPS.

Chamfer line distance (Chen & Zwicker, "Improving the Perceptual Quality of 2D Animation Interpolation", ECCV 2022;
pinned to their evaluation code, ``ChamferDistance2dMetric(t=2.0, sigma=1.0)``):
    1. both images RGB in [0, 1] -> grey = 0.299 R + 0.587 G + 0.114 B;
    2. a difference of Gaussians marks dark lines: ``0.5 + t * (blur(grey, sigma * k) - blur(grey, sigma)) -
       epsilon > 0.5`` with t = 2, sigma = 1, k = 1.6, epsilon = 0.01; each blur's kernel is 2 * int(4 * s) + 1
       wide (9 and 13 pixels), normalised over its window, with replicated borders;
    3. ``d_pred`` = Euclidean distance of every pixel to the nearest line pixel of the prediction (an image with no
       line pixel: the image diagonal everywhere), likewise ``d_gt``;
    4. CD = (mean over all pixels of gt_line * d_pred + mean of pred_line * d_gt) / 2 / diagonal.
    Lower is better; 0 for identical line maps. A line shifted by one pixel in a W-wide image scores 1 / (W * diag).

LPIPS (Zhang et al. 2018, v0.1, AlexNet): the five ReLU outputs of AlexNet's features, each normalised to unit length
over channels, their squared difference weighted per channel by LPIPS's linear layers, averaged over space and summed
over layers. Inputs pass LPIPS's scaling layer first. The weights are files: torchvision's AlexNet state dict
(``alexnet-owt-7be5be79.pth``, keys ``features.N.weight``; ``interp.lpips.backbone``) and LPIPS's ``alex.pth`` (keys
``linL.model.1.weight``; ``interp.lpips.linear``, by default the one the ``lpips`` package ships). Nothing is
downloaded; without a backbone file LPIPS is skipped and the report says so.
The ``lpips`` package itself builds its networks from torchvision, and torchvision 0.28.0 (the release for torch
2.13) from PyPI does not import beside the CPU build of torch ("operator torchvision::nms does not exist"), and once
installed it breaks diffusers' import too. So the network is written out here, in the package's key layouts, and the
package is installed without its dependencies (``requirements-no-deps.txt``) for its shipped linear weights and for
tests/test_perceptual.py, which checks this module against ``lpips.LPIPS(net="alex")`` given the same trunk (1e-5).
Two input conventions (``metrics.protocol``): ``standard`` maps uint8 frames to [-1, 1], the range LPIPS expects;
``eisai`` feeds [0, 1] images as they are, as EISAI's evaluation does (``lpips.LPIPS`` called without
``normalize=True`` on images in [0, 1]).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

# EISAI's evaluation settings (ChamferDistance2dMetric's defaults as called in its evaluate.py)
DOG_T, DOG_SIGMA, DOG_K, DOG_EPSILON, DOG_KERNEL_FACTOR = 2.0, 1.0, 1.6, 0.01, 4
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])


def _blur(grey: np.ndarray, sigma: float) -> np.ndarray:
    radius = max(int(sigma * DOG_KERNEL_FACTOR), 1)  # kernel 2 * radius + 1, at least 3 wide (EISAI's sizes)
    return ndimage.gaussian_filter(grey, sigma, mode="nearest", truncate=radius / sigma)


def line_map(image_uint8: np.ndarray) -> np.ndarray:
    """bool [H, W]: the pixels EISAI's difference of Gaussians marks as line (dark strokes) in a uint8 RGB image."""
    grey = (image_uint8.astype(np.float64) / 255.0) @ GREY_WEIGHTS
    dog = 0.5 + DOG_T * (_blur(grey, DOG_SIGMA * DOG_K) - _blur(grey, DOG_SIGMA)) - DOG_EPSILON
    return dog > 0.5


def _distance_to_lines(lines: np.ndarray) -> np.ndarray:
    diagonal = float(np.hypot(*lines.shape))
    if not lines.any():  # no line at all: every pixel is a diagonal away (EISAI's convention)
        return np.full(lines.shape, diagonal)
    return ndimage.distance_transform_edt(~lines)


def chamfer_distance(truth_uint8: np.ndarray, prediction_uint8: np.ndarray) -> float:
    """EISAI's chamfer line distance of two uint8 [H, W, 3] images (module docstring); lower is better."""
    truth_lines, predicted_lines = line_map(truth_uint8), line_map(prediction_uint8)
    diagonal = float(np.hypot(*truth_lines.shape))
    towards_prediction = float((truth_lines * _distance_to_lines(predicted_lines)).mean())
    towards_truth = float((predicted_lines * _distance_to_lines(truth_lines)).mean())
    return (towards_prediction + towards_truth) / 2 / diagonal


CHAMFER_SPEC = ("EISAI (ECCV 2022) chamfer line distance: DoG lines (t=2, sigma=1, k=1.6, epsilon=0.01, kernels 9 "
                "and 13 px, replicated borders) of grey = 0.299R+0.587G+0.114B; (mean(gt_lines * edt(pred_lines)) + "
                "mean(pred_lines * edt(gt_lines))) / 2 / image diagonal; lower is better")


class LPIPS(torch.nn.Module):
    """LPIPS v0.1 with an AlexNet trunk, laid out as torchvision's ``alexnet().features`` and lpips' ``lin0..lin4``."""

    CHANNELS = (64, 192, 384, 256, 256)
    TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs in ``features`` whose outputs are compared
    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)

    def __init__(self):
        super().__init__()
        conv, relu, pool = torch.nn.Conv2d, torch.nn.ReLU, torch.nn.MaxPool2d
        self.features = torch.nn.Sequential(
            conv(3, 64, 11, stride=4, padding=2), relu(), pool(3, 2),
            conv(64, 192, 5, padding=2), relu(), pool(3, 2),
            conv(192, 384, 3, padding=1), relu(),
            conv(384, 256, 3, padding=1), relu(),
            conv(256, 256, 3, padding=1), relu())
        for index, channels in enumerate(self.CHANNELS):  # lpips' NetLinLayer: Dropout, then a 1x1 conv
            self.add_module(f"lin{index}", torch.nn.Module())
            getattr(self, f"lin{index}").model = torch.nn.Sequential(
                torch.nn.Dropout(), conv(channels, 1, 1, bias=False))
        self.register_buffer("shift", torch.tensor(self.SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(self.SCALE).view(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs, x = [], (x - self.shift) / self.scale
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.TAPS:
                outputs.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return outputs

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Distances [B] of two batches float [B, 3, H, W] in [-1, 1]."""
        total = 0.0
        for index, (a, b) in enumerate(zip(self._taps(first), self._taps(second))):
            total = total + getattr(self, f"lin{index}").model((a - b) ** 2).mean(dim=(2, 3))
        return total.flatten()


def packaged_linear_weights() -> Path | None:
    """LPIPS v0.1's ``alex.pth`` as the ``lpips`` package ships it, found without importing the package (its import
    needs torchvision), or None when it is not installed."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / "alex.pth"
    return path if path.is_file() else None


def linear_weights(linear_path) -> Path:
    """The linear layers' file: ``interp.lpips.linear``, or (null) the ``lpips`` package's."""
    if linear_path:
        return Path(linear_path)
    packaged = packaged_linear_weights()
    if packaged is None:
        raise FileNotFoundError("config key interp.lpips.linear is null and the lpips package, which ships LPIPS "
                                "v0.1's alex.pth, is not installed: pip install --no-deps -r requirements-no-deps.txt,"
                                " or name the file")
    return packaged


def load_lpips(backbone_path, linear_path=None, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS from the trunk's weight file and the linear layers' (``linear_weights``), in eval mode; a missing key
    names its file."""
    model = LPIPS()
    for path, prefix in ((backbone_path, "features."), (linear_weights(linear_path), "lin")):
        if not Path(path).is_file():
            raise FileNotFoundError(f"config key interp.lpips: no weight file at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {key: value for key, value in state.items() if key.startswith(prefix)}  # AlexNet's classifier: unused
        expected = {key for key in model.state_dict() if key.startswith(prefix)}
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state))[:3], sorted(set(state) - expected)[:3]
            raise ValueError(f"{path}: not the expected layout (missing {missing}, unexpected {unexpected})")
        model.load_state_dict(state, strict=False)
    return model.to(device).eval()


def lpips_spec(backbone_path, linear_path=None, inputs: str = "[-1, 1]") -> str:
    return (f"LPIPS v0.1, AlexNet trunk ({backbone_path}), linear layers ({linear_weights(linear_path)}); inputs in "
            f"{inputs}; lower is better")
