"""``decoder_flow@k``: the in-between warped inside the decoder, at level k (``latent_interp.levels``).

latent1 and latent3 run through the decoder together up to level k; both feature maps are warped to the in-between
along the intermediate flows (``pixel_flow``'s: Super SloMo's F_t->1, F_t->3, its occlusion weights and still mask)
taken to that level's grid (averaged over each stride x stride cell and divided by the stride, as ``latent_flow``
takes them to the latent grid), blended, and the blend finishes decoding. The features of the ends are computed
once and every level (estimated and oracle flows alike) is read on the way, so the warps cost the two ends' decode
plus, per level, the rest of the decoder from that level.

Warping before the decoder's first layers (``LATENT``) is ``latent_flow`` itself, to float precision, and warping
after its last (``OUTPUT``) is ``recon_flow``'s warp of the reconstructions: the tests check both, so the levels in
between sit on one scale from the latent grid to the picture.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from latent_interp import encode, levels, vae, warp

# the decoder's levels the registry names (decoder_flow@0 .. @3): the f = 8 VAEs have four (strides 8, 4, 2, 1)
MAX_LEVELS = 4
LATENT, OUTPUT = "latent", "output"  # the chain's two ends, for the tests' equalities


def motion_on_grid(motion: tuple, stride: int, shape: tuple[int, int]) -> tuple:
    """(F_t->1, F_t->3, weight of end 1, still) on the pixel grid -> a grid of ``stride`` pixels a cell
    (``warp.motion_to_latent_grid``), extended at the bottom and right to the features' ``shape`` with its edge
    values: the VAE's pad (``encode.pad_to_multiple``) makes a decoder's grids larger than the frame's."""
    grid = warp.motion_to_latent_grid(motion, stride)
    pad_height, pad_width = shape[0] - grid[0].shape[-2], shape[1] - grid[0].shape[-1]
    if pad_height < 0 or pad_width < 0:
        raise ValueError(f"flows of {tuple(motion[0].shape[-2:])} px are larger than a decoder grid of {shape} "
                         f"at stride {stride}")
    if not (pad_height or pad_width):
        return grid
    return tuple(F.pad(field, (0, pad_width, 0, pad_height), mode="replicate") for field in grid)


class DecoderWarps:
    """Every ``decoder_flow@k`` of a chunk's triplets, for each flow kind, from one pass of the decoder over its
    ends."""

    def __init__(self, model, batch_size: int, dtype: str, frame_size: tuple[int, int],
                 guard: encode.NonFiniteGuard | None = None):
        self.model, self.batch_size, self.dtype = model, batch_size, dtype
        self.frame_size, self.guard = frame_size, guard
        self.chain = levels.decoder_chain(model)

    @property
    def count(self) -> int:
        """The levels warped at: the decoder's, up to the registry's ``MAX_LEVELS`` (a VAE of f = 16 would have a
        fifth, which no method names)."""
        return min(len(self.chain.levels), MAX_LEVELS)

    def split_points(self, points) -> list[tuple[int, int]]:
        """(position in the chain, stride) of each point: a level index, ``LATENT`` or ``OUTPUT``."""
        ends = {LATENT: (0, vae.downsampling(self.model.config)), OUTPUT: (len(self.chain.pieces), 1)}
        return [ends[p] if p in ends else (self.chain.levels[p], self.chain.strides[p]) for p in points]

    @torch.inference_mode()
    def frames(self, latents: np.ndarray, motions: dict[str, tuple], points=None,
               times=None) -> dict[tuple, np.ndarray]:
        """(kind, point) -> uint8 frames [B, H, W, 3] for latents [B, 3, C, h, w] (ends 0 and 2 are read) and
        ``motions`` (kind -> pixel-grid motion on the device at ``times``, ``Chunk.motion``); ``points`` default
        every level; ``times`` the in-betweens' t [B] (None: the midpoint), for the plain blend where still."""
        points = list(range(self.count)) if points is None else list(points)
        # one pass down the chain: shallowest first
        placed = sorted(zip(points, self.split_points(points)), key=lambda pair: pair[1][0])
        points, where = [point for point, _ in placed], [split for _, split in placed]
        device = next(self.model.parameters()).device
        out: dict[tuple[str, object], np.ndarray] = {}
        for batch in encode.batch_slices(len(latents), self.batch_size):
            ends = torch.from_numpy(np.ascontiguousarray(latents[batch][:, [0, 2]])).to(device)
            batch_motions = {kind: tuple(field[batch] for field in motion) for kind, motion in motions.items()}
            batch_times = None if times is None else np.asarray(times)[batch]
            try:
                images = encode.guarded(lambda x: self._warped(x, batch_motions, where, batch_times), ends, device,
                                        self.dtype, self.guard, "decoder (decoder_flow)")
            except encode.NonFiniteError as error:
                raise encode.NonFiniteError(str(error), [batch.start + i for i in error.frames]) from None
            for (kind, point), image in zip(((k, p) for p in points for k in motions), images):
                decoded = encode.to_uint8_frames(image[..., :self.frame_size[0], :self.frame_size[1]])
                out.setdefault((kind, point), np.empty((len(latents), *decoded.shape[1:]), np.uint8))[batch] = decoded
        return out

    def _warped(self, ends: torch.Tensor, motions: dict[str, tuple], where: list[tuple[int, int]],
                times=None) -> tuple:
        """The images of every (point, kind), points outer: the ends [B, 2, C, h, w] decoded together up to each
        point, warped, blended, and the blend decoded from there."""
        count = len(ends)
        features = ends.transpose(0, 1).flatten(0, 1).contiguous(memory_format=encode.layout_of(self.model))
        images, position = [], 0
        for stop, stride in where:
            features = self.chain.run(features, position, stop)
            position = stop
            first, third = features[:count].float(), features[count:].float()
            if stop == len(self.chain.pieces):  # past the output layers the features are the picture, as stored
                first, third = first.clamp(-1, 1), third.clamp(-1, 1)
            for motion in motions.values():
                blended = warp.warp_blend(first, third, *motion_on_grid(motion, stride, tuple(first.shape[-2:])),
                                          warp.times_of(times, first))
                images.append(self.chain.run(blended.to(features.dtype), stop))
        return tuple(images)
