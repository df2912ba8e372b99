"""The random transforms of the equivariant fine-tune (recipe ``equivariant``): one transform ``T`` acts on a latent
grid and on the image it came from, so that ``decode(T(z))`` can be held to ``T(x)``.

A transform is a down-scaling, a rotation and a translation, applied in that order, each drawn with its recipe
probability (``sample_transform``):

- scaling by ``s`` in [scale_min, 1) (EQ-VAE's): the latent is resized to ``round(s h) x round(s w)`` cells and the
  image to ``f`` times that (f the downsampling), both bilinear with antialiasing, as EQ-VAE resizes both;
- rotation by 90, 180 or 270 degrees (EQ-VAE's): exact on both grids;
- translation by ``d`` cells on each axis, the image by ``d f`` pixels. Whole cells (1 or 2, either sign) are an exact
  roll of both; a fraction of a cell (``k / f``, k whole pixels) rolls the image by k pixels and moves the latent by
  bilinear interpolation between its two nearest whole-cell rolls, the latent warp that ``latent_flow`` relies on.
  Both wrap around (``np.roll``, as the equivariance analysis shifts frames): the seam is in the target too, so a
  model that decodes each cell from its neighbourhood reproduces it.

EQ-VAE (Kouzelis et al., ICML 2025) holds ``decode(T(z))`` to ``T(x)`` for scalings and rotations, with
``z`` the encoder's output; here ``z`` is a posterior sample, as in the reconstruction term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Transform:
    scale: float | None = None  # latent side factor; None: no scaling
    quarter_turns: int = 0  # counter-clockwise rotations by 90 degrees
    shift_cells: tuple[float, float] = (0.0, 0.0)  # (down, right), in latent cells; images move by f times that

    def describe(self) -> str:
        parts = [f"scale {self.scale:.2f}"] if self.scale is not None else []
        parts += [f"rotate {90 * (self.quarter_turns % 4)}"] if self.quarter_turns % 4 else []
        parts += [f"shift {self.shift_cells[0]:+g},{self.shift_cells[1]:+g} cells"] if self.shift_cells != (0, 0) \
            else []
        return ", ".join(parts) or "identity"

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """T applied to latents [B, C, h, w]."""
        if self.scale is not None:
            z = F.interpolate(z, size=scaled_size(z.shape[-2:], self.scale), mode="bilinear", antialias=True,
                              align_corners=False)
        z = torch.rot90(z, self.quarter_turns, dims=(-2, -1))
        for axis, cells in zip((-2, -1), self.shift_cells):
            z = roll_fraction(z, cells, axis)
        return z

    def image(self, x: torch.Tensor, downsampling: int) -> torch.Tensor:
        """T applied to images [B, 3, H, W] whose sides are ``downsampling`` times the latent's."""
        if self.scale is not None:
            cells = scaled_size((x.shape[-2] // downsampling, x.shape[-1] // downsampling), self.scale)
            x = F.interpolate(x, size=(cells[0] * downsampling, cells[1] * downsampling), mode="bilinear",
                              antialias=True, align_corners=False)
        x = torch.rot90(x, self.quarter_turns, dims=(-2, -1))
        pixels = [round(cells * downsampling) for cells in self.shift_cells]
        return torch.roll(x, shifts=pixels, dims=(-2, -1)) if any(pixels) else x


def scaled_size(cells, scale: float) -> tuple[int, int]:
    return tuple(max(1, round(side * scale)) for side in cells)


def roll_fraction(z: torch.Tensor, cells: float, axis: int) -> torch.Tensor:
    """z moved by ``cells`` along ``axis``, wrapping around: out(p) = z(p - cells), linear between whole cells."""
    whole = math.floor(cells)
    fraction = cells - whole
    moved = torch.roll(z, whole, dims=axis) if whole else z
    if fraction == 0:
        return moved
    return torch.lerp(moved, torch.roll(z, whole + 1, dims=axis), fraction)


def sample_transform(recipe, downsampling: int, rng: np.random.Generator) -> Transform:
    """One transform for a batch, each part drawn with its probability in ``recipe`` (``recipes.Recipe``)."""
    scale = float(rng.uniform(recipe.scale_min, 1.0)) if rng.random() < recipe.scale_p else None
    turns = int(rng.integers(1, 4)) if rng.random() < recipe.rotate_p else 0
    shift = np.zeros(2)
    if rng.random() < recipe.shift_whole_p:
        shift += rng.choice([-2, -1, 1, 2], size=2)
    if rng.random() < recipe.shift_fraction_p and downsampling > 1:
        shift += rng.integers(1, downsampling, size=2) / downsampling * rng.choice([-1, 1], size=2)
    return Transform(scale, turns, (float(shift[0]), float(shift[1])))


def sample_subcell_shift(downsampling: int, rng: np.random.Generator) -> Transform:
    """A translation by a fraction of a cell on each axis (k / f, k in 1 .. f - 1, either sign): the encoder-side
    term of recipe ``antialias``, which holds E(T(x)) to T(E(x))."""
    cells = rng.integers(1, max(2, downsampling), size=2) / downsampling * rng.choice([-1, 1], size=2)
    return Transform(shift_cells=(float(cells[0]), float(cells[1])))
