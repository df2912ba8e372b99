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
from dataclasses import dataclass

from latent_interp import recipes, weights

# The single-VAE keys of before ``vaes:`` (issue 13); the schema would reject them without saying what to write.
OLD_VAE_KEYS = ("pretrained", "single_file_config")


def reject_old_keys(config: dict) -> None:
    """Fail on the old single-VAE config with the lines to write instead (call before the schema validation)."""
    old = config.get("vae") or {}
    if any(key in old for key in OLD_VAE_KEYS):
        raise ValueError(
            'config key vae.pretrained: VAEs are now listed by name under vaes (README "Many VAEs"). Write\n'
            f"  vaes:\n    pretrained: {old.get('pretrained', '<folder, file or hub id>')}\n"
            "and, for a single file with another architecture than kl-f8, give the entry as a mapping:\n"
            "    pretrained: {source: <file>, config: <vae.single_file_config>}\n"
            "finetune.vae names the VAE the fine-tune starts from; vae keeps device and batch_size."
        )


@dataclass(frozen=True)
class RunConfig:
    config: dict  # the effective config: the merged mapping, schema defaults filled in, left-out (null) VAEs dropped
    vaes: dict[str, dict]  # name -> {"source": ..., options}: the VAEs of this run, in config order
    models: dict[str, str]  # every model of the run -> its weights: the VAEs, then the fine-tune's output folder
    finetune_base: str  # the VAE the fine-tune starts from (finetune.vae, default the first)
    baseline: str  # compare.baseline (default the first VAE)
    latent_space: dict[str, str]  # model -> the model whose latents it decodes (itself, or a decoder-only base)

    @property
    def splits(self) -> list[str]:
        return list(self.config["data"]["splits"])

    @property
    def synthetic(self) -> dict | None:
        """data.synthetic when the workflow draws the data itself (data.source: synthetic), else None."""
        data = self.config["data"]
        return data["synthetic"] if data.get("source") == "synthetic" else None

    @property
    def vae_sources(self) -> dict[str, str]:
        """name -> source of each VAE of the run (the fine-tune left out)."""
        return {name: entry["source"] for name, entry in self.vaes.items()}

    @property
    def finetuned_name(self) -> str:
        """The fine-tuned model's name, "<finetune.vae>-finetuned" (a model of the run only with finetune.enabled)."""
        return f"{self.finetune_base}-finetuned"

    @property
    def finetuned_dir(self) -> str:
        return f"results/models/{self.finetuned_name}"

    @property
    def finetuned(self) -> str | None:
        return self.finetuned_name if self.finetuned_name in self.models else None

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
        """(model, baseline) pairs of results/metrics/comparison.csv: every model against compare.baseline, and the
        fine-tuned model against the VAE it started from."""
        pairs = [[model, self.baseline] for model in self.models if model != self.baseline]
        if self.finetuned and self.finetune_base != self.baseline:
            pairs.append([self.finetuned, self.finetune_base])
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

    def vae_options(self, model: str) -> dict:
        """vae.load_vae's keyword arguments for a model: its entry's options, and the key that names it in errors.
        The fine-tuned model is a diffusers folder holding its base's factors, and runs in its base's dtype."""
        entry = self.vaes.get(model) or {"dtype": self.vaes[self.finetune_base].get("dtype", "auto")}
        options = {name: value for name, value in entry.items() if name != "source"}
        return {**options, "key": f"vaes.{model}" if model in self.vaes else f"finetune.vae ({model})"}


def resolve(config: dict) -> RunConfig:
    """The run's view of a schema-validated config; raises ValueError naming the config key at fault."""
    config = copy.deepcopy(config)
    config["vaes"] = {name: entry for name, entry in config["vaes"].items() if entry is not None}
    vaes = {name: {"source": entry} if isinstance(entry, str) else dict(entry)
            for name, entry in config["vaes"].items()}
    if not vaes:
        raise ValueError("config key vaes: every entry is null; name at least one VAE")
    finetune = config["finetune"]
    finetune_base = finetune.get("vae", next(iter(vaes)))
    if finetune["enabled"] and finetune_base not in vaes:
        raise ValueError(f"config key finetune.vae: {finetune_base!r} is not a name in vaes ({', '.join(vaes)})")
    models = {name: entry["source"] for name, entry in vaes.items()}
    latent_space = {name: name for name in vaes}
    if finetune["enabled"]:
        finetuned = f"{finetune_base}-finetuned"  # a name in vaes cannot end in -finetuned (the schema)
        models[finetuned] = f"results/models/{finetuned}"
        # A decoder-only fine-tune keeps the encoder, so its latents are its base's (it is never encoded).
        decoder_only = recipes.recipe_from_config(finetune)[1].trainable == "decoder"
        latent_space[finetuned] = finetune_base if decoder_only else finetuned
    baseline = config.setdefault("compare", {}).get("baseline", next(iter(vaes)))  # compare is optional
    if baseline not in models:
        raise ValueError(f"config key compare.baseline: {baseline!r} is not a model of this run ({', '.join(models)})")
    splits = config["data"]["splits"]
    if finetune["enabled"] and "train" not in splits:
        raise ValueError("config key finetune.enabled: fine-tuning trains on a split named train, and data.splits has "
                         f"none ({splits}); add it or set finetune.enabled: false")
    if "train" not in splits or "val" not in splits:  # selecting on the split they are scored on would leak it
        raise ValueError("config key data.splits: the interpolation predictors fit on a split named train and choose "
                         f"their settings on one named val, but data.splits is {splits}")
    run = RunConfig(config=config, vaes=vaes, models=models, finetune_base=finetune_base, baseline=baseline,
                    latent_space=latent_space)
    check_frame_size(config["preprocess"]["size"], vaes)
    layout = config["data"].get("layout", "folders")
    by_hash = layout == "video" and (config["data"].get("video") or {}).get("assign") == "hash"
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
    if by_hash:
        others = [split for split in splits if split not in ("train", "val", "test")]
        if others:
            raise ValueError(f"config key data.video.assign: hash draws splits train, val and test; data.splits also "
                             f"names {others}")
    return run


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
