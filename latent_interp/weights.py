"""Where a VAE's weights are and in which form: what the Snakefile checks for each entry of ``vaes`` before any job
runs.
Free of torch and diffusers (``latent_interp.vae`` loads the weights), so building the DAG stays fast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

WEIGHT_SUFFIXES = {".safetensors", ".bin"}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
CONFIGS = Path(__file__).parent / "configs"  # architecture configs for single files, by name (vae.load_vae)
KL_F8_CONFIG = CONFIGS / "kl-f8"  # kl-f8-anime2's architecture, the default for single files


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


def downsampling(architecture) -> int:
    """Frame size / latent size of a VAE's config (a diffusers config mapping): one 2x step between consecutive
    blocks, in both families (AutoencoderTiny's config.json names its blocks encoder_block_out_channels; the loaded
    model's config also has block_out_channels)."""
    blocks = architecture.get("block_out_channels") or architecture["encoder_block_out_channels"]
    return 2 ** (len(blocks) - 1)


def architecture_dir(config: str | Path | None, key: str = "vae") -> Path:
    """The folder holding a single file's architecture config.json: a name in latent_interp/configs, or a folder."""
    if config is None:
        return KL_F8_CONFIG
    folder = CONFIGS / str(config) if (CONFIGS / str(config)).is_dir() else Path(config)
    if not (folder / "config.json").is_file():
        names = ", ".join(sorted(p.name for p in CONFIGS.iterdir() if (p / "config.json").is_file()))
        raise FileNotFoundError(f"config key {key}.config = {str(config)!r}: neither a built-in architecture ({names}) "
                                f"nor a folder holding a diffusers config.json")
    return folder


def entry_downsampling(entry: dict) -> int | None:
    """A ``vaes`` entry's downsampling from its config.json, before anything is loaded; None where it is only known
    once loaded (a hub id) or the entry is at fault (the Snakefile's checks of the sources say how)."""
    try:
        form = source_format(entry["source"])
        folder = (Path(entry["source"]) if form == "diffusers" else
                  architecture_dir(entry.get("config")) if form in ("safetensors", "ckpt") else None)
        return downsampling(json.loads((folder / "config.json").read_text())) if folder is not None else None
    except (OSError, ValueError, KeyError):  # FileNotFoundError is an OSError
        return None
