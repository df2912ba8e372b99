"""Rule finetune: fine-tune a VAE on the train split, validate on val, save a diffusers folder.

Each entry of the ``finetunes`` config mapping is one run: ``{name: {vae, recipe, overrides}}`` trains a copy of
the VAE named by ``vae`` with a recipe (``RECIPES``, in ``latent_interp.recipes``) and writes
``results/models/<name>``, which then goes through every analysis as one more model.

``default`` works: latent diffusion's loss scale (KL weight 1e-6 against a reconstruction summed per image), the
    decoder trained alone as in stabilityai/sd-vae-ft-mse (the encoder, and so the latent space under study, stay
    as they were), AdamW with warm-up, gradient clipping and an EMA of the weights, which is what gets saved.
``seed`` is the seed study's, exactly: mean MSE + the KL summed over the latent with weight 1, sampled z, Adam 1e-4,
    batch 8, 10 epochs, the whole VAE. Its KL term is about 1e9 times heavier than latent diffusion's, so training
    pushes the posterior onto N(0, I), the decoder stops receiving information and every reconstruction becomes the
    same average image (../shared/REFERENCE.md; the collapse check in ``latent_interp.metrics`` flags it).
``equivariant`` is ``default`` with the encoder training too and an equivariance term after EQ-VAE: for a random
    transform T of each batch (translations by whole and fractional latent cells, scaling, rotation;
    ``latent_interp.latent_transforms``), ``equivariance_weight * mean (decode(T(z)) - T(x))^2``. It teaches the
    latent space to move like the picture, which latent warping (``latent_flow``) assumes.
``antialias`` puts a binomial filter before each strided downsampling of the encoder (``latent_interp.antialias``),
    and adds to ``default``'s loss ``encoder_shift_weight * mean (E(T(x)) - T(E(x)))^2 / var(E(x))`` over posterior
    means, T a sub-cell translation of each batch: the encoder side, which the equivariant recipe leaves as it was.

Every recipe computes the loss per pixel: ``reconstruction_mse + kl_weight * kl * scale`` (+ the equivariance term)
where ``kl`` is the KL divergence summed over one image's latent (nats) and ``scale`` is 1 / pixels per image for
``kl_normalization: pixels`` (latent diffusion's loss divided by the constant pixel count, which changes nothing for
Adam but keeps the numbers and the clipping threshold readable) or 1 for ``none`` (the seed).

Output folder (``results/models/<name>``):
    ``config.json``, ``diffusion_pytorch_model.safetensors``   the weights (the EMA when the recipe keeps one),
                           a diffusers ``save_pretrained`` folder that the encode rule loads like any other VAE
    ``training_steps.csv``  one row per step: ``step``, ``epoch``, ``lr``, ``loss``, ``reconstruction_mse`` (model
                           range [-1, 1]), ``kl`` (nats per image), ``kl_term`` (its weighted share of ``loss``),
                           ``kl_share`` (kl_term / loss), unweighted extra terms and their batch's T
                           (``equivariance_mse`` and ``transform``; ``encoder_shift_mse`` and ``encoder_shift``),
                           ``grad_norm`` (before clipping), ``seconds`` (since start)
    ``training_epochs.csv`` one row per epoch, epoch 0 being the pretrained model: ``epoch``, ``step``, ``val_mse``,
                           ``val_psnr``, ``val_ssim`` (means over val frames, the metrics rule's definitions),
                           ``val_variance_ratio``, ``val_psnr_gain_db``, ``val_mean_image_psnr``, ``val_collapsed``
                           (the collapse check's figures and verdict), ``evaluated``
                           (``ema`` or ``model``: the weights that are saved)
    ``loss_curve.png``      loss terms per step and val PSNR per epoch
    ``finetune.json``       provenance: name, purpose, recipe, settings, overrides, the pretrained VAE's record, data,
                           resumes, package versions

The checkpoint (``results/checkpoints/<name>.pt``) is not an output: Snakemake deletes a failed job's outputs and
the checkpoint must outlive a killed job. It holds model, EMA, optimizer, step, RNG state, the tables so far and the
settings (nanoGPT style); a rerun resumes from it when the settings, the pretrained weights and the data match, and
starts over (saying why) when they do not. ``epochs`` is not part of that match: raising it continues a finished
run, which is how a longer schedule is a config change.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from latent_interp import antialias, collapse, encode, metrics, store, vae  # noqa: E402
from latent_interp.atomic import fault_point, partial_path, remove  # noqa: E402
from latent_interp.latent_transforms import Transform, sample_subcell_shift, sample_transform  # noqa: E402
from latent_interp.settings import VaeRun  # noqa: E402
# The recipes are config, not training: the Snakefile reads them without importing torch.
from latent_interp.recipes import (PURPOSES, RECIPES, RESUMABLE_CHANGES, RUN_KEYS, Recipe,  # noqa: E402,F401
                                   recipe_from_config)


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN or infinite; training stops and the last good checkpoint stays."""


def trainable_parameters(model, recipe: Recipe) -> list[torch.nn.Parameter]:
    """Freeze what the recipe keeps fixed and return the rest."""
    for name, parameter in model.named_parameters():
        prefixes = vae.ENCODER_PREFIXES if recipe.trainable == "encoder" else ("decoder.", "post_quant_conv.")
        parameter.requires_grad_(recipe.trainable == "all" or name.startswith(prefixes))
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def make_optimizer(parameters, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)


def learning_rate(step: int, recipe: Recipe) -> float:
    return recipe.lr * min(1.0, (step + 1) / recipe.warmup_steps) if recipe.warmup_steps else recipe.lr


def ema_decay_at(step: int, decay: float) -> float:
    """diffusers' EMA warm-up: early steps average over fewer updates, so a short fine-tune is not all pretrained."""
    return min(decay, (1 + step) / (10 + step))


def loss_terms(model, x: torch.Tensor, recipe: Recipe, generator: torch.Generator | None = None,
               transform: Transform | None = None, shift: Transform | None = None) -> dict:
    """The recipe's loss on a batch ``x`` (float [B, 3, H, W] in [-1, 1]), with its parts.

    The decoder sees a sample of the posterior (every recipe). ``kl_share`` is the fraction of the loss the KL term
    makes: tiny for the default recipe, nearly all of it for the seed's. With an ``equivariance_weight`` the loss
    adds the equivariance term for ``transform`` (the identity when None); with an ``encoder_shift_weight``, the
    encoder-side term for the sub-cell translation ``shift``.
    """
    # A side that is no multiple of the downsampling is padded for the encoder and cropped back (encode.decode_latents)
    downsampling = vae.downsampling(model.config)
    padded = encode.pad_to_multiple(x, downsampling)
    posterior = model.encode(padded).latent_dist
    z = posterior.sample(generator)
    reconstruction = model.decode(z).sample.float()[..., :x.shape[-2], :x.shape[-1]]
    reconstruction_mse = (reconstruction - x).square().mean()
    kl = posterior.kl().float().mean()  # summed over the latent of each image, averaged over the batch
    scale = 1.0 / x[0].numel() if recipe.kl_normalization == "pixels" else 1.0
    kl_term = recipe.kl_weight * scale * kl
    loss = reconstruction_mse + kl_term
    terms = {"reconstruction_mse": reconstruction_mse, "kl": kl, "kl_term": kl_term}
    if recipe.equivariance_weight:
        terms["equivariance_mse"] = equivariance_error(model, z, padded, transform or Transform(), downsampling)
        loss = loss + recipe.equivariance_weight * terms["equivariance_mse"]
    if recipe.encoder_shift_weight:  # relative to the latents' variance, as rule equivariance measures it
        shift, mean = shift or Transform(), posterior.mean.float()
        moved = model.encode(shift.image(padded, downsampling)).latent_dist.mean.float()
        terms["encoder_shift_mse"] = (moved - shift.latent(mean)).square().mean() / mean.detach().var().clamp_min(1e-8)
        loss = loss + recipe.encoder_shift_weight * terms["encoder_shift_mse"]
    return {"loss": loss, **terms, "kl_share": kl_term / loss}


def equivariance_error(model, z: torch.Tensor, x: torch.Tensor, transform: Transform,
                       downsampling: int) -> torch.Tensor:
    """mean (decode(T(z)) - T(x))^2: how far decoding a transformed latent is from the transformed image (zero for
    an autoencoder that reconstructs exactly and commutes with T). ``model``: anything with ``decode(z).sample``."""
    moved = model.decode(transform.latent(z)).sample.float()
    return (moved - transform.image(x.float(), downsampling)).square().mean()


def epoch_batches(frame_count: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The frame indices of each batch of an epoch: a permutation drawn from (seed, epoch) alone, so a resumed run
    knows where it was without storing the order. The last batch may be short (the seed's DataLoader kept it)."""
    order = np.random.default_rng([seed, epoch]).permutation(frame_count)
    return [np.sort(order[start:start + batch_size]) for start in range(0, frame_count, batch_size)]


def crop_batch(frames: np.ndarray, crop: int | None, seed: int, step: int) -> np.ndarray:
    """One random crop position per batch (drawn from (seed, step)), or the whole frames."""
    if crop is None or crop >= min(frames.shape[1:3]):
        return frames
    top, left = np.random.default_rng([seed, step, 1]).integers(0, np.array(frames.shape[1:3]) - crop + 1)
    return frames[:, top:top + crop, left:left + crop]


def read_split_frames(path) -> tuple[np.ndarray, str]:
    """All frames of a split as uint8 [F, H, W, 3] in memory, and a digest of them (what a checkpoint was
    trained on). ATD-12K's train split at 256 px is about 5.6 GB."""
    frames_array = store.open_store(path, "frames")[store.FRAMES]
    frames = frames_array[:].reshape(-1, *frames_array.shape[2:])
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to fine-tune on (the split's triplets were all skipped at ingest)")
    return frames, hashlib.sha256(np.ascontiguousarray(frames).data).hexdigest()


def validate(model, frames: np.ndarray, device: torch.device, batch_size: int, means: np.ndarray | None = None,
             dtype: str = "auto", guard: encode.NonFiniteGuard | None = None) -> dict:
    """Val figures of decoding the posterior mean: means of the per-image metrics and the collapse check's figures.
    ``means``: the frames' posterior means when the encoder is frozen (they cannot change between epochs);
    ``dtype``: the base VAE's (``vae.compute_dtype``); ``guard`` counts batches recomputed in float32."""
    if means is None:
        means, _ = encode.encode_frames(model, frames, device, batch_size, dtype, guard)
    reconstructions = encode.decode_latents(model, means, device, batch_size, dtype, frames.shape[1:3], guard)
    per_image = np.array([metrics.image_metrics(t, r) for t, r in zip(frames, reconstructions)])
    moments = collapse.CollapseMoments()
    moments.add(frames, reconstructions)
    figures = moments.figures()
    finite_psnr = per_image[:, 1][np.isfinite(per_image[:, 1])]
    return {"val_mse": float(per_image[:, 0].mean()), "val_psnr": float(finite_psnr.mean()),
            "val_ssim": float(per_image[:, 2].mean()), "val_variance_ratio": figures["variance_ratio"],
            "val_psnr_gain_db": figures["psnr_gain_db"], "val_mean_image_psnr": figures["mean_image_psnr"],
            "val_collapsed": figures["collapsed"]}


def _identity(settings: dict, pretrained_sha256: str | None, train_digest: str, val_digest: str) -> dict:
    """What a checkpoint must match to be resumed."""
    kept = {key: value for key, value in settings.items() if key not in RESUMABLE_CHANGES}
    return {"settings": kept, "pretrained_sha256": pretrained_sha256, "train_frames_sha256": train_digest,
            "val_frames_sha256": val_digest}


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    found = []
    for key in keys:
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            found += _differences(old[key], new[key], f"{prefix}{key}.")
        elif old.get(key) != new.get(key):
            found.append(f"{prefix}{key}")
    return found


def _resume(checkpoint_path: Path, identity: dict, total_steps: int, model, ema, optimizer, generator):
    """Load the checkpoint into the training objects when it belongs to this run; return (step, step rows, epoch
    rows, resume steps, seconds trained), or None to start from the pretrained weights (saying why)."""
    if not checkpoint_path.exists():
        return None
    # weights_only: the checkpoint holds tensors and plain containers only, so no pickled code is ever run.
    checkpoint = torch.load(checkpoint_path, map_location=next(model.parameters()).device, weights_only=True)
    changed = _differences(checkpoint["identity"], identity)
    if changed:
        print(f"checkpoint {checkpoint_path} not resumed, it differs in {', '.join(changed)}: starting over")
        return None
    if checkpoint["step"] > total_steps:
        print(f"checkpoint {checkpoint_path} is at step {checkpoint['step']}, past this run's {total_steps} steps "
              "(the entry's epochs was lowered): starting over")
        return None
    model.load_state_dict(checkpoint["model"])
    if ema is not None:
        ema.load_state_dict(checkpoint["ema"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    generator.set_state(checkpoint["generator"].cpu())  # RNG states are CPU byte tensors on any device
    torch.set_rng_state(checkpoint["torch_rng"].cpu())
    step = checkpoint["step"]
    print(f"resumed from {checkpoint_path} at step {step} of {total_steps}")
    return step, checkpoint["step_rows"], checkpoint["epoch_rows"], checkpoint["resumes"] + [step], \
        checkpoint["seconds"]


def update_ema(ema, model, decay: float) -> None:
    """Move each EMA weight a (1 - decay) step towards the model's."""
    with torch.no_grad():
        for ema_parameter, parameter in zip(ema.parameters(), model.parameters()):
            ema_parameter.lerp_(parameter, 1 - decay)


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    torch.save(state, temporary)
    fault_point("finetune", "checkpoint")
    temporary.replace(path)  # a kill mid-write leaves the previous checkpoint whole
    fault_point("finetune", "checkpointed")


def plot_curves(steps: pd.DataFrame, epochs: pd.DataFrame, title: str) -> plt.Figure:
    """Loss terms per step and val PSNR per epoch (the report draws it again into results/figures/)."""
    figure, (loss_axis, val_axis) = plt.subplots(1, 2, figsize=(11, 3.8))
    for column, label in [("loss", "loss"), ("reconstruction_mse", "reconstruction MSE"), ("kl_term", "KL term"),
                          ("equivariance_mse", "equivariance MSE"), ("encoder_shift_mse", "encoder shift MSE")]:
        if column in steps and (steps[column] > 0).any():
            loss_axis.plot(steps["step"], steps[column], label=label, linewidth=1)
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("step")
    loss_axis.set_title("training loss (per pixel)")
    loss_axis.legend(fontsize=8)
    val_axis.plot(epochs["epoch"], epochs["val_psnr"], marker="o", label="model")
    val_axis.plot(epochs["epoch"], epochs["val_mean_image_psnr"], linestyle=":", color="grey",
                  label="mean image (a model that learned nothing)")
    val_axis.set_xlabel("epoch (0 = pretrained)")
    val_axis.set_ylabel("val PSNR (dB)")
    val_axis.set_title("validation")
    val_axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


class FinetuneInputs(NamedTuple):
    """Rule finetune's frames stores."""
    train: str  # trained on
    val: str  # validated on


def finetune(*, inputs: FinetuneInputs, model_dir, checkpoint, base: VaeRun, settings: dict, threads: int = 1,
             finetune: str = "finetuned", on_step=None) -> dict:
    """Rule finetune: train a copy of the model ``base`` runs (any form ``vae.load_vae`` takes) on the frames store
    ``inputs.train``, validating on ``inputs.val``, and write the diffusers folder ``model_dir`` (module docstring),
    resuming from ``checkpoint`` when it belongs to this run.

    ``settings``: the run's entry of ``finetunes`` (vae, recipe, seed, checkpoint_every, overrides), named
    ``finetune``. ``on_step(step, model)`` runs at the end of each step, after any checkpoint (tests use it to break
    a run); returns what finetune.json holds.
    """
    (train_frames_path, val_frames_path), out_dir, checkpoint_path = inputs, model_dir, checkpoint
    finetune_config, name, pretrained = settings, finetune, base.source
    device, batch_size_eval, vae_options = base.device, base.batch_size, base.options
    vae.prepare_torch(threads)
    out_dir, checkpoint_path = Path(out_dir), Path(checkpoint_path)
    key = f"finetunes.{name}"  # how errors name the entry
    recipe_name, recipe, overrides = recipe_from_config(finetune_config, key)
    seed = int(finetune_config.get("seed", 0))
    checkpoint_every = int(finetune_config.get("checkpoint_every", 50))
    torch_device = vae.pick_device(device)
    model, pretrained_record = vae.load_vae(pretrained, torch_device, **(vae_options or {}))
    if pretrained_record["posterior"] != "gaussian":  # the recipes' loss samples the posterior and weighs its KL
        raise ValueError(f"config key {key}.vae: {pretrained} is an {pretrained_record['family']}, whose encoder "
                         "has no posterior to sample; the fine-tune recipes train an AutoencoderKL")
    antialias.antialias_encoder(model, recipe.blur)  # no filter below 2 taps; the weights are the pretrained ones
    model = encode.prepare_model(model, torch_device)  # the fast layout (channels_last on CPU); saved unaffected
    train_frames, train_digest = read_split_frames(train_frames_path)
    val_frames, val_digest = read_split_frames(val_frames_path)
    batch_size_eval = encode.resolve_batch_size(model, torch_device, batch_size_eval, val_frames.shape[1:3],
                                                pretrained_record)["batch_size"]
    guard = encode.NonFiniteGuard()  # the validations' half-precision batches that needed float32
    downsampling = vae.downsampling(model.config)
    settings = {"recipe": recipe_name, **dataclasses.asdict(recipe), "seed": seed}
    identity = _identity(settings, pretrained_record["sha256"], train_digest, val_digest)

    torch.manual_seed(seed)
    parameters = trainable_parameters(model, recipe)
    ema = copy.deepcopy(model).requires_grad_(False) if recipe.ema_decay is not None else None
    optimizer = make_optimizer(parameters, recipe)
    generator = torch.Generator(torch_device).manual_seed(seed)  # the posterior samples
    steps_per_epoch = math.ceil(len(train_frames) / recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    step, step_rows, epoch_rows, resumes, seconds_before = 0, [], [], [], 0.0

    remove(partial_path(checkpoint_path))  # a checkpoint whose write was killed; the last whole one stays
    resumed = _resume(checkpoint_path, identity, total_steps, model, ema, optimizer, generator)
    if resumed is not None:
        step, step_rows, epoch_rows, resumes, seconds_before = resumed

    evaluated = ema if ema is not None else model
    # A frozen encoder gives the val frames the same posterior every epoch (its EMA copy too): encoded once.
    dtype = pretrained_record["dtype"]  # the base VAE's entry: what it runs in on CUDA
    val_means = (encode.encode_frames(evaluated, val_frames, torch_device, batch_size_eval, dtype, guard)[0]
                 if recipe.trainable == "decoder" else None)
    if not epoch_rows:  # epoch 0: the pretrained model, the baseline every later epoch is read against
        epoch_rows.append({"epoch": 0, "step": 0, **validate(evaluated, val_frames, torch_device, batch_size_eval,
                                                             val_means, dtype, guard),
                           "evaluated": "ema" if ema is not None else "model"})
    started = time.time() - seconds_before

    def checkpoint_state() -> dict:
        return {"model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(), "step": step, "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "step_rows": step_rows, "epoch_rows": epoch_rows,
                "resumes": resumes, "seconds": time.time() - started, "identity": identity,
                "config": {**settings, "finetune_config": finetune_config}}

    last_saved = step or None  # a resumed run's checkpoint is the last good one
    model.train()
    # A log file is not a terminal: a line every 30 s there, not every 0.1 s.
    progress = tqdm(total=total_steps, initial=step, desc=f"finetune ({recipe_name})", unit="step",
                    mininterval=0.1 if sys.stderr.isatty() else 30)
    batches, batches_epoch = [], None
    while step < total_steps:
        epoch, batch_index = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:  # one permutation an epoch, not one a step
            batches, batches_epoch = epoch_batches(len(train_frames), recipe.batch_size, seed, epoch), epoch
        indices = batches[batch_index]
        batch = crop_batch(train_frames[indices], recipe.crop, seed, step)
        x = encode.to_model_input(batch, torch_device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, recipe)
        # drawn from (seed, step) alone, so a resumed run draws what the killed one would have
        transform = (sample_transform(recipe, downsampling, np.random.default_rng([seed, step, 2]))
                     if recipe.equivariance_weight else None)
        shift = (sample_subcell_shift(downsampling, np.random.default_rng([seed, step, 3]))
                 if recipe.encoder_shift_weight else None)
        with encode.autocast_for(torch_device, dtype):
            terms = loss_terms(model, x, recipe, generator, transform, shift)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip or math.inf)
        if not (torch.isfinite(terms["loss"]) and torch.isfinite(grad_norm)):
            kept = (f"the last good checkpoint (step {last_saved}) is kept at {checkpoint_path}" if last_saved
                    else "no checkpoint had been written yet")
            raise NonFiniteLossError(
                f"finetune: non-finite training at step {step + 1} (epoch {epoch + 1}): loss {terms['loss'].item()}, "
                f"reconstruction MSE {terms['reconstruction_mse'].item()}, KL {terms['kl'].item()}, gradient norm "
                f"{grad_norm.item()}. No model was written; {kept}. Lower {key}.lr or set {key}.grad_clip and "
                "rerun (a changed setting starts over).")
        optimizer.step()
        if ema is not None:
            update_ema(ema, model, ema_decay_at(step, recipe.ema_decay))
        step += 1
        step_rows.append({"step": step, "epoch": epoch + 1, "lr": learning_rate(step - 1, recipe),
                          **{key: value.item() for key, value in terms.items()},
                          **({"transform": transform.describe()} if transform is not None else {}),
                          **({"encoder_shift": shift.describe()} if shift is not None else {}),
                          "grad_norm": float(grad_norm),
                          "seconds": round(time.time() - started, 3)})
        progress.update(1)
        progress.set_postfix(loss=f"{step_rows[-1]['loss']:.4g}", kl=f"{step_rows[-1]['kl']:.4g}", refresh=False)
        if step % steps_per_epoch == 0 or step == total_steps:
            model.eval()
            epoch_rows.append({"epoch": epoch + 1, "step": step,
                               **validate(evaluated, val_frames, torch_device, batch_size_eval, val_means, dtype,
                                          guard),
                               "evaluated": "ema" if ema is not None else "model"})
            model.train()
            print(f"epoch {epoch + 1}: val PSNR {epoch_rows[-1]['val_psnr']:.2f} dB, SSIM "
                  f"{epoch_rows[-1]['val_ssim']:.4f}, loss {step_rows[-1]['loss']:.4g}", flush=True)
        if step % checkpoint_every == 0 or step % steps_per_epoch == 0 or step == total_steps:
            save_checkpoint(checkpoint_path, checkpoint_state())
            last_saved = step
        if on_step is not None:
            on_step(step, model)
    progress.close()
    run = {"name": name, "recipe": recipe_name, "settings": settings, "overrides": overrides,
           "pretrained": pretrained_record, "resumes": resumes, "checkpoint": checkpoint_path, "device": torch_device,
           "guard": guard, "data": {"train": str(train_frames_path), "train_frames": len(train_frames),
                                    "val": str(val_frames_path), "val_frames": len(val_frames)}}
    return _write_outputs(out_dir, evaluated, step_rows, epoch_rows, run)


def _write_outputs(out_dir: Path, evaluated, step_rows: list, epoch_rows: list, run: dict) -> dict:
    """The model folder: the weights ``evaluated``, the training tables, the loss curve and finetune.json, whose
    record ``run`` holds the rest of (name, recipe, settings, overrides, pretrained record, resumes, checkpoint,
    device, the validation's non-finite guard, the data)."""
    recipe_name, settings, torch_device = run["recipe"], run["settings"], run["device"]
    out_dir.mkdir(parents=True, exist_ok=True)
    # Saved in the default layout: the same bytes whichever layout trained it, and what safetensors expects.
    evaluated.to(memory_format=torch.contiguous_format).save_pretrained(out_dir, safe_serialization=True)
    steps, epochs = pd.DataFrame(step_rows), pd.DataFrame(epoch_rows)
    steps.to_csv(out_dir / "training_steps.csv", index=False, float_format="%.6g")
    epochs.to_csv(out_dir / "training_epochs.csv", index=False, float_format="%.6g")
    figure = plot_curves(steps, epochs, f"fine-tune, recipe {recipe_name}")
    figure.savefig(out_dir / "loss_curve.png", dpi=100)
    plt.close(figure)
    record = {
        "name": run["name"],
        "purpose": PURPOSES[recipe_name],
        "recipe": recipe_name,
        "overrides": run["overrides"],
        "pretrained": {key: value for key, value in run["pretrained"].items() if key != "config"},
        "data": run["data"],
        "steps": int(steps["step"].iloc[-1]) if len(steps) else 0,
        "resumed_at_steps": run["resumes"],
        "checkpoint": str(run["checkpoint"]),
        "saved_weights": epoch_rows[-1]["evaluated"],
        "pretrained_val": epoch_rows[0],
        "final_val": epoch_rows[-1],
        "validation_non_finite": run["guard"].record(),
        "provenance": store.provenance("finetune", {**settings, "device": torch_device.type,
                                                    "autocast": "bf16" if torch_device.type == "cuda" else
                                                    "none (float32)"}),
    }
    (out_dir / "finetune.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
