"""The settings objects the stages take: one immutable record per kind of job, built from the resolved config by
``runconfig.RunConfig`` (the rules pass them as params) or by a test with only what it changes. Their defaults are
the config schema's, so a stage called without a config assumes what a config without the key would give.

Named tuples, not dataclasses: Snakemake reruns a job whose params changed only for params it can represent (its
builtins, tuples among them, by ``repr``); a dataclass param would be skipped, and a changed setting rerun nothing.

Torch-free: the Snakefile builds them for every job it plans.
"""

from __future__ import annotations

from typing import NamedTuple

from latent_interp import schema

_VAE = schema.defaults("vae")
_INTERP = schema.defaults("interp")
_EMBED = schema.defaults("embed")
_PREPROCESS = schema.section("preprocess")["properties"]


class VaeRun(NamedTuple):
    """How a job runs one model: its weights, the entry's loading options and config ``vae``'s device, batch size
    and compile setting."""
    source: str  # a diffusers folder, a single file or a hub id (vaes.<name>), or a fine-tune's folder
    options: dict = {}  # vae.load_vae's keyword arguments (the entry's, and its config key); never changed
    batch_size: int | str = _VAE["batch_size"]
    device: str = _VAE["device"]
    compile: str | bool = _VAE["compile"]


class Preprocess(NamedTuple):
    """How ingest fits frames to the VAEs' size (config ``preprocess``)."""
    size: int | list  # a square's side or [width, height]; the schema requires it
    resample: str = _PREPROCESS["resample"]["default"]
    fit: str = _PREPROCESS["fit"]["default"]


class InterpSettings(NamedTuple):
    """What rule interp keeps and scores beside the methods (config ``interp`` and ``metrics.protocol``)."""
    gallery: int | str  # interp.gallery_triplets (required by the schema): worst-first in-betweens kept, or "all"
    sample: int = _INTERP["sample_triplets"]
    seed: int = _INTERP["seed"]
    lpips: dict = {}  # interp.lpips: backbone, linear; never changed
    protocols: tuple = tuple(schema.defaults("metrics")["protocol"])
    time: bool | str = _INTERP["time"]  # interp.time: true, or "midpoint" (``at_true_time``)


def at_true_time(time=_INTERP["time"]) -> bool:
    """Config ``interp.time``: true (YAML's reading of the word, or the string) predicts each triplet at its own t,
    ``midpoint`` at 0.5. The one reading of the key, for rule interp and the predictors' training alike."""
    return time is True or time == "true"


class EmbedSettings(NamedTuple):
    """Config ``embed``'s settings of one embedding job."""
    seed: int = _EMBED["seed"]
    max_points: int = _EMBED["max_points"]
    trajectories: int = _EMBED["trajectories"]
