"""The settings objects the stages take: one frozen dataclass per kind of job, built from the resolved config by
``runconfig.RunConfig`` (the rules pass them as params) or by a test with only what it changes. Their defaults are
the config schema's, so a stage called without a config assumes what a config without the key would give.

Torch-free: the Snakefile builds them for every job it plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from latent_interp import schema

_VAE = schema.defaults("vae")
_INTERP = schema.defaults("interp")
_EMBED = schema.defaults("embed")
_PREPROCESS = schema.section("preprocess")["properties"]


@dataclass(frozen=True)
class VaeRun:
    """How a job runs one model: its weights, the entry's loading options and config ``vae``'s device, batch size
    and compile setting."""
    source: str  # a diffusers folder, a single file or a hub id (vaes.<name>), or a fine-tune's folder
    options: dict = field(default_factory=dict)  # vae.load_vae's keyword arguments (the entry's, and its config key)
    batch_size: int | str = _VAE["batch_size"]
    device: str = _VAE["device"]
    compile: str | bool = _VAE["compile"]


@dataclass(frozen=True)
class Preprocess:
    """How ingest fits frames to the VAEs' size (config ``preprocess``)."""
    size: int | list  # a square's side or [width, height]; the schema requires it
    resample: str = _PREPROCESS["resample"]["default"]
    fit: str = _PREPROCESS["fit"]["default"]


@dataclass(frozen=True)
class InterpSettings:
    """What rule interp keeps and scores beside the methods (config ``interp`` and ``metrics.protocol``)."""
    gallery: int | str  # interp.gallery_triplets (required by the schema): worst-first in-betweens kept, or "all"
    sample: int = _INTERP["sample_triplets"]
    seed: int = _INTERP["seed"]
    lpips: dict = field(default_factory=dict)  # interp.lpips: backbone, linear
    protocols: tuple = tuple(schema.defaults("metrics")["protocol"])


@dataclass(frozen=True)
class EmbedSettings:
    """Config ``embed``'s settings of one embedding job."""
    seed: int = _EMBED["seed"]
    max_points: int = _EMBED["max_points"]
    trajectories: int = _EMBED["trajectories"]
