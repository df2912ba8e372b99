"""A VAE entry accepts a diffusers folder, a latent-diffusion single file (.safetensors or .ckpt) and a hub id;
the three local forms of the same weights give identical latents, and a pickle that would run code is refused."""

import os
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from latent_interp import encode, store, vae
from latent_interp.settings import VaeRun
from conftest import MICRO_VAE, ingest_folder
from ldm_layout import to_ldm_layout

# kl-f8 has a mid-block attention; the micro model keeps it so the attention keys' conversion is exercised.
MICRO_WITH_ATTENTION = {**MICRO_VAE, "mid_block_add_attention": True}


class _Malicious:
    """Unpickling this calls builtins.exec: the attack a .ckpt can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _lightning_stand_in():
    """A class pickled under pytorch_lightning's name, as kl-f8-anime2.ckpt's ModelCheckpoint is; the module is
    removed again so loading cannot import it."""
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self):
            self.best_model_path = "logs/last.ckpt"
            self.monitor = "val/rec_loss"

    ModelCheckpoint.__module__ = module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    return module, ModelCheckpoint


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    """The same weights as a diffusers folder, an LDM-layout .safetensors and an LDM-layout .ckpt."""
    root = tmp_path_factory.mktemp("forms")
    torch.manual_seed(1)
    model = vae.build_vae(**MICRO_WITH_ATTENTION)
    model.save_pretrained(root / "diffusers")
    ldm = to_ldm_layout(model)
    save_file(ldm, root / "vae.safetensors")
    module, checkpoint_class = _lightning_stand_in()
    packages = ("pytorch_lightning", "pytorch_lightning.callbacks")
    sys.modules.update({name: types.ModuleType(name) for name in packages} | {module.__name__: module})
    try:
        torch.save({"state_dict": ldm, "epoch": 7, "global_step": 1234, "pytorch-lightning_version": "1.4.2",
                    "callbacks": {checkpoint_class: {"best_model_score": torch.tensor(0.1)}},
                    "loops": checkpoint_class()}, root / "vae.ckpt")
    finally:
        for name in (*packages, module.__name__):
            del sys.modules[name]
    return root


def _latents(source, config_dir, frames):
    model, record = vae.load_vae(source, config=config_dir)
    mean, _ = encode.encode_frames(model, frames, torch.device("cpu"), batch_size=4)
    return mean, record


def test_three_forms_give_identical_latents(forms):
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    config_dir = forms / "diffusers"
    reference, folder_record = _latents(forms / "diffusers", None, frames)
    for name, form in (("vae.safetensors", "safetensors"), ("vae.ckpt", "ckpt")):
        latents, record = _latents(forms / name, config_dir, frames)
        np.testing.assert_array_equal(latents, reference)
        assert record["format"] == form and record["sha256"] == vae.file_digest(forms / name)
        assert record["single_file_config"] == str(config_dir)
    assert folder_record["format"] == "diffusers"


def test_ckpt_tensors_load_and_the_lightning_object_is_skipped(forms):
    tensors = vae.checkpoint_state_dict(forms / "vae.ckpt")
    assert "encoder.mid.attn_1.q.weight" in tensors and tensors["encoder.mid.attn_1.q.weight"].ndim == 4
    assert "pytorch_lightning" not in sys.modules  # nothing of it was imported
    with pytest.raises(Exception):  # the plain weights-only loader refuses the same file
        torch.load(forms / "vae.ckpt", weights_only=True)


def test_a_ckpt_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Malicious(str(marker))}, tmp_path / "evil.ckpt")
    with pytest.raises(vae.UnsafeCheckpointError, match="builtins.exec"):
        vae.checkpoint_state_dict(tmp_path / "evil.ckpt")
    with pytest.raises(vae.UnsafeCheckpointError):
        vae.load_vae(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_single_file_default_config_is_kl_f8():
    config = vae.autoencoder_class().load_config(vae.KL_F8_CONFIG)
    assert config["block_out_channels"] == [128, 256, 512, 512] and config["layers_per_block"] == 2
    assert config["scaling_factor"] == pytest.approx(0.18215) and config["latent_channels"] == 4


def test_latents_store_records_the_source(forms, frame_tree, tmp_path):
    frames_path = tmp_path / "frames.zarr"
    ingest_folder(frame_tree / "val", frames_path, "val", size=32)
    out = tmp_path / "latents.zarr"
    encode.encode_split(frames=frames_path, latents=out, split="val",
                        vae_run=VaeRun(forms / "vae.ckpt", options={"config": forms / "diffusers"}))
    record = store.open_store(out, "latents").attrs["vae"]
    assert record["format"] == "ckpt" and record["source"] == str(forms / "vae.ckpt")
    assert record["sha256"] == vae.file_digest(forms / "vae.ckpt") and record["scaling_factor"] == 0.18215


def test_hub_id_offline_says_how_to_supply_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="copy them here and set vaes.anime"):
        vae.load_vae("bullhug/kl-f8-anime2", key="vaes.anime")


def test_unknown_source_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="config key vaes.anime = .*missing.ckpt"):
        vae.source_format(tmp_path / "missing.ckpt", "vaes.anime")
    assert vae.source_format("bullhug/kl-f8-anime2") == "hub"
    assert os.path.isdir(vae.KL_F8_CONFIG)
