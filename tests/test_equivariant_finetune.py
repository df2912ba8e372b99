"""The equivariant fine-tune (recipe equivariant): its transforms, its loss, and that it trains both halves."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from latent_interp import finetune, recipes
from latent_interp.latent_transforms import Transform, sample_transform
from latent_interp.settings import VaeRun
from test_finetune import stores  # noqa: F401 (the frames stores fixture: 12 train frames, 9 val frames at 32 px)

WEIGHTS = "diffusion_pytorch_model.safetensors"


class PatchAutoencoder(torch.nn.Module):
    """A toy convolutional autoencoder: a convolution with kernel and stride f (each latent cell sees its own f x f
    patch) with an orthogonal weight, decoded by its transpose. It reconstructs exactly and commutes with shifts by
    whole cells. ``positional``: a fixed pattern added to the latent and removed by the decoder, which keeps the
    reconstruction exact but ties each cell to its place, so moving a latent no longer moves the picture."""

    def __init__(self, f: int = 4, positional: bool = False):
        super().__init__()
        self.f = f
        weight = torch.linalg.qr(torch.randn(3 * f * f, 3 * f * f, generator=torch.Generator().manual_seed(0)))[0]
        self.register_buffer("weight", weight.reshape(3 * f * f, 3, f, f))
        self.positional = positional

    def pattern(self, z):
        h, w = z.shape[-2:]
        return torch.linspace(0, 1, h)[:, None] * torch.linspace(1, 2, w)[None, :] if self.positional else 0

    def encode(self, x):
        return F.conv2d(x, self.weight, stride=self.f) + self.pattern(x[..., ::self.f, ::self.f])

    def decode(self, z):
        return SimpleNamespace(sample=F.conv_transpose2d(z - self.pattern(z), self.weight, stride=self.f))


def images(count=2, size=32, seed=0):
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("transform", [Transform(shift_cells=(1.0, -2.0)), Transform(quarter_turns=1),
                                       Transform(quarter_turns=3, shift_cells=(-1.0, 0.0))])
def test_a_transform_moves_a_latent_grid_as_it_moves_the_image(transform):
    """On a latent made by averaging each f x f patch, T(latent(x)) is latent(T(x)) for whole cells and quarter
    turns, exactly."""
    x = images()
    pooled = F.avg_pool2d(x, 4)
    torch.testing.assert_close(transform.latent(pooled), F.avg_pool2d(transform.image(x, 4), 4), rtol=0, atol=1e-6)
    fraction = Transform(shift_cells=(0.0, 0.5))
    assert (fraction.latent(pooled) - F.avg_pool2d(fraction.image(x, 4), 4)).abs().max() > 0.01  # bilinear: no


def test_fractional_shifts_and_scaling_give_grids_of_matching_sizes():
    x, z = images(size=64), torch.randn(2, 4, 16, 16)
    for transform in (Transform(scale=0.5), Transform(scale=0.3, quarter_turns=2, shift_cells=(0.25, -1.75))):
        assert transform.image(x, 4).shape[-2:] == tuple(4 * side for side in transform.latent(z).shape[-2:])
    half = Transform(shift_cells=(0.0, 0.5)).latent(z)
    torch.testing.assert_close(half, (z + torch.roll(z, 1, dims=-1)) / 2)  # half way between the two rolls


def test_the_equivariance_error_is_zero_for_an_equivariant_autoencoder_and_positive_otherwise():
    x = images()
    exact, positional = PatchAutoencoder(), PatchAutoencoder(positional=True)
    for transform in (Transform(), Transform(shift_cells=(1.0, 2.0)), Transform(shift_cells=(-2.0, 1.0))):
        assert finetune.equivariance_error(exact, exact.encode(x), x, transform, 4) < 1e-10
    assert finetune.equivariance_error(positional, positional.encode(x), x, Transform(), 4) < 1e-10  # it reconstructs
    assert finetune.equivariance_error(positional, positional.encode(x), x, Transform(shift_cells=(1.0, 0.0)), 4) > 0.01


def test_transforms_are_drawn_with_the_recipes_probabilities():
    recipe = recipes.RECIPES["equivariant"]
    assert sample_transform(recipes.RECIPES["default"], 8, np.random.default_rng(0)) == Transform()  # all p = 0
    drawn = [sample_transform(recipe, 8, np.random.default_rng([0, step, 2])) for step in range(400)]
    assert drawn[7] == sample_transform(recipe, 8, np.random.default_rng([0, 7, 2]))  # (seed, step) decides
    scaled = [t.scale for t in drawn if t.scale is not None]
    assert 0.15 < len(scaled) / len(drawn) < 0.35 and min(scaled) >= recipe.scale_min and max(scaled) < 1
    assert 0.15 < np.mean([t.quarter_turns != 0 for t in drawn]) < 0.35
    fractions = {round(abs(cells) % 1 * 8) for t in drawn for cells in t.shift_cells}
    assert fractions == set(range(8))  # whole cells and every k / 8 of a cell


def test_the_equivariant_recipe_trains_encoder_and_decoder(stores, micro_vae_dir, tmp_path):
    config = {"vae": "micro", "recipe": "equivariant", "seed": 0, "checkpoint_every": 100, "crop": None,
              "batch_size": 4, "epochs": 1, "warmup_steps": 1, "lr": 1e-3}
    record = finetune.finetune(inputs=finetune.FinetuneInputs(*stores[:2]), model_dir=tmp_path / "model",
                               checkpoint=tmp_path / "last.pt", base=VaeRun(micro_vae_dir, batch_size=8, device="cpu"),
                               settings=config, finetune="micro-equivariant")
    assert record["name"] == "micro-equivariant" and record["purpose"] == recipes.PURPOSES["equivariant"]
    before, after = load_file(micro_vae_dir / WEIGHTS), load_file(tmp_path / "model" / WEIGHTS)
    changed = {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}
    assert {"encoder", "decoder", "quant_conv", "post_quant_conv"} <= changed
    steps = pd.read_csv(tmp_path / "model" / "training_steps.csv")
    assert (steps["equivariance_mse"] > 0).all() and steps["transform"].notna().all()
    assert np.allclose(steps["loss"], steps["reconstruction_mse"] + steps["kl_term"] + steps["equivariance_mse"],
                       rtol=1e-4)
