"""Loading the VAE, choosing its device, and the tiny kl-f8-shaped architecture the demo ships.

Every model the workflow uses is a diffusers ``AutoencoderKL`` loaded with ``from_pretrained(<folder>)``: the tiny demo
VAE under ``models/tiny-vae`` and a local copy of kl-f8-anime2 take the same path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

# kl-f8 geometry: three 2x downsamplings (8x in all) and 4 latent channels. Widths are cut about 8x from kl-f8's
# (128, 256, 512, 512), one ResNet layer per block, and no mid-block attention, so the model trains on 2 CPU cores.
TINY_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(32, 64, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=256,
    mid_block_add_attention=False,
)


def build_vae(**overrides) -> AutoencoderKL:
    """A freshly initialised AutoencoderKL with the tiny config, any key overridden (tests shrink it further)."""
    return AutoencoderKL(**{**TINY_VAE_CONFIG, **overrides})


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config key vae.device asks for {requested!r}, but torch sees no CUDA device")
    return device


def folder_digest(folder: str | Path) -> str:
    """sha256 over the folder's config and weight files, so a store records exactly which weights made it."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.suffix in {".json", ".safetensors", ".bin"}:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def load_vae(source: str | Path, device: torch.device | str = "cpu") -> tuple[AutoencoderKL, dict]:
    """Load a diffusers ``save_pretrained`` folder; return the model in eval mode and its provenance record."""
    folder = Path(source)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"vae.pretrained = {str(source)!r}: no diffusers folder there (expected {folder / 'config.json'}). "
            "Point vae.pretrained at a folder written by AutoencoderKL.save_pretrained."
        )
    # low_cpu_mem_usage=False: the default asks for accelerate, which this project does not need.
    model = AutoencoderKL.from_pretrained(folder, torch_dtype=torch.float32, low_cpu_mem_usage=False)
    model.to(device).eval()
    provenance = {
        "source": str(source),
        "format": "diffusers",
        "sha256": folder_digest(folder),
        "scaling_factor": float(model.config.scaling_factor),
        "config": json.loads((folder / "config.json").read_text()),
    }
    return model, provenance
