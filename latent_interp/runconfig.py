"""The run's config, resolved once: what every reader of the config (the Snakefile's rules and input functions, the
report) reads, never the raw mapping.

Snakemake merges a ``--configfile`` into ``config.yaml`` key by key, so the mapping it hands over can hold entries a
user left out by naming them with null: ``config/atd12k.yaml`` leaves out the demo's two VAEs that way. A reader of
the raw ``vaes`` then meets ``None`` where it expects a source (the real study once ran for hours and then crashed at
its report). ``resolve`` drops those entries once, checks what the JSON schema cannot (names that must match other
keys, the splits the stages need) and answers what the rules ask: which models run, from which weights, in which
latent space, compared with which baseline, on which splits. Torch-free: every Snakemake process imports it.
"""

from __future__ import annotations

import copy
import glob
import json
import os
from dataclasses import dataclass

from latent_interp import recipes, schema, synthetic, weights
from latent_interp.settings import EmbedSettings, InterpSettings, Preprocess, VaeRun

# The single-VAE keys of before ``vaes:``; the schema would reject them without saying what to write.
OLD_VAE_KEYS = ("pretrained", "single_file_config")


def reject_old_keys(config: dict) -> None:
    """Fail on the old single-VAE config or the old single fine-tune block with the lines to write instead (call
    before the schema validation)."""
    if "finetune" in config:
        raise ValueError(finetune_migration(config["finetune"] or {}))
    old = config.get("vae") or {}
    if any(key in old for key in OLD_VAE_KEYS):
        raise ValueError(
            'config key vae.pretrained: VAEs are now listed by name under vaes (docs/study.md "Many VAEs side by '
            'side"). Write\n'
            f"  vaes:\n    pretrained: {old.get('pretrained', '<folder, file or hub id>')}\n"
            "and, for a single file with another architecture than kl-f8, give the entry as a mapping:\n"
            "    pretrained: {source: <file>, config: <vae.single_file_config>}\n"
            "finetune.vae names the VAE the fine-tune starts from; vae keeps device and batch_size."
        )


def finetune_migration(old: dict) -> str:
    """The message for the old ``finetune:`` block (before ``finetunes:``), with its translation."""
    base = old.get("vae", "<the name in vaes it starts from>")
    settings = {key: value for key, value in old.items() if key not in ("enabled", "vae")}
    entry = ", ".join(f"{key}: {value if isinstance(value, str) else json.dumps(value)}"  # YAML's null, true
                      for key, value in {"vae": base, **settings}.items())
    translation = (f"  finetunes:\n    {base}-finetuned: {{{entry}}}" if old.get("enabled", True) else
                   "  finetunes: null")
    return ("config key finetune: fine-tunes are now listed by name under finetunes (docs/study.md \"Fine-tunes with a "
            "purpose\"), each one more model of the study. Write instead\n" + translation
            + "\n(the name is the model's: results/models/<name>; the name above keeps the old runs' folders). "
            "config.yaml's own fine-tunes stay unless your file names them with null, or sets finetunes: null.")


@dataclass(frozen=True)
class RunConfig:
    config: dict  # the effective config: the merged mapping, the schema's defaults filled in, null entries dropped
    vaes: dict[str, dict]  # name -> {"source": ..., options}: the VAEs of this run, in config order
    models: dict[str, str]  # every model of the run -> its weights: the VAEs, then each fine-tune's output folder
    finetunes: dict[str, dict]  # name -> its entry of finetunes (vae, recipe, overrides), in config order
    baseline: str  # compare.baseline (default the first VAE)
    latent_space: dict[str, str]  # model -> the model whose latents it decodes (itself, or a decoder-only base)

    @property
    def splits(self) -> list[str]:
        return list(self.config["data"]["splits"])

    @property
    def synthetic(self) -> dict | None:
        """data.synthetic when the workflow draws the data itself (data.source: synthetic), else None."""
        data = self.config["data"]
        return data["synthetic"] if data["source"] == "synthetic" else None

    @property
    def vae_sources(self) -> dict[str, str]:
        """name -> source of each VAE of the run (the fine-tune left out)."""
        return {name: entry["source"] for name, entry in self.vaes.items()}

    def finetune_base(self, name: str) -> str:
        """The VAE a fine-tune starts from."""
        return self.finetunes[name]["vae"]

    @property
    def latent_models(self) -> list[str]:
        """The models that are a latent space of their own (encoded, with predictors, geometry and embeddings)."""
        return [model for model in self.models if self.latent_space[model] == model]

    @property
    def twins(self) -> dict[str, str]:
        """model -> the model whose latents it shares (a decoder-only fine-tune -> its base)."""
        return {model: space for model, space in self.latent_space.items() if space != model}

    @property
    def comparison_pairs(self) -> list[list[str]]:
        """(model, baseline) pairs of results/metrics/comparison.csv: every model against compare.baseline, and each
        fine-tune against the VAE it started from."""
        pairs = [[model, self.baseline] for model in self.models if model != self.baseline]
        pairs += [[name, self.finetune_base(name)] for name in self.finetunes
                  if [name, self.finetune_base(name)] not in pairs]
        return pairs

    @property
    def val_split(self) -> str:
        """Where the fine-tune validates and the collapse check runs: val (resolve requires one)."""
        return "val"

    @property
    def interp_splits(self) -> list[str]:
        """The predictors fit on train and choose their settings on val; they are scored on every other split."""
        return [split for split in self.splits if split != "train"]

    @property
    def probe_test(self) -> str:
        """The geometry's linear probes fit on train and are scored on test (or the last split)."""
        return "test" if "test" in self.splits else self.splits[-1]

    def vae_run(self, model: str) -> VaeRun:
        """How a job runs ``model``: its weights, its entry's options and config ``vae``."""
        run = self.config["vae"]
        return VaeRun(self.models[model], self.vae_options(model), run["batch_size"], run["device"], run["compile"])

    def finetune_base_run(self, name: str) -> VaeRun:
        """How fine-tune ``name`` runs the VAE it starts from: its base's weights, loaded as the fine-tune's entry."""
        return self.vae_run(self.finetune_base(name))._replace(options=self.vae_options(name))

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(**self.config["preprocess"])

    @property
    def interp_settings(self) -> InterpSettings:
        interp = self.config["interp"]
        return InterpSettings(interp["gallery_triplets"], interp["sample_triplets"], interp["seed"],
                              dict(interp["lpips"]), tuple(self.config["metrics"]["protocol"]), interp["time"])

    @property
    def embed_settings(self) -> EmbedSettings:
        embed = self.config["embed"]
        return EmbedSettings(embed["seed"], embed["max_points"], embed["trajectories"])

    def vae_options(self, model: str) -> dict:
        """vae.load_vae's keyword arguments for a model: its entry's options, and the key that names it in errors.
        A fine-tune is a diffusers folder holding its base's factors, and runs in its base's dtype."""
        if model in self.vaes:
            options = {name: value for name, value in self.vaes[model].items() if name != "source"}
            return {**options, "key": f"vaes.{model}"}
        return {"dtype": self.vaes[self.finetune_base(model)].get("dtype", "auto"), "key": f"finetunes.{model}"}


def resolve(config: dict) -> RunConfig:
    """The run's view of a schema-validated config; raises ValueError naming the config key at fault."""
    config = schema.fill_defaults(copy.deepcopy(config))  # every reader takes a default from here, never its own
    config["vaes"] = {name: entry for name, entry in config["vaes"].items() if entry is not None}
    vaes = {name: {"source": entry} if isinstance(entry, str) else dict(entry)
            for name, entry in config["vaes"].items()}
    if not vaes:
        raise ValueError("config key vaes: every entry is null; name at least one VAE")
    config["finetunes"] = {name: entry for name, entry in (config.get("finetunes") or {}).items()
                           if entry is not None}
    finetunes = config["finetunes"]
    models = {name: entry["source"] for name, entry in vaes.items()}
    latent_space = {name: name for name in vaes}
    for name, entry in finetunes.items():
        key = f"finetunes.{name}"
        if name in vaes:
            raise ValueError(f"config key {key}: {name!r} is also a name in vaes; a fine-tune is a model of its own")
        if entry["vae"] not in vaes:
            raise ValueError(f"config key {key}.vae: {entry['vae']!r} is not a name in vaes ({', '.join(vaes)})")
        models[name] = f"results/models/{name}"
        # A decoder-only fine-tune keeps the encoder, so its latents are its base's (it is never encoded).
        decoder_only = recipes.recipe_from_config(entry, key)[1].trainable == "decoder"
        latent_space[name] = entry["vae"] if decoder_only else name
    baseline = config["compare"].get("baseline", next(iter(vaes)))  # no schema default: the first VAE
    if baseline not in models:
        raise ValueError(f"config key compare.baseline: {baseline!r} is not a model of this run ({', '.join(models)})")
    splits = config["data"]["splits"]
    if finetunes and "train" not in splits:
        raise ValueError(f"config key finetunes: fine-tuning trains on a split named train, and data.splits has none "
                         f"({splits}); add it or set finetunes: null")
    if "train" not in splits or "val" not in splits:  # selecting on the split they are scored on would leak it
        raise ValueError("config key data.splits: the interpolation predictors fit on a split named train and choose "
                         f"their settings on one named val, but data.splits is {splits}")
    run = RunConfig(config=config, vaes=vaes, models=models, finetunes=finetunes, baseline=baseline,
                    latent_space=latent_space)
    check_frame_size(config["preprocess"]["size"], vaes)
    layout = config["data"]["layout"]
    by_hash = layout == "video" and config["data"].get("video", {}).get("assign") == "hash"
    if run.synthetic is not None:
        if layout == "atd12k":
            raise ValueError("config key data.source: synthetic draws a 'folders' or 'video' layout, not atd12k")
        counts = "videos" if layout == "video" else "triplets"
        if by_hash:
            raise ValueError("config key data.video.assign: the demo videos are drawn one folder per split; set "
                             "assign: folders with data.source: synthetic")
        missing = [split for split in splits if split not in run.synthetic.get(counts, {})]
        if missing:
            raise ValueError(f"config key data.synthetic.{counts} has no count for split(s) {missing}"
                             + (" (layout video draws videos)" if layout == "video" else ""))
        synthetic.check_root(config["data"]["root"])
    if by_hash:
        others = [split for split in splits if split not in ("train", "val", "test")]
        if others:
            raise ValueError(f"config key data.video.assign: hash draws splits train, val and test; data.splits also "
                             f"names {others}")
    check_inbetween(config)
    return run


def check_inbetween(config: dict) -> None:
    """Refuse, before any job, clips that could not be made: a learned method this run does not train, or a split it
    does not have (clips are made of videos: other layouts make none, whatever the section says). An oracle or the
    ceiling is refused by the schema: inbetween.method lists the others."""
    inbetween, splits = config["inbetween"], config["data"]["splits"]
    if config["data"]["layout"] != "video":
        return
    learned = schema.section("interp.predictors")["items"]["enum"]
    if inbetween["method"] in learned and inbetween["method"] not in config["interp"]["predictors"]:
        raise ValueError(f"config key inbetween.method: {inbetween['method']} is a learned predictor, and "
                         f"interp.predictors ({config['interp']['predictors']}) does not train it")
    missing = [split for split in inbetween["splits"] if split not in splits]
    if missing:
        raise ValueError(f"config key inbetween.splits: {missing} not in data.splits ({splits})")


def check_frame_size(size, vaes: dict[str, dict]) -> None:
    """Refuse a preprocess.size a VAE cannot take, before any job: a [width, height] side that is odd, or smaller than
    a VAE's downsampling (a side that is no multiple of it is padded, ``encode.pad_to_multiple``)."""
    if not isinstance(size, (list, tuple)):
        return  # a square side: the schema holds it to a multiple of 8
    for side, value in zip(("width", "height"), size):
        if value % 2:
            raise ValueError(f"config key preprocess.size: the {side} {value} is odd; VAEs downsample by powers of "
                             "two, so give an even size (the frames are resized to it)")
        for name, entry in vaes.items():
            factor = weights.entry_downsampling(entry)
            if factor is not None and value < factor:
                raise ValueError(f"config key preprocess.size: the {side} {value} is smaller than VAE {name}'s "
                                 f"downsampling ({factor}); its latent would have no cell")


def gpu_visible() -> bool:
    """Whether this machine shows torch a GPU, known without importing torch (the Snakefile asks): an NVIDIA or
    ROCm device node that CUDA_VISIBLE_DEVICES does not hide."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd")


def holds_gpu(device: str, local: bool) -> bool:
    """Whether a job that runs on ``device`` (vae.device, metrics.device) holds a GPU: ``cpu`` never; on a cluster
    (``local`` false) any other setting asks for one, its node has its own; here ``auto`` only where this machine
    has one (``vae.pick_device`` falls back to the CPU), and a named device always."""
    if device == "cpu":
        return False
    return not local or device != "auto" or gpu_visible()
