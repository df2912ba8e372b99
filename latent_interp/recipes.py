"""The fine-tune's recipes and how an entry of the ``finetunes`` config mapping selects and overrides one
(``latent_interp.finetune`` explains the training, ``latent_interp.latent_transforms`` the equivariance term). Free of
torch, so the Snakefile reads them when it builds the DAG without the cost of importing it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    # "decoder" (decoder and post_quant_conv; the latent space stays), "encoder" (and quant_conv) or "all"
    trainable: str
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
    # The equivariance term (recipe equivariant): its weight against the reconstruction MSE (0: no term), and the
    # probability of each part of the random transform T drawn for a batch (latent_transforms.sample_transform).
    equivariance_weight: float = 0.0
    shift_whole_p: float = 0.0  # a translation by whole latent cells (1 to 2 cells, any sign, each axis)
    shift_fraction_p: float = 0.0  # a translation by a fraction of a cell (k / f, k a whole number of pixels)
    scale_p: float = 0.0  # a down-scaling by s drawn uniformly in [scale_min, 1) (EQ-VAE's)
    scale_min: float = 0.25
    rotate_p: float = 0.0  # a rotation by 90, 180 or 270 degrees (EQ-VAE's)
    # The anti-aliased encoder (recipe antialias): a binomial filter of ``blur`` taps before each strided downsampling
    # of the encoder (0: none; latent_interp.antialias), and the weight of the encoder-side term
    # ||E(shift_s(x)) - shift_{s/f}(E(x))||^2 / var(E(x)) for a sub-cell shift s of each batch (0: no term).
    blur: int = 0
    encoder_shift_weight: float = 0.0


RECIPES = {
    # Crops of 128 px: four times the steps per second of whole 256 px frames on the CPU, and random crop positions
    # augment a small train set. The EMA warms up (see ema_decay_at), so short runs still move it.
    "default": Recipe(trainable="decoder", kl_weight=1e-6, kl_normalization="pixels", optimizer="adamw", lr=1e-4,
                      weight_decay=0.01, warmup_steps=20, grad_clip=1.0, ema_decay=0.999, batch_size=8, epochs=10,
                      crop=128),
    "seed": Recipe(trainable="all", kl_weight=1.0, kl_normalization="none", optimizer="adam", lr=1e-4,
                   weight_decay=0.0, warmup_steps=0, grad_clip=None, ema_decay=None, batch_size=8, epochs=10,
                   crop=None),
    # EQ-VAE (Kouzelis et al., ICML 2025) with the translations the motion study needs: encoder and decoder train,
    # the default recipe's reconstruction and KL, plus ||decode(T(z)) - T(x)||^2 for a random T of each batch. EQ-VAE
    # scales and rotates; latent warping moves latents by whole and fractional cells, so those come first here.
    "equivariant": Recipe(trainable="all", kl_weight=1e-6, kl_normalization="pixels", optimizer="adamw", lr=1e-4,
                          weight_decay=0.01, warmup_steps=20, grad_clip=1.0, ema_decay=0.999, batch_size=8,
                          epochs=10, crop=128, equivariance_weight=1.0, shift_whole_p=0.5, shift_fraction_p=0.5,
                          scale_p=0.25, scale_min=0.25, rotate_p=0.25),
    # Zhang's BlurPool idea on the encoder side, where the equivariant recipe left sub-cell shifts as they were: the
    # filter keeps each stride from aliasing, the encoder-side term asks latents of a picture moved by part of a cell
    # to be its latent moved bilinearly by that part, and the decoder trains too, to read the smoother latents. The
    # filters alone take the tiny VAE's sub-cell error from 0.055 to 0.010 and its reconstruction down 5.8 dB; at a
    # term weight of 1 the term outweighed the reconstruction tenfold and held it there (24 steps at 1e-3: -4.0 dB,
    # against -2.5 at 0.1, with the sub-cell error 0.006 and 0.015), so the reconstruction leads and the term keeps
    # the gain.
    "antialias": Recipe(trainable="all", kl_weight=1e-6, kl_normalization="pixels", optimizer="adamw", lr=1e-4,
                        weight_decay=0.01, warmup_steps=20, grad_clip=1.0, ema_decay=0.999, batch_size=8, epochs=10,
                        crop=128, blur=3, encoder_shift_weight=0.1),
}
# What each recipe is for, in the report's words.
PURPOSES = {
    "default": "reconstruction: the decoder learns the data, the latent space stays as it was",
    "seed": "the seed study's recipe, reproduced to show its collapse",
    "equivariant": "latents that move with the picture: decoding a shifted, scaled or rotated latent gives the "
                   "shifted, scaled or rotated frame",
    "antialias": "an encoder whose latents move by fractions of a cell: a low-pass filter before each downsampling, "
                 "and latents of a picture moved by part of a cell held to its latent moved by that part",
}
RUN_KEYS = ("recipe", "vae", "seed", "checkpoint_every")  # keys of a finetunes entry that are not Recipe fields
# Settings a checkpoint may differ in and still be resumed.
RESUMABLE_CHANGES = {"epochs"}


def recipe_from_config(entry: dict, key: str = "finetunes") -> tuple[str, Recipe, dict]:
    """(recipe name, the recipe with the entry's overrides applied, the overrides) from one ``finetunes`` entry;
    ``key`` names the entry in errors."""
    name = entry.get("recipe", "default")
    if name not in RECIPES:
        raise ValueError(f"config key {key}.recipe = {name!r}: choose one of {sorted(RECIPES)}")
    overrides = {field: value for field, value in entry.items() if field not in RUN_KEYS}
    unknown = set(overrides) - {field.name for field in dataclasses.fields(Recipe)}
    if unknown:
        raise ValueError(f"config keys {key}.{f', {key}.'.join(sorted(unknown))} are not recipe settings")
    return name, dataclasses.replace(RECIPES[name], **overrides), overrides
