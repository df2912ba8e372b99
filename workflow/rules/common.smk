# Config validation, the names the rules share, and every input function.
from pathlib import Path

from snakemake.utils import validate

from latent_interp import data, synthetic

validate(config, "../schemas/config.schema.yaml")

SPLITS = config["data"]["splits"]
SYNTHETIC = config["data"].get("synthetic")
# {model} -> the diffusers folder its stores are encoded with.
MODELS = {"pretrained": config["vae"]["pretrained"]}
EMBED_METHODS = config["embed"]["methods"]
ENV = "../../envs/latent-interp.yaml"

if SYNTHETIC:
    _missing = [split for split in SPLITS if split not in SYNTHETIC["triplets"]]
    if _missing:
        raise ValueError(f"config key data.synthetic.triplets has no count for split(s) {_missing}")


def synthetic_frame_files(split):
    """The files that synthesize_<split> writes, known from the config alone before any job runs."""
    specs = synthetic.triplet_specs(SYNTHETIC["seed"], split, SYNTHETIC["triplets"][split])
    return [f"{config['data']['root']}/{split}/{path}" for path in synthetic.frame_relpaths(specs)]


def split_frame_files(wildcards):
    """Every frame file of a split (not its folder: editing one frame must make only that split stale)."""
    if SYNTHETIC:
        return synthetic_frame_files(wildcards.split)
    return data.split_frame_paths(Path(config["data"]["root"]) / wildcards.split)


def vae_files(wildcards):
    """The config and weight files of the model's diffusers folder, so new weights make its stores stale."""
    folder = Path(MODELS[wildcards.model])
    files = sorted(str(p) for p in folder.glob("*") if p.suffix in {".json", ".safetensors", ".bin"})
    if not (folder / "config.json").is_file():
        raise ValueError(f"config key vae.pretrained = {str(folder)!r}: no diffusers folder (config.json) there")
    return files


def all_of(pattern, **wildcards):
    """``pattern`` expanded over every model and split (or the given subset)."""
    return expand(pattern, **{"model": list(MODELS), "split": SPLITS, **wildcards})
