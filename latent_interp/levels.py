"""A VAE's encoder and decoder as a chain of pieces, and their levels: where inside the model a picture's features
can be read, compared or warped.

A chain (``Chain``) is the model's own forward pass cut into pieces that run one after another, each marked with how
it changes the resolution (a 2x downsampling doubles the stride, a 2x upsampling halves it). Running every piece
gives exactly what ``vae.posterior`` (the encoder: the posterior mean, or TAESD's latent) or ``model.decode`` (the
decoder) gives; a test checks both families.

A level is the last point at each resolution: just before each resampling, and the chain's end (the encoder: the
latent itself) or, for the decoder, the full-resolution features just before the output layers (the decoder's
``conv_norm_out``, ``conv_act``, ``conv_out``; TAESD's last convolution). The decoder's level 0 is so the latent
grid after its first layers (``post_quant_conv``, ``conv_in``, the mid block, the first block's ResNets), and its
last level the full resolution. Levels are found from the module tree (diffusers' ``UpDecoderBlock2D`` and
``DownEncoderBlock2D`` upsamplers and downsamplers; ``AutoencoderTiny``'s ``nn.Upsample`` layers and stride-2
convolutions), so every VAE of ``vaes:`` gets its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from latent_interp import vae


@dataclass(frozen=True)
class Piece:
    """One step of a chain: ``run`` maps its input features to its output; ``scale`` multiplies the stride (2 for a
    2x downsampling, 1/2 for a 2x upsampling, 1 otherwise); ``name`` the module path it runs, for errors and tables."""
    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    scale: float = 1.0


@dataclass(frozen=True)
class Chain:
    """The pieces of an encoder or decoder in order, its levels (positions: how many pieces run before the level's
    features) and their strides (frame pixels per feature cell at that level)."""
    part: str  # encoder or decoder
    pieces: tuple[Piece, ...]
    levels: tuple[int, ...]
    strides: tuple[int, ...]

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The pieces ``start`` up to (not including) ``stop`` applied to ``x``."""
        for piece in self.pieces[start:stop]:
            x = piece.run(x)
        return x

    def names(self) -> list[str]:
        """Each level as the module it follows, for tables: ``decoder.up_blocks.1.resnets.1``."""
        return [self.pieces[position - 1].name if position else "input" for position in self.levels]


def _resampling(pieces: list[Piece], start_stride: int, end_position: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The levels of ``pieces``: the position before each piece that resamples, and ``end_position``; with the
    stride at each."""
    levels, strides, stride = [], [], float(start_stride)
    for position, piece in enumerate(pieces):
        if piece.scale != 1.0 and position < end_position:
            levels.append(position)
            strides.append(int(round(stride)))
        stride *= piece.scale
    stride = float(start_stride)
    for piece in pieces[:end_position]:
        stride *= piece.scale
    levels.append(end_position)
    strides.append(int(round(stride)))
    return tuple(levels), tuple(strides)


def _resnets_then(block, prefix: str, resampler_attribute: str, scale: float) -> list[Piece]:
    """A diffusers ``UpDecoderBlock2D`` or ``DownEncoderBlock2D`` as its ResNets, then its resampler if it has one."""
    if type(block).__name__ not in ("UpDecoderBlock2D", "DownEncoderBlock2D"):
        raise ValueError(f"{prefix} is a {type(block).__name__}; the levels of an AutoencoderKL are found in "
                         "UpDecoderBlock2D and DownEncoderBlock2D blocks only")
    pieces = [Piece(f"{prefix}.resnets.{i}", lambda x, resnet=resnet: resnet(x, None))
              for i, resnet in enumerate(block.resnets)]
    for i, resampler in enumerate(getattr(block, resampler_attribute) or ()):
        pieces.append(Piece(f"{prefix}.{resampler_attribute}.{i}", resampler, scale))
    return pieces


def decoder_chain(model) -> Chain:
    """The decoder of ``model`` (latent in, image in [-1, 1] out, as ``model.decode(z).sample``) as a chain."""
    factor = vae.downsampling(model.config)
    if vae.family_of(model) == "tiny":
        decoder = model.decoder
        pieces = [Piece("decoder.clamp", lambda x: torch.tanh(x / 3) * 3)]
        for i, layer in enumerate(decoder.layers):
            scale = 1 / float(layer.scale_factor) if isinstance(layer, nn.Upsample) else 1.0
            pieces.append(Piece(f"decoder.layers.{i}", layer, scale))
        pieces.append(Piece("decoder.to_model_range", lambda x: x.mul(2).sub(1)))
        output_layers = 2  # the last convolution, and the map from [0, 1] to [-1, 1]
    else:
        decoder = model.decoder
        pieces = [Piece("post_quant_conv", model.post_quant_conv)] if model.post_quant_conv is not None else []
        pieces += [Piece("decoder.conv_in", decoder.conv_in),
                   Piece("decoder.mid_block", lambda x: decoder.mid_block(x, None))]
        for i, block in enumerate(decoder.up_blocks):
            pieces += _resnets_then(block, f"decoder.up_blocks.{i}", "upsamplers", 0.5)
        pieces += [Piece("decoder.conv_norm_out", decoder.conv_norm_out), Piece("decoder.conv_act", decoder.conv_act),
                   Piece("decoder.conv_out", decoder.conv_out)]
        output_layers = 3
    levels, strides = _resampling(pieces, factor, len(pieces) - output_layers)
    return Chain("decoder", tuple(pieces), levels, strides)


def encoder_chain(model) -> Chain:
    """The encoder of ``model`` (frames in [-1, 1] in, the latent ``vae.posterior`` gives out) as a chain."""
    if vae.family_of(model) == "tiny":
        encoder = model.encoder
        pieces = [Piece("encoder.to_unit_range", lambda x: x.add(1).div(2))]
        for i, layer in enumerate(encoder.layers):
            strided = isinstance(layer, nn.Conv2d) and layer.stride[0] > 1
            pieces.append(Piece(f"encoder.layers.{i}", layer, float(layer.stride[0]) if strided else 1.0))
    else:
        encoder = model.encoder
        pieces = [Piece("encoder.conv_in", encoder.conv_in)]
        for i, block in enumerate(encoder.down_blocks):
            pieces += _resnets_then(block, f"encoder.down_blocks.{i}", "downsamplers", 2.0)
        pieces += [Piece("encoder.mid_block", lambda x: encoder.mid_block(x, None)),
                   Piece("encoder.conv_norm_out", encoder.conv_norm_out), Piece("encoder.conv_act", encoder.conv_act),
                   Piece("encoder.conv_out", encoder.conv_out)]
        if model.quant_conv is not None:
            pieces.append(Piece("quant_conv", model.quant_conv))
        latent_channels = model.config.latent_channels
        pieces.append(Piece("posterior_mean", lambda x: x[:, :latent_channels]))  # (mean, logvar) on channels
    levels, strides = _resampling(pieces, 1, len(pieces))
    return Chain("encoder", tuple(pieces), levels, strides)
