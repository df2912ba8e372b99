"""The fine-tune's recipes and how the ``finetune`` config block selects and overrides one (``latent_interp.finetune``
explains them). Free of torch, so the Snakefile reads them when it builds the DAG without the cost of importing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    trainable: str  # "decoder" (decoder and post_quant_conv; the latent space stays) or "all"
    kl_weight: float
    kl_normalization: str  # "pixels": KL per image / pixels per image (latent diffusion's ratio); "none": the seed's
    optimizer: str  # "adamw" or "adam"
    lr: float
    weight_decay: float
    warmup_steps: int  # linear warm-up from 0, then constant
    grad_clip: float | None  # max global gradient norm; None: no clipping
    ema_decay: float | None  # None: no EMA, the trained weights themselves are saved
    batch_size: int
    epochs: int
    crop: int | None  # train on random crops of this size (the VAE is fully convolutional); None: whole frames


RECIPES = {
    # Crops of 128 px: four times the steps per second of whole 256 px frames on the CPU, and random crop positions
    # augment a small train set. The EMA warms up (see ema_decay_at), so short runs still move it.
    "default": Recipe(trainable="decoder", kl_weight=1e-6, kl_normalization="pixels", optimizer="adamw", lr=1e-4,
                      weight_decay=0.01, warmup_steps=20, grad_clip=1.0, ema_decay=0.999, batch_size=8, epochs=10,
                      crop=128),
    "seed": Recipe(trainable="all", kl_weight=1.0, kl_normalization="none", optimizer="adam", lr=1e-4,
                   weight_decay=0.0, warmup_steps=0, grad_clip=None, ema_decay=None, batch_size=8, epochs=10,
                   crop=None),
}
RUN_KEYS = ("recipe", "enabled", "vae", "seed", "checkpoint_every")  # finetune.* config keys that are not Recipe fields
# Settings a checkpoint may differ in and still be resumed.
RESUMABLE_CHANGES = {"epochs"}


def recipe_from_config(finetune_config: dict) -> tuple[str, Recipe, dict]:
    """(recipe name, the recipe with the config's overrides applied, the overrides) from the ``finetune`` block."""
    name = finetune_config.get("recipe", "default")
    if name not in RECIPES:
        raise ValueError(f"config key finetune.recipe = {name!r}: choose one of {sorted(RECIPES)}")
    overrides = {key: value for key, value in finetune_config.items() if key not in RUN_KEYS}
    unknown = set(overrides) - {field.name for field in dataclasses.fields(Recipe)}
    if unknown:
        raise ValueError(f"config keys finetune.{', finetune.'.join(sorted(unknown))} are not recipe settings")
    return name, dataclasses.replace(RECIPES[name], **overrides), overrides
