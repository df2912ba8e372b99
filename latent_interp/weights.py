"""Where a VAE's weights are and in which form: what the Snakefile checks for each entry of ``vaes`` before any job
runs.
Free of torch and diffusers (``latent_interp.vae`` loads the weights), so building the DAG stays fast.
"""

from __future__ import annotations

import re
from pathlib import Path

WEIGHT_SUFFIXES = {".safetensors", ".bin"}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def source_format(source: str | Path, key: str = "vae") -> str:
    """How a VAE stores its weights: ``diffusers`` folder, ``safetensors`` or ``ckpt`` single file (latent
    diffusion's or TAESD's key layout), or a ``hub`` id. ``key`` names the config entry in error messages."""
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"config key {key} = {str(source)!r}: no diffusers folder there (expected {path / 'config.json'}). "
                f"Point {key} at a folder written by save_pretrained, or at a single .safetensors/.ckpt file."
            )
        return "diffusers"
    if path.is_file() and path.suffix == ".safetensors":
        return "safetensors"
    if path.is_file() and path.suffix in {".ckpt", ".pt", ".pth"}:
        return "ckpt"
    if not path.exists() and HUB_ID.match(str(source)):
        return "hub"
    raise FileNotFoundError(
        f"config key {key} = {str(source)!r}: no such folder or file. Give a diffusers folder (config.json + "
        "weights), a single file (.safetensors or .ckpt), or a hub id such as bullhug/kl-f8-anime2."
    )


def is_model_file(path: Path) -> bool:
    """A diffusers folder's ``config.json`` or weights: what defines the model. Provenance beside them
    (``finetune.json``, ``training.json``) does not: a resumed fine-tune records its resume there."""
    return path.suffix in WEIGHT_SUFFIXES or path.name == "config.json"


def weight_files(source: str | Path, key: str = "vae") -> list[str]:
    """The files a VAE is loaded from (a diffusers folder's config and weights, or the single file; none for a hub
    id), so that new weights make everything encoded with them stale."""
    form = source_format(source, key)
    if form == "diffusers":
        return sorted(str(p) for p in Path(source).iterdir() if is_model_file(p))
    return [str(source)] if form != "hub" else []
