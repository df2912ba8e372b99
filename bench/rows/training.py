"""Training: the interpolation predictors against a bare training step (P10), and the fine-tune's step
against a bare one (P7's fine-tune ratio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import Row, Timer, batch_rate, cores, frames_store, pick_device


def p10_interp_training(quick: bool, tmp: Path) -> Row:
    """The learned interpolators' training loop (its per-epoch val check and early stopping included) against the
    bare forward + backward + step on the same batches."""
    import torch
    import torch.nn.functional as F

    from latent_interp import predictors, vae

    vae.prepare_torch(cores())
    device = pick_device()
    count, epochs = (64, 1) if quick else (512, 10)
    rng = np.random.default_rng(0)
    latents = torch.from_numpy(rng.standard_normal((count + count // 4, 3, 4, 32, 32)).astype(np.float32)).to(device)
    train = tuple(latents[:count, k] for k in range(3))
    val = tuple(latents[count:, k] for k in range(3))
    scale = float(torch.cat(train).std())
    # One untimed epoch first: the first model on a device pays its one-time set-up (CUDA context, cuBLAS handles).
    predictors.train_network("mlp", {"hidden": 8, "lr": 1e-3, "batch_size": 32, "epochs": 1, "patience": 2,
                                     "weight_decay": 0.0}, train, val, scale, seed=0)
    ratios, details = {}, {}
    for name in ("mlp", "unet"):
        settings = {"mlp": {"hidden": 256}, "unet": {"channels": [32, 64]}}[name]
        settings.update(lr=1e-3, batch_size=32, epochs=epochs, patience=epochs + 1, weight_decay=0.0)
        with Timer() as stage:
            predictors.train_network(name, settings, train, val, scale, seed=0)
        model = predictors.build_predictor(name, settings, tuple(train[0].shape[1:]), scale).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(0)).to(device)
        batches = [order[start:start + 32] for start in range(0, count, 32)]

        def step(batch):
            loss = F.mse_loss(model(train[0][batch], train[2][batch]) / scale, train[1][batch] / scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        bare_seconds = epochs * len(batches) / batch_rate(step, batches, repeats=epochs)
        ratios[name] = bare_seconds / stage.seconds
        details[name] = {"stage_seconds": stage.seconds, "bare_seconds": bare_seconds}
    worst = min(ratios.values())
    return Row("P10", "interpolator training / bare forward+backward+step, same batches", worst, ">= 0.85",
               worst >= 0.85, ", ".join(f"{name} {ratio:.2f}" for name, ratio in ratios.items()),
               {"device": str(device), "train_triplets": count, "epochs": epochs, **details})

def finetune_step_ratio(model_dir: Path, device, tmp: Path, triplets: np.ndarray, steps: int = 24):
    """Median time of a fine-tune step (the default recipe, through ``finetune.finetune``) against the bare
    forward + backward + optimizer step of the same loss on batches of the same shape, already on the device."""
    import time

    from latent_interp import encode, finetune, recipes, vae
    from latent_interp.settings import VaeRun

    train = frames_store(tmp / "ft-train.zarr", triplets)
    val = frames_store(tmp / "ft-val.zarr", triplets[:2])
    recipe_name, recipe, _ = recipes.recipe_from_config({"recipe": "default"})
    frames = 3 * len(triplets)
    epochs = max(1, -(-steps // -(-frames // recipe.batch_size)))
    stamps = []
    finetune.finetune(inputs=finetune.FinetuneInputs(train, val), model_dir=tmp / "ft-out", checkpoint=tmp / "ft.pt",
                      base=VaeRun(model_dir, device=device.type),
                      settings={"recipe": "default", "epochs": epochs, "checkpoint_every": 10**9}, threads=cores(),
                      on_step=lambda step, model: stamps.append(time.perf_counter()))
    per_epoch = -(-frames // recipe.batch_size)
    # Steps that end an epoch also validate and checkpoint: that is epoch work, not the step's.
    step_seconds = [later - earlier for index, (earlier, later) in enumerate(zip(stamps, stamps[1:]), start=2)
                    if index % per_epoch != 0]
    model = encode.prepare_model(vae.load_vae(model_dir, device)[0], device)  # as finetune.finetune runs it
    parameters = finetune.trainable_parameters(model, recipe)
    optimizer = finetune.make_optimizer(parameters, recipe)
    model.train()
    crop = recipe.crop or triplets.shape[2]
    flat = triplets.reshape(-1, *triplets.shape[2:])[:, :crop, :crop]
    batches = [encode.to_model_input(flat[start:start + recipe.batch_size], device)
               for start in range(0, len(flat) - recipe.batch_size + 1, recipe.batch_size)]

    def step(x):
        with encode.autocast_for(device):
            loss = finetune.loss_terms(model, x, recipe)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    bare_seconds = 1 / batch_rate(step, batches)
    median = float(np.median(step_seconds))
    return bare_seconds / median, {"median_step_seconds": median, "bare_step_seconds": bare_seconds,
                                   "steps_timed": len(step_seconds), "recipe": recipe_name,
                                   "batch_size": recipe.batch_size, "crop": recipe.crop}
