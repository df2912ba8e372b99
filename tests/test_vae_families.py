"""The loading matrix: every family (AutoencoderKL with 4 and with 16 latent channels, AutoencoderTiny) in every form
(diffusers folder, single .safetensors, pickled .ckpt, hub id from an offline cache) loads to the same weights, and
the stores record what each family is; two stores of different latent spaces refuse to meet."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from latent_interp import encode, store, vae
from latent_interp.settings import VaeRun
from conftest import MICRO_VAE, ingest_folder
from ldm_layout import to_ldm_layout

MICRO_TINY = dict(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                  num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
# SD3 and FLUX: 16 channels, no quant convs, a shift factor (latent_interp/configs/sd3, flux)
MICRO_KL16 = {**MICRO_VAE, "latent_channels": 16, "use_quant_conv": False, "use_post_quant_conv": False,
              "scaling_factor": 1.5305, "shift_factor": 0.0609, "mid_block_add_attention": True}
FAMILIES = {
    "kl4": ("kl", {**MICRO_VAE, "mid_block_add_attention": True}),
    "kl16": ("kl", MICRO_KL16),
    "tiny": ("tiny", MICRO_TINY),
}
FORMS = ("diffusers", "safetensors", "ckpt", "hub")
HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"


def to_taesd_layout(model) -> dict[str, torch.Tensor]:
    """An AutoencoderTiny's weights in the original TAESD module's keys (the inverse of ``vae.tiny_state_dict``):
    ``encoder.N.*`` as in diffusers without ``layers.``, the decoder one later (its Clamp is layer 0 there)."""
    state = {}
    for name, tensor in model.state_dict().items():
        part, _, rest = name.partition(".layers.")
        index, _, inner = rest.partition(".")
        state[f"{part}.{int(index) + (1 if part == 'decoder' else 0)}.{inner}"] = tensor.detach().clone()
    return state


def write_form(model, family: str, form: str, root, hub_name: str = "micro") -> tuple[str, dict]:
    """Write ``model`` in ``form`` under ``root``; return the source and load_vae's options for it (a hub form as
    the repository latent-interp/``hub_name``)."""
    folder = root / "diffusers"
    model.save_pretrained(folder)
    if form == "diffusers":
        return str(folder), {}
    tensors = to_ldm_layout(model) if family == "kl" else to_taesd_layout(model)
    if form == "safetensors":
        save_file({k: v.contiguous() for k, v in tensors.items()}, root / "vae.safetensors")
        return str(root / "vae.safetensors"), {"config": str(folder)}
    if form == "ckpt":
        torch.save({"state_dict": tensors, "global_step": 7}, root / "vae.ckpt")
        return str(root / "vae.ckpt"), {"config": str(folder)}
    # hub: the layout huggingface_hub's cache uses, read offline (HF_HUB_CACHE, HF_HUB_OFFLINE set by the loader)
    repository = root / "hub" / f"models--latent-interp--{hub_name}"
    snapshot = repository / "snapshots" / HUB_REVISION
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(HUB_REVISION)
    return f"latent-interp/{hub_name}", {}


def reference_model(name: str):
    family, config = FAMILIES[name]
    torch.manual_seed(3)
    return vae.build_vae(family, **config).eval()


@pytest.fixture(scope="module")
def offline_hub_loads(tmp_path_factory) -> dict:
    """load_vae(hub id) of every family, in one fresh process whose huggingface_hub reads an offline cache (it reads
    HF_HUB_CACHE when imported): one process for the three, since importing diffusers is most of the time. The
    loaded weights and records come back through files."""
    root = tmp_path_factory.mktemp("hub")
    hub_ids = {}
    for name, (family, _) in FAMILIES.items():
        (root / name).mkdir()
        hub_ids[name] = write_form(reference_model(name), family, "hub", root / name, f"micro-{name}")[0]
        shutil.copytree(root / name / "hub", root / "hub", dirs_exist_ok=True)
    script = ("import json, sys; from safetensors.torch import save_file; from latent_interp import vae\n"
              "for hub_id, out in zip(sys.argv[1::2], sys.argv[2::2]):\n"
              "    model, record = vae.load_vae(hub_id)\n"
              "    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out + '.safetensors')\n"
              "    open(out + '.json', 'w').write(json.dumps(record))")
    env = {**os.environ, "HF_HUB_CACHE": str(root / "hub"), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", script, *(part for name, hub_id in hub_ids.items()
                                                    for part in (hub_id, str(root / f"{name}-loaded")))],
                   env=env, check=True)
    loads = {}
    for name, (family, config) in FAMILIES.items():
        model = vae.build_vae(family, **config)
        model.load_state_dict(load_file(root / f"{name}-loaded.safetensors"))
        loads[name] = model.eval(), json.loads((root / f"{name}-loaded.json").read_text())
    return loads


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_loads_from_every_form(name, form, tmp_path, request):
    family, config = FAMILIES[name]
    reference = reference_model(name)
    if form == "hub":
        model, record = request.getfixturevalue("offline_hub_loads")[name]
    else:
        source, options = write_form(reference, family, form, tmp_path)
        model, record = vae.load_vae(source, **options, key=f"vaes.{name}")
    assert record["format"] == form
    assert record["family"] == type(reference).__name__ and vae.family_of(model) == family
    assert record["latent_channels"] == config.get("latent_channels", 4) and record["downsampling"] == 8
    assert record["posterior"] == ("deterministic" if family == "tiny" else "gaussian")
    assert record["scaling_factor"] == pytest.approx(config.get("scaling_factor", reference.config.scaling_factor))
    assert record["shift_factor"] == pytest.approx(config.get("shift_factor") or 0.0)
    loaded, expected = model.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys()
    for key, tensor in expected.items():  # the same weights (LDM attention convs become linear layers: reshape)
        torch.testing.assert_close(loaded[key].reshape(tensor.shape), tensor, rtol=0, atol=0)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    latents, logvar = encode.encode_frames(model, frames, torch.device("cpu"), 2)
    assert latents.shape == (2, config.get("latent_channels", 4), 4, 4)
    assert (logvar is None) == (family == "tiny")


def test_the_shipped_architecture_configs_load_by_name():
    for name, family, channels in (("kl-f8", "AutoencoderKL", 4), ("sdxl", "AutoencoderKL", 4),
                                   ("sd3", "AutoencoderKL", 16), ("flux", "AutoencoderKL", 16),
                                   ("taesd", "AutoencoderTiny", 4)):
        folder = vae.architecture_dir(name)
        config = vae.autoencoder_class().load_config(folder)
        assert config["_class_name"] == family and config["latent_channels"] == channels
    assert vae.autoencoder_class().load_config(vae.architecture_dir("flux"))["shift_factor"] == pytest.approx(0.1159)
    with pytest.raises(FileNotFoundError, match="vaes.x.config = 'nope'.*kl-f8"):
        vae.architecture_dir("nope", key="vaes.x")


def test_a_single_file_that_does_not_fit_its_architecture_names_the_file(tmp_path):
    torch.manual_seed(0)
    save_file(to_taesd_layout(vae.build_vae("tiny", **MICRO_TINY)), tmp_path / "taesd.safetensors")
    with pytest.raises(ValueError, match="vaes.t: .*taesd.safetensors does not fit the AutoencoderTiny"):
        vae.load_vae(tmp_path / "taesd.safetensors", config="taesd", key="vaes.t")  # full-width config


def test_scaling_overrides_are_applied_and_recorded(micro_vae_dir):
    model, record = vae.load_vae(micro_vae_dir, scaling_factor=0.5, shift_factor=0.25)
    assert model.config.scaling_factor == 0.5 and record["shift_factor"] == 0.25
    assert record["scaling_overridden"] == ["scaling_factor", "shift_factor"]


def test_deterministic_latents_are_stored_without_a_logvar(frame_tree, tmp_path):
    torch.manual_seed(0)
    vae.build_vae("tiny", **MICRO_TINY).save_pretrained(tmp_path / "tiny")
    frames = tmp_path / "frames.zarr"
    ingest_folder(frame_tree / "val", frames, "val", size=32)
    encode.encode_split(frames=frames, latents=tmp_path / "latents.zarr", split="val",
                        vae_run=VaeRun(tmp_path / "tiny"))
    group = store.open_store(tmp_path / "latents.zarr", "latents")
    assert store.LOGVAR not in group and group[store.MEAN].shape[2] == 4
    assert group.attrs["vae"]["posterior"] == "deterministic"
    assert "no logvar" in group.attrs["provenance"]["settings"]["latents"]
    encode.reconstruct_split(latents=tmp_path / "latents.zarr", recon=tmp_path / "recon.zarr", split="val",
                             vae_run=VaeRun(tmp_path / "tiny"))
    assert store.open_store(tmp_path / "recon.zarr", "recon")[store.FRAMES].shape[0] == 3


def test_latents_of_another_latent_space_are_refused(frame_tree, micro_vae_dir, tmp_path):
    torch.manual_seed(0)
    vae.build_vae("kl", **MICRO_KL16).save_pretrained(tmp_path / "kl16")
    frames = tmp_path / "frames.zarr"
    ingest_folder(frame_tree / "val", frames, "val", size=32)
    encode.encode_split(frames=frames, latents=tmp_path / "latents.zarr", split="val", vae_run=VaeRun(micro_vae_dir))
    with pytest.raises(ValueError, match="not in the same latent space: latent_channels 4 vs 16"):
        encode.reconstruct_split(latents=tmp_path / "latents.zarr", recon=tmp_path / "recon.zarr", split="val",
                                 vae_run=VaeRun(tmp_path / "kl16"))
    assert not os.path.exists(tmp_path / "recon.zarr")
