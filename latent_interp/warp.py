"""Moving pictures and latent grids along optical flow: the warping every motion-aware method shares.

Conventions (OpenCV's): a flow ``F_a->b`` [B, 2, H, W] holds, for each pixel p of image a, the displacement (x, y in
pixels) to where that content is in image b, so ``a(p) ~ b(p + F_a->b(p))``. Backward warping b onto a's grid is then
``b(p + F_a->b(p))``, sampled bilinearly (``grid_sample``, ``align_corners=True``: pixel centres at integer positions,
so a zero flow returns the image exactly; ``padding_mode="border"``: a sample outside the picture takes the nearest
edge pixel, as MoG warps its latents).

The in-between at time t (0 at frame 1, 1 at frame 3) follows Super SloMo (Jiang et al. 2018): the flows from the
in-between to its ends are approximated from the two end flows, ``F_t->1 = -t(1-t) F_1->3 + t^2 F_3->1`` and
``F_t->3 = (1-t)^2 F_1->3 - t(1-t) F_3->1`` (at t = 0.5: coefficients 0.25; for a pure translation d, -t d and
(1-t) d), and the two backward warps are blended with occlusion-aware weights (``blend_weights``). ``t`` is a number
or, for a batch whose triplets have their own times, a tensor [B, 1, 1, 1] (``times_of``). A latent grid of
downsampling f is warped with the same flows averaged over each f x f cell and divided by f (``to_latent_grid``), as
MoG does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

T_MIDDLE = 0.5


def snapped(times: np.ndarray) -> np.ndarray:
    """Times [N] with those within 1e-6 of the midpoint set to 0.5 exactly: a video's t is a ratio of timestamps
    rounded to float, so a drawing on even timing can come out 0.5 plus or minus 1e-16, and it is the midpoint."""
    times = np.asarray(times, dtype=np.float64)
    return np.where(np.abs(times - T_MIDDLE) < 1e-6, T_MIDDLE, times)


def times_of(times, like: torch.Tensor) -> torch.Tensor | float:
    """``times`` (None: the midpoint; a number; or one per triplet [B]) as what the functions below take: a number
    stays one, one per triplet becomes a [B, 1, 1, 1] tensor of ``like``'s dtype and device."""
    if times is None:
        return T_MIDDLE
    if isinstance(times, (int, float)):
        return float(times)
    return torch.as_tensor(times, dtype=like.dtype, device=like.device).reshape(-1, 1, 1, 1)


def lerp(first, third, t=T_MIDDLE):
    """(1 - t) first + t third. At t = 0.5 it is (first + third) / 2 to the bit: halving is exact in binary floating
    point, so both round the same sum."""
    return (1 - t) * first + t * third


def backward_warp(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``images`` [B, C, H, W] sampled at p + flow(p), flow [B, 2, H, W] in pixels (x, y) of the same grid."""
    batch, _, height, width = images.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=flow.dtype, device=flow.device),
                            torch.arange(width, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # align_corners=True maps -1 and 1 to the centres of the first and last pixels
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def intermediate_flows(flow_13, flow_31, t: float = T_MIDDLE):
    """Super SloMo's F_t->1 and F_t->3 from the end flows (module docstring): tensors or numpy arrays."""
    return (-t * (1 - t) * flow_13 + t * t * flow_31,
            (1 - t) * (1 - t) * flow_13 - t * (1 - t) * flow_31)


def visibility_middle(flow_t1, flow_t3, flow_13, flow_31, consistent_13, consistent_31, t: float = T_MIDDLE,
                      tolerance: float = 1.0):
    """How far each end's sample can be trusted at the in-between's pixel p: end 1's sample q = p + F_t->1(p) is
    trusted where its own flow carries it back to p at time t (|q + t F_1->3(q) - p| < ``tolerance`` px: the sample
    belongs to the content that is at p then, not to what covers or uncovers it) and its forward-backward check
    holds; likewise end 3 with 1 - t. [B, 1, H, W] each, in [0, 1]."""
    def trusted(flow_to_end, end_flow, end_consistent, share):
        carried = flow_to_end + share * backward_warp(end_flow, flow_to_end)  # q + share * F(q) - p
        close = (carried.norm(dim=1, keepdim=True) < tolerance).to(flow_to_end.dtype)
        return close * backward_warp(end_consistent, flow_to_end)
    return trusted(flow_t1, flow_13, consistent_13, t), trusted(flow_t3, flow_31, consistent_31, 1 - t)


def blend_weights(visible_1: torch.Tensor, visible_3: torch.Tensor, t: float = T_MIDDLE) -> torch.Tensor:
    """The weight of end 1 (end 3 gets 1 minus it): (1 - t) v1 / ((1 - t) v1 + t v3), so a sample trusted on one side
    only is taken from that side, and 1 - t where neither or both are trusted."""
    numerator, total = (1 - t) * visible_1, (1 - t) * visible_1 + t * visible_3
    return torch.where(total > 0, numerator / total.clamp_min(1e-8), torch.zeros_like(total) + (1 - t))


def to_latent_grid(field: torch.Tensor, downsampling: int, flow: bool = True) -> torch.Tensor:
    """A pixel-grid field [B, K, H, W] averaged over each f x f cell (area average); a flow is also divided by f,
    which turns pixels into latent cells."""
    pooled = F.avg_pool2d(field, downsampling, ceil_mode=True) if downsampling > 1 else field
    return pooled / downsampling if flow else pooled


def motion_to_latent_grid(motion: tuple, downsampling: int) -> tuple:
    """(F_t->1, F_t->3, weight of end 1, still) on the pixel grid -> the latent grid: flows averaged over each cell and
    divided by f, the weight averaged, a cell still where most of its pixels are."""
    flow_t1, flow_t3, weight_1, still = motion
    return (to_latent_grid(flow_t1, downsampling), to_latent_grid(flow_t3, downsampling),
            to_latent_grid(weight_1, downsampling, flow=False),
            (to_latent_grid(still, downsampling, flow=False) > 0.5).to(still.dtype))


def warp_blend(first: torch.Tensor, third: torch.Tensor, flow_t1: torch.Tensor, flow_t3: torch.Tensor,
               weight_1: torch.Tensor, still: torch.Tensor | None = None, t=T_MIDDLE) -> torch.Tensor:
    """The in-between [B, C, H, W] of ``first`` and ``third`` (frames in [0, 1] or latents) at time ``t``: both warped
    to it along F_t->1, F_t->3 and blended with ``weight_1`` (``blend_weights``); the plain blend at t (``lerp``) where
    ``still`` (the flow store's still mask, ``flow.still_mask``) is 1."""
    warped_1, warped_3 = backward_warp(first, flow_t1), backward_warp(third, flow_t3)
    blended = weight_1 * warped_1 + (1 - weight_1) * warped_3
    if still is None:
        return blended
    return torch.where(still > 0.5, lerp(first, third, t), blended)
