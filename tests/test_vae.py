import json
import os
import shutil

import pytest
import torch

from latent_interp import vae
from conftest import MICRO_VAE, REPO


def test_load_vae_reads_a_diffusers_folder(micro_vae_dir):
    model, record = vae.load_vae(micro_vae_dir)
    assert not model.training
    assert record["format"] == "diffusers" and record["source"] == str(micro_vae_dir)
    assert record["scaling_factor"] == pytest.approx(0.18215)
    assert record["config"]["block_out_channels"] == list(MICRO_VAE["block_out_channels"])
    assert len(record["sha256"]) == 64 and record["sha256"] == vae.folder_digest(micro_vae_dir)


def test_missing_folder_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="config key vaes.main = .*nothing-here"):
        vae.load_vae(tmp_path / "nothing-here", key="vaes.main")
    (tmp_path / "no-config").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        vae.source_format(tmp_path / "no-config")  # what the workflow checks before any job runs


def test_tiny_config_has_kl_f8_geometry():
    model = vae.build_vae(**MICRO_VAE)
    latents = model.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)  # 8x downsampling, 4 latent channels


def test_digest_changes_with_the_weights(micro_vae_dir, tmp_path):
    model, _ = vae.load_vae(micro_vae_dir)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(tmp_path)
    assert vae.folder_digest(tmp_path) != vae.folder_digest(micro_vae_dir)


def test_device_choice():
    assert vae.pick_device("cpu").type == "cpu"
    assert vae.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="vae.device"):
            vae.pick_device("cuda")


def test_shipped_tiny_vaes_load_with_the_same_path():
    for folder, family in (("tiny-vae", "AutoencoderKL"), ("tiny-taesd", "AutoencoderTiny")):
        model, record = vae.load_vae(REPO / "models" / folder)
        assert record["family"] == family and record["latent_channels"] == 4 and record["downsampling"] == 8
        assert sum(p.numel() for p in model.parameters()) < 2_000_000  # "a few MB at most"
        training = json.loads((REPO / "models" / folder / "training.json").read_text())
        assert training["trained_by"] == "tools/train_tiny_vae.py"  # its training record ships beside it
        assert (REPO / "models" / folder / "training_log.csv").is_file()


def test_prepare_torch_never_asks_for_more_threads_than_cpus():
    available = len(os.sched_getaffinity(0))
    vae.prepare_torch(available + 8)
    assert torch.get_num_threads() == available
    vae.prepare_torch(1)
    assert torch.get_num_threads() == 1


def test_digest_ignores_provenance_beside_the_weights(micro_vae_dir, tmp_path):
    """A resumed fine-tune records its resume in finetune.json; its weights are the same model."""
    shutil.copytree(micro_vae_dir, tmp_path / "model")
    (tmp_path / "model" / "finetune.json").write_text('{"resumed_at_steps": [2]}')
    assert vae.folder_digest(tmp_path / "model") == vae.folder_digest(micro_vae_dir)
