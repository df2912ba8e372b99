import csv
import dataclasses
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from latent_interp import tinyvae, vae
from conftest import REPO

# Constant learning rate (no warm-up, no decay): a run cut at step 2 and resumed follows the same schedule.
TINY = tinyvae.TrainConfig(steps=4, batch_size=2, crop=16, lr=1e-3, warmup_steps=0, min_lr_ratio=1.0,
                           train_triplets=3, val_triplets=1, size=32, raw_width=64, raw_height=36, eval_every=2,
                           checkpoint_every=2, threads=1)


def _weights(folder):
    return load_file(folder / "diffusion_pytorch_model.safetensors")


def test_learning_rate_warms_up_then_decays():
    cfg = tinyvae.TrainConfig(steps=1000, lr=1.0, warmup_steps=100, min_lr_ratio=0.1)
    assert tinyvae.learning_rate(0, cfg) == pytest.approx(0.01)
    assert tinyvae.learning_rate(99, cfg) == pytest.approx(1.0)
    assert tinyvae.learning_rate(1000, cfg) == pytest.approx(0.1)
    assert tinyvae.learning_rate(550, cfg) == pytest.approx(0.55)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    tinyvae.train(tmp_path / "straight", tmp_path / "straight.pt", TINY)
    tinyvae.train(tmp_path / "cut", tmp_path / "cut.pt", dataclasses.replace(TINY, steps=2))
    assert torch.load(tmp_path / "cut.pt", weights_only=False)["step"] == 2
    tinyvae.train(tmp_path / "cut", tmp_path / "cut.pt", TINY)  # resumes at step 2
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "cut")
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)
    with open(tmp_path / "cut" / "training_log.csv") as log:
        assert [row["step"] for row in csv.DictReader(log)] == ["2", "4"]


def test_saved_model_loads_through_the_workflow_loader(tmp_path):
    tinyvae.train(tmp_path / "m", tmp_path / "m.pt", dataclasses.replace(TINY, steps=2))
    model, record = vae.load_vae(tmp_path / "m")
    assert record["config"]["block_out_channels"] == list(vae.TINY_VAE_CONFIG["block_out_channels"])
    assert (tmp_path / "m" / "training.json").is_file()


@pytest.mark.readme("python tools/train_tiny_vae.py",
                    "python tools/train_tiny_vae.py --family tiny --teacher models/tiny-vae --out models/tiny-taesd "
                    "--steps 6000 --batch-size 8 --lr 0.001 --threads 1")
def test_the_command_line_tool_trains_both_families(tmp_path):
    """docs/data.md's two commands at a few steps: the AutoencoderKL, then an AutoencoderTiny distilled from it."""
    tiny = ["--batch-size", "2", "--crop", "16", "--warmup-steps", "0", "--train-triplets", "3", "--val-triplets",
            "1", "--size", "32", "--raw-width", "64", "--raw-height", "36", "--eval-every", "2", "--threads", "1"]
    tool = [sys.executable, str(REPO / "tools" / "train_tiny_vae.py")]
    for arguments in (["--out", str(tmp_path / "kl"), "--checkpoint", str(tmp_path / "kl.pt"), "--steps", "2"],
                      ["--family", "tiny", "--teacher", str(tmp_path / "kl"), "--out", str(tmp_path / "taesd"),
                       "--checkpoint", str(tmp_path / "taesd.pt"), "--steps", "2", "--lr", "0.001"]):
        result = subprocess.run([*tool, *arguments, *tiny], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    assert vae.load_vae(tmp_path / "kl")[1]["family"] == "AutoencoderKL"
    assert vae.load_vae(tmp_path / "taesd")[1]["family"] == "AutoencoderTiny"
