"""The anti-aliased encoder (latent_interp.antialias, recipe antialias): the filter, its effect on a toy encoder's
layer errors, the model saved and loaded as a diffusers folder, and the recipe's training."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file
from scipy import ndimage

from latent_interp import antialias, encode, equivariance, finetune, levels, recipes, vae
from latent_interp.latent_transforms import sample_subcell_shift
from latent_interp.settings import VaeRun
from conftest import ANTIALIAS, REPO
from test_finetune import stores  # noqa: F401 (the frames stores fixture: 12 train frames, 9 val frames at 32 px)

WEIGHTS = "diffusion_pytorch_model.safetensors"


def test_the_binomial_filter_sums_to_one_and_keeps_a_flat_picture():
    assert antialias.binomial_kernel(3).mul(16).round().tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    flat = torch.full((1, 2, 9, 9), 0.3)
    for size in (2, 3, 4):
        assert torch.allclose(antialias.Blur(size)(flat), flat) and antialias.Blur(size)(flat).shape == flat.shape


def _toy_chain(blur: int) -> levels.Chain:
    """Three 2x2 convolutions of stride 2 (f = 8), optionally each behind a binomial filter: every cell sees its own
    patch, so a shift by whole cells of every level is exact."""
    torch.manual_seed(0)
    pieces = []
    for i, channels in enumerate((3, 6, 6)):
        conv = torch.nn.Conv2d(channels, 6, 2, stride=2)
        run = torch.nn.Sequential(antialias.Blur(blur), conv) if blur else conv
        pieces.append(levels.Piece(f"conv{i}", run, 2.0))
    levels_at, strides = levels._resampling(pieces, 1, len(pieces))
    return levels.Chain("encoder", tuple(pieces), levels_at, strides)


def test_a_toy_encoder_is_exact_at_whole_cells_and_a_blur_lowers_its_sub_cell_error():
    """Zhang's finding on a toy: a stride-f encoder with kernel f has no layer error at shifts of f px; at sub-cell
    shifts it aliases, and a binomial filter before each stride lowers that error at the latent."""
    rng = np.random.default_rng(0)
    # smooth drawings (noise low-passed), as frames of animation are: content a stride can alias
    frames = np.stack([np.clip(ndimage.gaussian_filter(rng.normal(128, 120, (64, 64, 3)), (1.2, 1.2, 0)), 0, 255)
                       for _ in range(4)]).astype(np.uint8)
    plain = equivariance.layer_errors((_toy_chain(0),), frames, 8, torch.device("cpu"), 4)
    blurred = equivariance.layer_errors((_toy_chain(3),), frames, 8, torch.device("cpu"), 4)
    whole = plain[plain["shift_px"] == 8]
    assert len(whole) == 2 * 4 and (whole["error"] < 1e-10).all()  # strides 1, 2, 4, 8 at 8 px: whole cells
    latent = {name: table[(table["stride"] == 8) & (table["shift_px"] < 8)].groupby("shift_px")["error"].mean()
              for name, table in (("plain", plain), ("blurred", blurred))}
    assert (latent["plain"] > 0.01).all() and (latent["blurred"] < latent["plain"]).all(), latent


@pytest.mark.parametrize("family", ["kl", "tiny"])
def test_an_anti_aliased_model_saves_and_loads_as_a_diffusers_folder_with_equal_latents(family, tmp_path):
    torch.manual_seed(0)
    model = antialias.antialias_encoder(vae.build_vae(family).eval(), 3)
    assert antialias.blur_size(model) == 3 and len(antialias.strided_downsamplings(model)) == 3
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    before, _ = encode.encode_frames(model, frames, torch.device("cpu"), 2)
    plain, _ = encode.encode_frames(vae.build_vae(family).eval().requires_grad_(False), frames, torch.device("cpu"), 2)
    model.save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())[antialias.CONFIG_KEY]["blur"] == 3
    loaded, record = vae.load_vae(tmp_path / "model")
    after, _ = encode.encode_frames(loaded, frames, torch.device("cpu"), 2)
    assert antialias.blur_size(loaded) == 3 and np.array_equal(before, after)
    assert not np.allclose(before, plain, atol=1e-3)  # the filter is in the encoder's path
    # same weights, other latents: the latent space's record tells them apart
    torch.manual_seed(0)
    assert record["encoder_sha256"] != vae.encoder_digest(vae.build_vae(family))
    with pytest.raises(ValueError, match="already anti-aliased"):
        antialias.antialias_encoder(loaded, 3)


def test_a_sub_cell_shift_is_a_fraction_of_a_cell_on_each_axis():
    for seed in range(20):
        shift = sample_subcell_shift(8, np.random.default_rng(seed))
        assert all(0 < abs(cells) < 1 and (abs(cells) * 8).is_integer() for cells in shift.shift_cells)


def test_the_antialias_recipe_trains_a_filtered_encoder_with_its_shift_term(stores, micro_vae_dir, tmp_path):
    config = {"vae": "micro", "recipe": "antialias", "seed": 0, "checkpoint_every": 100, "crop": None,
              "batch_size": 4, "epochs": 1, "warmup_steps": 1, "lr": 1e-3}
    record = finetune.finetune(inputs=finetune.FinetuneInputs(*stores[:2]), model_dir=tmp_path / "model",
                               checkpoint=tmp_path / "last.pt", base=VaeRun(micro_vae_dir, batch_size=8, device="cpu"),
                               settings=config, finetune="micro-antialias")
    assert record["purpose"] == recipes.PURPOSES["antialias"]
    before, after = load_file(micro_vae_dir / WEIGHTS), load_file(tmp_path / "model" / WEIGHTS)
    assert set(before) == set(after)  # the filter adds no weight
    changed = {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}
    assert {"encoder", "decoder", "quant_conv", "post_quant_conv"} <= changed
    steps = pd.read_csv(tmp_path / "model" / "training_steps.csv")
    assert (steps["encoder_shift_mse"] > 0).all() and steps["encoder_shift"].str.startswith("shift").all()
    weight = recipes.RECIPES["antialias"].encoder_shift_weight
    parts = steps["reconstruction_mse"] + steps["kl_term"] + weight * steps["encoder_shift_mse"]
    assert np.allclose(steps["loss"], parts, rtol=1e-4)
    loaded, _ = vae.load_vae(tmp_path / "model")
    assert antialias.blur_size(loaded) == recipes.RECIPES["antialias"].blur


def test_the_encoder_setting_trains_the_encoder_alone(stores, micro_vae_dir, tmp_path):
    config = {"vae": "micro", "recipe": "antialias", "trainable": "encoder", "seed": 0, "checkpoint_every": 100,
              "crop": None, "batch_size": 6, "epochs": 1, "warmup_steps": 1, "lr": 1e-3, "ema_decay": None}
    finetune.finetune(inputs=finetune.FinetuneInputs(*stores[:2]), model_dir=tmp_path / "model",
                      checkpoint=tmp_path / "last.pt", base=VaeRun(micro_vae_dir, batch_size=8, device="cpu"),
                      settings=config, finetune="micro-antialias-encoder")
    before, after = load_file(micro_vae_dir / WEIGHTS), load_file(tmp_path / "model" / WEIGHTS)
    changed = {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}
    assert changed == {"encoder", "quant_conv"}


def test_the_demos_antialias_entry_trains_as_written(stores, micro_vae_dir, tmp_path):
    """config.yaml's entry, its overrides as written (the suite's tiny runs leave it out for their time), for one
    epoch of the micro VAE: the run records them and saves an anti-aliased model."""
    entry = yaml.safe_load((REPO / "config.yaml").read_text())["finetunes"][ANTIALIAS]
    settings = {**entry, "vae": "micro", "epochs": 1, "seed": 0, "checkpoint_every": 100}
    record = finetune.finetune(inputs=finetune.FinetuneInputs(*stores[:2]), model_dir=tmp_path / "model",
                               checkpoint=tmp_path / "last.pt", base=VaeRun(micro_vae_dir, batch_size=8, device="cpu"),
                               settings=settings, finetune=ANTIALIAS)
    assert record["recipe"] == "antialias"
    assert record["overrides"] == {key: value for key, value in settings.items() if key not in recipes.RUN_KEYS}
    steps = pd.read_csv(tmp_path / "model" / "training_steps.csv")
    # the entry's rate, warmed up over its steps (12 frames in batches of 8: two steps, both within the warm-up)
    assert np.allclose(steps["lr"], [entry["lr"] * step / entry["warmup_steps"] for step in steps["step"]])
    assert (steps["encoder_shift_mse"] > 0).all() and np.isfinite(steps["loss"]).all()
    assert antialias.blur_size(vae.load_vae(tmp_path / "model")[0]) == recipes.RECIPES["antialias"].blur
