"""An anti-aliased encoder: a low-pass (binomial) filter before each strided downsampling, after Zhang, "Making
Convolutional Networks Shift-Invariant Again" (ICML 2019, BlurPool): a strided layer that samples a signal with
content above its new Nyquist rate aliases, so a shift by less than its stride changes what it keeps, not only where.
Blurring first keeps the content the stride can carry, which is what a latent grid moved by a fraction of a cell
(``latent_flow``'s warp) needs.

Every strided downsampling of the encoder gets the filter in front of it and keeps its own stride and weights
(diffusers' ``Downsample2D`` of an AutoencoderKL; the stride-2 convolutions of an AutoencoderTiny). The filter has no
weights (a buffer that is not saved), so the state dict is the pretrained one's, and the fine-tune starts from the
pretrained weights. The filter size is kept in the model's config under ``CONFIG_KEY``, which ``save_pretrained``
writes to config.json and ``vae.load_vae`` applies again on loading (diffusers warns that it does not know the key,
and keeps it), so an anti-aliased model saves and loads as a diffusers folder like any other.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

CONFIG_KEY = "latent_interp_antialias"


def binomial_kernel(size: int) -> torch.Tensor:
    """The 2-D binomial filter of ``size`` taps a side (row k of Pascal's triangle, outer product, sum 1)."""
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum()).float()


class Blur(nn.Module):
    """A depthwise binomial filter of ``size`` taps, stride 1, reflect-padded so the output has the input's size
    (an even size pads one more at the bottom and right)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("kernel", binomial_kernel(size)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = (self.size - 1) // 2, self.size // 2
        padded = F.pad(x, (before, after, before, after), mode="reflect")
        kernel = self.kernel.to(dtype=x.dtype).expand(x.shape[1], 1, self.size, self.size)
        return F.conv2d(padded, kernel, groups=x.shape[1])


def strided_downsamplings(model) -> list[tuple[str, nn.Module]]:
    """(name, module) of every strided downsampling of the encoder, in order."""
    if type(model).__name__ == "AutoencoderTiny":
        return [(f"encoder.layers.{i}", layer) for i, layer in enumerate(model.encoder.layers)
                if isinstance(layer, nn.Conv2d) and layer.stride[0] > 1]
    return [(f"encoder.down_blocks.{i}.downsamplers.{j}", sampler)
            for i, block in enumerate(model.encoder.down_blocks) for j, sampler in enumerate(block.downsamplers or ())]


def _blur_input(module, args):
    return (module.antialias_blur(args[0]), *args[1:])


def antialias_encoder(model, size: int):
    """``model`` with a ``Blur(size)`` before each strided downsampling of its encoder (in place; returned), and
    ``size`` in its config. A size of 1 or less changes nothing; a model already anti-aliased is refused."""
    if blur_size(model):
        raise ValueError(f"the model's encoder is already anti-aliased (blur {blur_size(model)})")
    if size <= 1:
        return model
    for _, module in strided_downsamplings(model):
        module.antialias_blur = Blur(size).to(next(model.parameters()).device)
        module.register_forward_pre_hook(_blur_input)
    model.register_to_config(**{CONFIG_KEY: {"blur": int(size),
                                             "where": "a binomial filter before each strided downsampling of the "
                                                      "encoder (latent_interp.antialias)"}})
    return model


def blur_size(model) -> int:
    """The size of the filter ``antialias_encoder`` put in, or 0."""
    return int((model.config.get(CONFIG_KEY) or {}).get("blur", 0)) if all(
        getattr(module, "antialias_blur", None) is not None for _, module in strided_downsamplings(model)) else 0


def restore(model):
    """Apply the anti-aliasing a loaded model's config records (``CONFIG_KEY``); the model unchanged without it."""
    recorded = model.config.get(CONFIG_KEY)
    if not recorded:
        return model
    model.register_to_config(**{CONFIG_KEY: None})
    return antialias_encoder(model, int(recorded["blur"]))
