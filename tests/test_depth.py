"""Where a VAE's picture becomes movable: the levels of its encoder and decoder (latent_interp.levels), and the
in-between warped inside the decoder (decoder_flow@k, latent_interp.interp.depth), against known answers."""

import numpy as np
import pytest
import torch

from latent_interp import encode, levels, vae, warp
from latent_interp.interp import REGISTRY, active_methods
from latent_interp.interp.depth import LATENT, OUTPUT, DecoderWarps, motion_on_grid
from latent_interp.interp.methods import decoder_level


@pytest.fixture(scope="module", params=["kl", "tiny"])
def model(request):
    torch.manual_seed(0)
    return vae.build_vae(request.param).eval()


def _latents(model, height=32, width=48, seed=0):
    """latent1, latent2, latent3 of three random frames: [1, 3, C, h, w]."""
    frames = np.random.default_rng(seed).integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    mean, _ = encode.encode_frames(model, frames, torch.device("cpu"), 4)
    return mean[None]


def _motion(height, width, seed=0, still=False):
    """A smooth random motion on the pixel grid: (F_t->1, F_t->3, weight of end 1, still)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.normal(0, 3, (1, 4, 3, 4)).astype(np.float32))
    flows = torch.nn.functional.interpolate(coarse, (height, width), mode="bilinear", align_corners=True)
    weight = torch.from_numpy(rng.uniform(0, 1, (1, 1, height, width)).astype(np.float32))
    still_mask = torch.zeros(1, 1, height, width)
    if still:
        still_mask[..., : height // 2, :] = 1
    return flows[:, :2], flows[:, 2:], weight, still_mask


def test_the_levels_are_found_at_the_expected_resolutions(model):
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    decoder, encoder = levels.decoder_chain(model), levels.encoder_chain(model)
    assert decoder.strides == (8, 4, 2, 1) and encoder.strides == (1, 2, 4, 8)
    with torch.no_grad():
        mean, _ = vae.posterior(model, x)
        assert torch.equal(encoder.run(x), mean)  # the chain is the model's own forward pass, cut
        assert torch.equal(decoder.run(mean), model.decode(mean).sample)
        for chain, start in ((decoder, mean), (encoder, x)):
            for position, stride in zip(chain.levels, chain.strides):
                assert chain.run(start, 0, position).shape[-2:] == (32 // stride, 48 // stride), chain.names()
    # the decoder's last level is full resolution before the output layers
    assert decoder.names()[-1].startswith(("decoder.up_blocks.3", "decoder.layers."))
    assert len(decoder.pieces) - decoder.levels[-1] == (3 if vae.family_of(model) == "kl" else 2)


def test_a_zero_flow_at_any_level_gives_the_plain_decode(model):
    latents = _latents(model)
    same = np.repeat(latents[:, :1], 3, axis=1)  # latent1 = latent3: the blend of unmoved features is the features
    zero = tuple(torch.zeros(1, k, 32, 48) for k in (2, 2, 1, 1))
    warps = DecoderWarps(model, 4, "auto", (32, 48))
    frames = warps.frames(same, {"estimated": zero})
    plain = encode.decode_latents(model, latents[:, 0], torch.device("cpu"), 4)
    assert sorted(level for _, level in frames) == [0, 1, 2, 3]
    for level in range(4):  # equal to float precision (grid_sample's coordinates), so to a grey level at most
        difference = np.abs(frames["estimated", level].astype(int) - plain)
        assert difference.max() <= 1 and difference.mean() < 0.01, level


def test_warping_before_the_first_layers_is_latent_flow(model):
    """LATENT: the warp of latent_flow itself (the latent grid's flows and weights, the still cells' lerp), decoded:
    equal to float precision (the ends decode as one batch here), so to a grey level at most."""
    latents = _latents(model, 18, 32)  # padded to 24 x 32 by the VAE: the grids' edges are the pad's
    motion = _motion(18, 32, still=True)
    warps = DecoderWarps(model, 4, "auto", (18, 32))
    frames = warps.frames(latents, {"estimated": motion}, points=[LATENT])["estimated", LATENT]
    moved = warp.warp_blend(*(torch.from_numpy(latents[:, k]) for k in (0, 2)), *warp.motion_to_latent_grid(motion, 8))
    latent_flow = encode.decode_latents(model, moved.numpy(), torch.device("cpu"), 4, "auto", (18, 32))
    assert np.abs(frames.astype(int) - latent_flow).max() <= 1 and (frames == latent_flow).mean() > 0.99


def test_warping_after_the_last_layers_is_recon_flows_warp(model):
    """OUTPUT: the reconstructions of frames 1 and 3 warped like pixel_flow. recon_flow warps them as stored, uint8;
    here they are warped before that rounding, so the two agree to one grey level."""
    latents = _latents(model)
    motion = _motion(32, 48, seed=1)
    warps = DecoderWarps(model, 4, "auto", (32, 48))
    frames = warps.frames(latents, {"estimated": motion}, points=[OUTPUT])["estimated", OUTPUT]
    recon = encode.decode_latents(model, latents[0, [0, 2]], torch.device("cpu"), 4)
    ends = [torch.from_numpy(np.moveaxis(recon[k], -1, 0)[None].astype(np.float32) / 255) for k in (0, 1)]
    warped = warp.warp_blend(*ends, *motion).clamp(0, 1)
    recon_flow = np.rint(np.moveaxis(warped.numpy(), 1, -1) * 255).astype(np.uint8)
    assert np.abs(frames.astype(int) - recon_flow).max() <= 1


def test_motion_on_a_padded_grid_keeps_its_edge_values():
    motion = _motion(18, 32)
    grid = motion_on_grid(motion, 4, (6, 8))  # 18 rows -> ceil(18 / 4) = 5 cells, the pad's sixth repeats the fifth
    assert grid[0].shape[-2:] == (6, 8) and torch.equal(grid[0][..., 5, :], grid[0][..., 4, :])
    assert torch.equal(grid[0][..., :5, :], warp.motion_to_latent_grid(motion, 4)[0])
    with pytest.raises(ValueError, match="larger than a decoder grid"):
        motion_on_grid(motion, 4, (4, 8))


def test_the_registry_names_every_level_and_its_oracle():
    names = [name for name in REGISTRY if decoder_level(name) is not None]
    assert names == [f"decoder_flow@{k}" for k in range(4)] + [f"decoder_flow_oracle@{k}" for k in range(4)]
    assert all(REGISTRY[f"decoder_flow_oracle@{k}"].sees_frame2 for k in range(4))
    assert not any(REGISTRY[f"decoder_flow@{k}"].sees_frame2 for k in range(4))
    assert "decoder_flow@3" not in active_methods({}, True, decoder_levels=3)
    assert not [m for m in active_methods({}, False) if decoder_level(m) is not None]  # no flow store: none
