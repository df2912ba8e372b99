"""Learned predictors of the middle frame's latent from the outer two: ``linear``, ``mlp``, ``unet`` and ``flow_unet``.

Every predictor works on latents divided by one scale (the standard deviation of the train latents, so that the
networks see unit-sized inputs whatever the VAE) and predicts the residual from the lerp midpoint: its last layer
starts at zero, so an untrained predictor *is* ``latent_lerp``, and training can only be kept where it beats lerp on
val (epoch 0 in the training table is lerp itself).

``linear``  one linear map from the ``patch`` x ``patch`` neighbourhood of (latent1, latent3) at a position to
            latent2 there, shared by all positions (a convolution), fitted in closed form by ridge regression; the
            ridge strength is the one of ``ridge_lambdas`` (in units of the mean diagonal of X^T X, so that it
            does not depend on the latents' scale or count) with the lowest val MSE.
``mlp``     the flattened pair -> two hidden GELU layers of ``hidden`` units -> the flattened residual.
``unet``    a two-level convolutional UNet on the 2C-channel pair (``channels`` per level) -> the residual.
``flow_unet`` the same UNet on what motion gives: latent1 and latent3 warped to the middle along the estimated flow,
            the lerp midpoint, the latent-grid flows F_t->1, F_t->3 (in cells), the blend weight and the still mask
            -> the residual from ``latent_flow`` (``latent_interp.warp``): untrained, it *is* latent_flow (its epoch
            0). It reads the flow stores of the train and val splits (rule flow), never another split's.
The networks train with Adam on the latent MSE (the seed's objective), shuffled with a fixed seed, and stop
early: the weights kept are those of the epoch with the lowest val MSE, and training ends after ``patience`` epochs
without a new best. With ``augment_time_reversal``, every train triplet is also used backwards ((latent3, latent1)
-> latent2), as the middle of a triplet is the middle both ways.

Leak-free by construction: ``train_predictors`` reads only the train and val latents stores, and their flow stores for
``flow_unet`` (the workflow's rule has no other input), refuses splits that share a triplet, and saves the exact names
it fitted and selected on.

Output folder (``results/predictors/{model}``):
    ``{name}.safetensors``  the weights of each predictor
    ``training.csv``        ``predictor, epoch, ridge_lambda, train_mse, val_mse, selected``: one row per epoch (per
                           ridge strength for ``linear``); MSEs in latent units (unscaled latents), epoch 0 = lerp
                           (latent_flow for flow_unet)
    ``predictors.json``     per predictor its settings and what was selected; the scale, latent shape, the latents'
                           VAE record, the flow stores read (``flow``), ``trained_on`` (train names) and
                           ``selected_on`` (val names), versions
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from latent_interp import schema, store, vae, warp

LATENT_PREDICTORS = ("linear", "mlp", "unet")  # read latent1 and latent3 only
FLOW_PREDICTORS = ("flow_unet",)  # also read the estimated flow on the latent grid
PREDICTORS = LATENT_PREDICTORS + FLOW_PREDICTORS
MOTION_CHANNELS = 6  # F_t->1 and F_t->3 (x, y in latent cells), the weight of end 1, the still mask
DEFAULTS = {name: schema.defaults(f"interp.{name}") for name in PREDICTORS}  # config interp.<name>'s defaults


class Predictor(torch.nn.Module):
    """latent1, latent3 [B, C, h, w] -> latent2: the lerp midpoint plus ``residual`` of the scaled pair."""

    def __init__(self, residual: torch.nn.Module, scale: float):
        super().__init__()
        self.residual = residual
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, first: torch.Tensor, third: torch.Tensor) -> torch.Tensor:
        pair = torch.cat([first, third], dim=1) / self.scale
        return (first + third) / 2 + self.residual(pair) * self.scale


class FlowPredictor(torch.nn.Module):
    """latent1, latent3 and the latent-grid motion -> latent2: ``latent_flow`` plus ``residual`` of the scaled warped
    pair, the scaled lerp midpoint and the motion."""

    def __init__(self, residual: torch.nn.Module, scale: float):
        super().__init__()
        self.residual = residual
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, first, third, flow_t1, flow_t3, weight_1, still):
        base = warp.warp_blend(first, third, flow_t1, flow_t3, weight_1, still)
        warped = torch.cat([warp.backward_warp(first, flow_t1), warp.backward_warp(third, flow_t3),
                            (first + third) / 2], dim=1) / self.scale
        return base + self.residual(torch.cat([warped, flow_t1, flow_t3, weight_1, still], dim=1)) * self.scale


class PatchLinear(torch.nn.Module):
    def __init__(self, channels: int, patch: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(2 * channels, channels, patch, padding=patch // 2)
        torch.nn.init.zeros_(self.conv.weight)
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, pair):
        return self.conv(pair)


class FlatMLP(torch.nn.Module):
    def __init__(self, latent_shape: tuple[int, int, int], hidden: int):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        size = int(np.prod(latent_shape))
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(2 * size, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden), torch.nn.GELU(),
            torch.nn.Linear(hidden, size))
        torch.nn.init.zeros_(self.layers[-1].weight)
        torch.nn.init.zeros_(self.layers[-1].bias)

    def forward(self, pair):
        return self.layers(pair.flatten(1)).view(len(pair), *self.latent_shape)


def _conv_block(inputs: int, outputs: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Conv2d(inputs, outputs, 3, padding=1), torch.nn.GELU(),
                               torch.nn.Conv2d(outputs, outputs, 3, padding=1), torch.nn.GELU())


class SmallUNet(torch.nn.Module):
    def __init__(self, inputs: int, outputs: int, widths: tuple[int, int]):
        super().__init__()
        first, second = widths
        self.down, self.bottom = _conv_block(inputs, first), _conv_block(first, second)
        self.up = _conv_block(first + second, first)
        self.out = torch.nn.Conv2d(first, outputs, 1)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def forward(self, pair):
        high = self.down(pair)
        low = self.bottom(F.avg_pool2d(high, 2, ceil_mode=True))  # ceil_mode: odd latent sizes work too
        up = F.interpolate(low, size=high.shape[-2:], mode="nearest")
        return self.out(self.up(torch.cat([high, up], dim=1)))


def build_predictor(name: str, settings: dict, latent_shape: tuple[int, int, int], scale: float):
    channels = latent_shape[0]
    if name == "linear":
        residual = PatchLinear(channels, settings["patch"])
    elif name == "mlp":
        residual = FlatMLP(latent_shape, settings["hidden"])
    elif name == "unet":
        residual = SmallUNet(2 * channels, channels, tuple(settings["channels"]))
    elif name == "flow_unet":
        residual = SmallUNet(3 * channels + MOTION_CHANNELS, channels, tuple(settings["channels"]))
        return FlowPredictor(residual, scale)
    else:
        raise ValueError(f"config key interp.predictors: unknown predictor {name!r} (choose from {PREDICTORS})")
    return Predictor(residual, scale)


def predictor_settings(interp_config: dict) -> dict[str, dict]:
    """Each configured predictor's settings: the defaults overridden by ``interp.<name>``."""
    return {name: {**DEFAULTS[name], **interp_config.get(name, {})} for name in interp_config["predictors"]}


def latent_mse(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    return float(((predicted - truth) ** 2).mean())


@torch.no_grad()
def predict(model, first: torch.Tensor, third: torch.Tensor, *motion: torch.Tensor,
            batch_size: int = 256) -> torch.Tensor:
    """latent2 of every (latent1, latent3) pair; ``motion`` (F_t->1, F_t->3, weight on the latent grid) for a flow
    predictor."""
    model.eval()
    inputs = (first, third, *motion)
    return torch.cat([model(*(x[i:i + batch_size] for x in inputs))
                      for i in range(0, len(first), batch_size)]) if len(first) else first.clone()


def fit_linear(settings: dict, train: tuple, val: tuple, scale: float) -> tuple[Predictor, list[dict]]:
    """Closed-form ridge of the patch map on every train position; the ridge strength chosen on val."""
    first, second, third = train
    model = build_predictor("linear", settings, tuple(first.shape[1:]), scale).to(first.device)
    patch, channels = settings["patch"], first.shape[1]
    gram = cross = None
    for start in range(0, len(first), 64):  # normal equations, accumulated in float64 a few triplets at a time
        pair = torch.cat([first[start:start + 64], third[start:start + 64]], dim=1) / scale
        features = F.unfold(pair, patch, padding=patch // 2).transpose(1, 2).reshape(-1, 2 * channels * patch ** 2)
        features = torch.cat([features, torch.ones(len(features), 1, device=features.device)], dim=1).double()
        residual = ((second[start:start + 64] - (first[start:start + 64] + third[start:start + 64]) / 2) / scale)
        targets = residual.permute(0, 2, 3, 1).reshape(-1, channels).double()
        gram = features.T @ features if gram is None else gram + features.T @ features
        cross = features.T @ targets if cross is None else cross + features.T @ targets
    size = gram.shape[0] - 1
    mean_variance = float(torch.diagonal(gram)[:size].mean())
    rows, best = [], None
    for relative in settings["ridge_lambdas"]:
        penalty = torch.eye(size + 1, dtype=gram.dtype, device=gram.device) * relative * mean_variance
        penalty[size, size] = 0  # the bias is not shrunk
        solution = torch.linalg.solve(gram + penalty, cross)
        model.residual.conv.weight.data = solution[:size].T.reshape(channels, 2 * channels, patch, patch).float()
        model.residual.conv.bias.data = solution[size].float()
        val_mse = latent_mse(predict(model, val[0], val[2]), val[1])
        rows.append({"predictor": "linear", "epoch": 1, "ridge_lambda": relative,
                     "train_mse": latent_mse(predict(model, first, third), second), "val_mse": val_mse})
        if best is None or val_mse < best[0]:
            best = (val_mse, relative, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    for row in rows:
        row["selected"] = row["ridge_lambda"] == best[1]
    return model, rows


def train_network(name: str, settings: dict, train: tuple, val: tuple, scale: float,
                  seed: int) -> tuple[torch.nn.Module, list[dict]]:
    """Adam on the latent MSE with early stopping on val; the weights of the best val epoch are kept. ``train`` and
    ``val``: (latent1, latent2, latent3, *motion), motion for a flow predictor only."""
    first, second, third, *motion = train
    inputs, val_inputs = (first, third, *motion), (val[0], val[2], *val[3:])
    torch.manual_seed(seed)  # the initial weights
    model = build_predictor(name, settings, tuple(first.shape[1:]), scale).to(first.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    generator = torch.Generator().manual_seed(seed)  # the batch order, on the CPU whatever the device
    best_mse = latent_mse(predict(model, *val_inputs), val[1])  # epoch 0: the zero residual (lerp or latent_flow)
    rows = [{"predictor": name, "epoch": 0, "train_mse": latent_mse(predict(model, *inputs), second),
             "val_mse": best_mse}]
    best_state, best_epoch, waited = copy.deepcopy(model.state_dict()), 0, 0
    for epoch in tqdm(range(1, settings["epochs"] + 1), desc=f"train {name}", unit="epoch"):
        model.train()
        order = torch.randperm(len(first), generator=generator).to(first.device)
        # Summed on the device (float64, as a Python float would): reading the loss every step would make the CPU
        # wait for the GPU at each step (bench P10).
        total = torch.zeros((), dtype=torch.float64, device=first.device)
        for start in range(0, len(order), settings["batch_size"]):
            batch = order[start:start + settings["batch_size"]]
            loss = F.mse_loss(model(*(x[batch] for x in inputs)) / scale, second[batch] / scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(batch)
        total = float(total)
        if not math.isfinite(total):
            raise FloatingPointError(f"predictor {name}: the training loss became {total} in epoch {epoch}")
        val_mse = latent_mse(predict(model, *val_inputs), val[1])
        rows.append({"predictor": name, "epoch": epoch, "train_mse": total / len(first) * scale ** 2,
                     "val_mse": val_mse})
        if val_mse < best_mse:
            best_mse, best_state, best_epoch, waited = val_mse, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            waited += 1
            if waited >= settings["patience"]:
                break
    model.load_state_dict(best_state)
    for row in rows:
        row["selected"] = row["epoch"] == best_epoch
    return model, rows


def read_triplet_latents(path, device: torch.device) -> tuple[tuple, list[str], dict]:
    """(latent1, latent2, latent3) float32 tensors [N, C, h, w] of a latents store, its names and VAE record."""
    group = store.open_store(path, "latents")
    mean = torch.from_numpy(np.ascontiguousarray(group[store.MEAN][:])).to(device)
    return (mean[:, 0], mean[:, 1], mean[:, 2]), store.names(group), dict(group.attrs["vae"])


def read_latent_motion(flow_path, names: list[str], downsampling: int, device: torch.device) -> tuple:
    """(F_t->1, F_t->3, weight of end 1, still) on the latent grid for every triplet of a flow store holding
    ``names``."""
    from latent_interp import flow  # the flow stage's reader; only flow predictors need it

    group = store.open_store(flow_path, "flow")
    if store.names(group) != names:
        raise ValueError(f"{flow_path} holds other triplets than the latents store of its split: rerun rule flow")
    parts = []
    for start, stop in store.chunk_ranges(group["flow_ends"]):
        motion = flow.motion_inputs(flow.read_rows(group, start, stop), "estimated", dict(group.attrs["flow"]))
        parts.append(warp.motion_to_latent_grid(motion, downsampling))
    if not parts:
        return ()
    return tuple(torch.cat([p[k] for p in parts]).to(device) for k in range(4))


def train_predictors(*, train, val, predictors, settings: dict, device: str = "auto", threads: int = 1,
                     flow: tuple | list = ()) -> dict:
    """Rule interp_train: fit every predictor of ``settings`` (config interp's) on the latents store ``train``,
    select on ``val``, save them in the folder ``predictors`` (module docstring). ``flow``: the (train, val) flow
    stores, needed by ``flow_unet``."""
    train_path, val_path, out_dir, interp_config, flow_paths = train, val, predictors, settings, tuple(flow)
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    train, train_names, train_vae = read_triplet_latents(train_path, torch_device)
    val, val_names, val_vae = read_triplet_latents(val_path, torch_device)
    if train_vae["sha256"] != val_vae["sha256"]:
        raise ValueError(f"{train_path} and {val_path} were encoded by different VAEs")
    shared = sorted(set(train_names) & set(val_names))
    if shared:
        raise ValueError(f"{train_path} and {val_path} share triplets {shared[:5]}: val would not be held out")
    if len(train_names) < 1 or len(val_names) < 1:
        raise ValueError(f"the predictors need train and val triplets; found {len(train_names)} in {train_path} "
                         f"and {len(val_names)} in {val_path}")
    settings_by_name = predictor_settings(interp_config)
    train_motion = val_motion = ()
    if any(name in FLOW_PREDICTORS for name in settings_by_name):
        if not flow_paths:
            raise ValueError("config key interp.predictors: flow_unet reads the train and val flow stores (rule "
                             "flow), and none were given")
        downsampling = int(train_vae.get("downsampling", 8))
        train_motion = read_latent_motion(flow_paths[0], train_names, downsampling, torch_device)
        val_motion = read_latent_motion(flow_paths[1], val_names, downsampling, torch_device)
    scale = float(torch.cat(train).std())
    reverse = interp_config.get("augment_time_reversal", True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = interp_config.get("seed", 0)
    records, rows = {}, []
    for name, settings in settings_by_name.items():
        motion = (train_motion, val_motion) if name in FLOW_PREDICTORS else ((), ())
        fit_data = (*train, *motion[0])
        if reverse:  # backwards: the ends swap, so do their flows, and the weight of end 1 becomes that of end 3
            flows = motion[0]
            backwards = (train[2], train[1], train[0],
                         *((flows[1], flows[0], 1 - flows[2], flows[3]) if flows else ()))
            fit_data = tuple(torch.cat([a, b]) for a, b in zip(fit_data, backwards))
        if name == "linear":
            model, name_rows = fit_linear(settings, fit_data, val, scale)
        else:
            model, name_rows = train_network(name, settings, fit_data, (*val, *motion[1]), scale, seed)
        selected = next(row for row in name_rows if row["selected"])
        choice = f"ridge_lambda {selected['ridge_lambda']:g}" if name == "linear" else f"epoch {selected['epoch']}"
        print(f"{name}: selected {choice}, val latent MSE {selected['val_mse']:.5g}")
        save_file({k: v.contiguous().cpu() for k, v in model.state_dict().items()}, out_dir / f"{name}.safetensors")
        records[name] = {"settings": settings, "selected": selected,
                         "parameters": sum(p.numel() for p in model.parameters())}
        rows += name_rows
    table = pd.DataFrame(rows, columns=["predictor", "epoch", "ridge_lambda", "train_mse", "val_mse", "selected"])
    table.to_csv(out_dir / "training.csv", index=False, float_format="%.8g")
    record = {"predictors": records, "scale": scale, "latent_shape": list(train[0].shape[1:]), "seed": seed,
              "augment_time_reversal": reverse, "vae": train_vae,
              "train_latents": str(train_path), "val_latents": str(val_path),
              "flow": [str(p) for p in flow_paths] if flow_paths else None,
              "trained_on": train_names, "selected_on": val_names,
              "provenance": store.provenance("interp_train", {"device": torch_device.type, "seed": seed})}
    (out_dir / "predictors.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def load_predictors(folder, device: torch.device | str = "cpu") -> tuple[dict[str, Predictor], dict]:
    """Every predictor saved in ``folder``, in eval mode, and the folder's record."""
    record = json.loads((Path(folder) / "predictors.json").read_text())
    models = {}
    for name, entry in record["predictors"].items():
        model = build_predictor(name, entry["settings"], tuple(record["latent_shape"]), record["scale"])
        model.load_state_dict(load_file(Path(folder) / f"{name}.safetensors"))
        models[name] = model.to(device).eval()
    return models, record
