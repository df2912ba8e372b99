"""Learned predictors of the middle frame's latent from the outer two: ``linear``, ``mlp``, ``unet`` and ``flow_unet``.

Every predictor works on latents divided by one scale (the standard deviation of the train latents, so that the
networks see unit-sized inputs whatever the VAE) and predicts the residual from the lerp at the triplet's time t
(``(1 - t) latent1 + t latent3``): its last layer starts at zero, so an untrained predictor *is* ``latent_lerp``,
and training can only be kept where it beats lerp on val (epoch 0 in the training table is lerp itself). t enters
the residual as (t - 1/2) times a learned vector added to the networks' first layer (``time_weight``), and as
(t - 1/2) times a second patch map in ``linear`` (``time_conv``); both start at zero and add nothing at t = 1/2, so
on triplets at their midpoint a predictor trains and predicts as one without them.

``linear``  one linear map from the ``patch`` x ``patch`` neighbourhood of (latent1, latent3) at a position to
            latent2 there, shared by all positions (a convolution), fitted in closed form by ridge regression; the
            ridge strength is the one of ``ridge_lambdas`` (in units of the mean diagonal of X^T X, so that it
            does not depend on the latents' scale or count) with the lowest val MSE.
``mlp``     the flattened pair -> two hidden GELU layers of ``hidden`` units -> the flattened residual.
``unet``    a two-level convolutional UNet on the 2C-channel pair (``channels`` per level) -> the residual.
``flow_unet`` the same UNet on what motion gives: latent1 and latent3 warped to the middle along the estimated flow,
            the lerp midpoint, the latent-grid flows F_t->1, F_t->3 (in cells), the blend weight and the still mask
            -> the residual from ``latent_flow`` (``latent_interp.warp``): untrained, it *is* latent_flow (its epoch
            0). It reads the flow stores of the train and val splits (rule flow), never another split's, and warps
            at each triplet's t.
The networks train with Adam on the latent MSE (the seed's objective), shuffled with a fixed seed, and stop
early: the weights kept are those of the epoch with the lowest val MSE, and training ends after ``patience`` epochs
without a new best. With ``augment_time_reversal``, every train triplet is also used backwards ((latent3, latent1)
at 1 - t -> latent2), as the drawing at t from frame 1 is the drawing at 1 - t from frame 3. Each triplet's t comes
from its split's frames store (``interp.time: midpoint``: 1/2 for every triplet, the study's first behaviour).

Leak-free by construction: ``train_predictors`` reads only the train and val latents stores, their frames stores'
times, and their flow stores for ``flow_unet`` (the workflow's rule has no other input), refuses splits that share a
triplet, and saves the exact names it fitted and selected on.

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
from latent_interp.settings import at_true_time

LATENT_PREDICTORS = ("linear", "mlp", "unet")  # read latent1 and latent3 only
FLOW_PREDICTORS = ("flow_unet",)  # also read the estimated flow on the latent grid
PREDICTORS = LATENT_PREDICTORS + FLOW_PREDICTORS
MOTION_CHANNELS = 6  # F_t->1 and F_t->3 (x, y in latent cells), the weight of end 1, the still mask
DEFAULTS = {name: schema.defaults(f"interp.{name}") for name in PREDICTORS}  # config interp.<name>'s defaults


def time_tensor(times, first: torch.Tensor) -> torch.Tensor:
    """t per triplet [B] (``times``: None for the midpoint, a number, or one per triplet), on ``first``'s device and
    dtype."""
    if times is None or isinstance(times, (int, float)):
        return torch.full((len(first),), warp.T_MIDDLE if times is None else float(times), dtype=first.dtype,
                          device=first.device)
    return torch.as_tensor(times, dtype=first.dtype, device=first.device).reshape(-1)


def time_offsets(times, first: torch.Tensor) -> torch.Tensor:
    """t - 1/2 per triplet [B] (``time_tensor``): what the time weights multiply."""
    return time_tensor(times, first) - warp.T_MIDDLE


def _with_time(output: torch.Tensor, offsets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A first layer's ``output`` [B, K, ...] plus (t - 1/2) ``weight`` [K] (module docstring)."""
    spatial = [1] * (output.dim() - 2)
    return output + offsets.reshape(-1, 1, *spatial) * weight.reshape(1, -1, *spatial)


class Predictor(torch.nn.Module):
    """latent1, latent3 [B, C, h, w] at times t [B] -> latent2: the lerp at t plus ``residual`` of the scaled pair."""

    def __init__(self, residual: torch.nn.Module, scale: float):
        super().__init__()
        self.residual = residual
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, first: torch.Tensor, third: torch.Tensor, times=None) -> torch.Tensor:
        pair = torch.cat([first, third], dim=1) / self.scale
        base = warp.lerp(first, third, warp.times_of(times, first))
        return base + self.residual(pair, time_offsets(times, first)) * self.scale


class FlowPredictor(torch.nn.Module):
    """latent1, latent3, the latent-grid motion at t and the times t -> latent2: ``latent_flow`` at t plus
    ``residual`` of the scaled warped pair, the scaled lerp at t and the motion."""

    def __init__(self, residual: torch.nn.Module, scale: float):
        super().__init__()
        self.residual = residual
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, first, third, flow_t1, flow_t3, weight_1, still, times=None):
        t = warp.times_of(times, first)
        base = warp.warp_blend(first, third, flow_t1, flow_t3, weight_1, still, t)
        warped = torch.cat([warp.backward_warp(first, flow_t1), warp.backward_warp(third, flow_t3),
                            warp.lerp(first, third, t)], dim=1) / self.scale
        return base + self.residual(torch.cat([warped, flow_t1, flow_t3, weight_1, still], dim=1),
                                    time_offsets(times, first)) * self.scale


class PatchLinear(torch.nn.Module):
    """The patch map, plus (t - 1/2) times a second one (``time_conv``): linear in the pair, with t it can move the
    in-between along the motion (a term like (t - 1/2)(latent3 - latent1)), which a shift alone could not once the
    fit sees every triplet backwards too (the reversal flips t - 1/2, so a plain shift is fitted to zero)."""

    def __init__(self, channels: int, patch: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(2 * channels, channels, patch, padding=patch // 2)
        self.time_conv = torch.nn.Conv2d(2 * channels, channels, patch, padding=patch // 2, bias=False)
        for weight in (self.conv.weight, self.conv.bias, self.time_conv.weight):
            torch.nn.init.zeros_(weight)

    def forward(self, pair, offsets):
        return self.conv(pair) + offsets.reshape(-1, 1, 1, 1) * self.time_conv(pair)


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
        # made after the layers, so that they draw the same initial weights as they would without it
        self.time_weight = torch.nn.Parameter(torch.zeros(hidden))

    def forward(self, pair, offsets):
        first = _with_time(self.layers[0](pair.flatten(1)), offsets, self.time_weight)
        return self.layers[1:](first).view(len(pair), *self.latent_shape)


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
        self.time_weight = torch.nn.Parameter(torch.zeros(first))  # after the layers, as FlatMLP's

    def forward(self, pair, offsets):
        high = self.down[1:](_with_time(self.down[0](pair), offsets, self.time_weight))
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
def predict(model, first: torch.Tensor, third: torch.Tensor, *motion: torch.Tensor, times=None,
            batch_size: int = 256) -> torch.Tensor:
    """latent2 of every (latent1, latent3) pair at ``times`` (None: the midpoint; or one per pair); ``motion``
    (F_t->1, F_t->3, weight, still on the latent grid, at those times) for a flow predictor."""
    model.eval()
    inputs = (first, third, *motion, time_tensor(times, first))
    return torch.cat([model(*(x[i:i + batch_size] for x in inputs))
                      for i in range(0, len(first), batch_size)]) if len(first) else first.clone()


def fit_linear(settings: dict, train: tuple, val: tuple, scale: float,
               times: tuple = (None, None)) -> tuple[Predictor, list[dict]]:
    """Closed-form ridge of the patch map on every train position; the ridge strength chosen on val. ``times``: the
    train and val triplets' t (None: the midpoint). The time map (``PatchLinear``) is fitted with it, on the patch
    features times t - 1/2, where some train triplet is off the midpoint; otherwise those features are zero
    everywhere and it stays zero. Each block is shrunk in units of its own mean variance; the bias is not."""
    first, second, third = train
    train_times, val_times = (time_tensor(t, latents) for t, latents in zip(times, (first, val[0])))
    offsets = train_times - warp.T_MIDDLE
    timed = bool(offsets.any())
    model = build_predictor("linear", settings, tuple(first.shape[1:]), scale).to(first.device)
    patch, channels = settings["patch"], first.shape[1]
    gram = cross = None
    for start in range(0, len(first), 64):  # normal equations, accumulated in float64 a few triplets at a time
        batch = slice(start, start + 64)
        pair = torch.cat([first[batch], third[batch]], dim=1) / scale
        features = F.unfold(pair, patch, padding=patch // 2).transpose(1, 2)  # [b, positions, features]
        extra = [offsets[batch, None, None] * features] if timed else []
        features = torch.cat([features, *extra, torch.ones(*features.shape[:2], 1, device=features.device)], dim=2)
        features = features.reshape(-1, features.shape[-1]).double()
        lerp = warp.lerp(first[batch], third[batch], warp.times_of(train_times[batch], first))
        residual = (second[batch] - lerp) / scale
        targets = residual.permute(0, 2, 3, 1).reshape(-1, channels).double()
        gram = features.T @ features if gram is None else gram + features.T @ features
        cross = features.T @ targets if cross is None else cross + features.T @ targets
    size = 2 * channels * patch ** 2
    diagonal = torch.diagonal(gram)
    unit = torch.zeros(len(gram), dtype=gram.dtype, device=gram.device)  # the bias (last) is not shrunk
    unit[:size] = float(diagonal[:size].mean())
    if timed:
        unit[size:2 * size] = float(diagonal[size:2 * size].mean())
    rows, best = [], None
    for relative in settings["ridge_lambdas"]:
        solution = torch.linalg.solve(gram + torch.diag(unit * relative), cross)
        shape = (channels, 2 * channels, patch, patch)
        model.residual.conv.weight.data = solution[:size].T.reshape(shape).float()
        model.residual.conv.bias.data = solution[-1].float()
        if timed:
            model.residual.time_conv.weight.data = solution[size:2 * size].T.reshape(shape).float()
        val_mse = latent_mse(predict(model, val[0], val[2], times=val_times), val[1])
        rows.append({"predictor": "linear", "epoch": 1, "ridge_lambda": relative,
                     "train_mse": latent_mse(predict(model, first, third, times=train_times), second),
                     "val_mse": val_mse})
        if best is None or val_mse < best[0]:
            best = (val_mse, relative, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    for row in rows:
        row["selected"] = row["ridge_lambda"] == best[1]
    return model, rows


def train_network(name: str, settings: dict, train: tuple, val: tuple, scale: float, seed: int,
                  times: tuple = (None, None)) -> tuple[torch.nn.Module, list[dict]]:
    """Adam on the latent MSE with early stopping on val; the weights of the best val epoch are kept. ``train`` and
    ``val``: (latent1, latent2, latent3, *motion), motion for a flow predictor only; ``times``: their triplets' t
    (None: the midpoint)."""
    first, second, third, *motion = train
    inputs = (first, third, *motion, time_tensor(times[0], first))
    val_inputs = (val[0], val[2], *val[3:], time_tensor(times[1], val[0]))
    torch.manual_seed(seed)  # the initial weights
    model = build_predictor(name, settings, tuple(first.shape[1:]), scale).to(first.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    generator = torch.Generator().manual_seed(seed)  # the batch order, on the CPU whatever the device
    best_mse = latent_mse(predict(model, *val_inputs[:-1], times=val_inputs[-1]), val[1])  # epoch 0: lerp or
    rows = [{"predictor": name, "epoch": 0,  # latent_flow (the zero residual)
             "train_mse": latent_mse(predict(model, *inputs[:-1], times=inputs[-1]), second),
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
        val_mse = latent_mse(predict(model, *val_inputs[:-1], times=val_inputs[-1]), val[1])
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


def read_latent_motion(flow_path, names: list[str], downsampling: int, device: torch.device,
                       times: np.ndarray | None = None) -> tuple:
    """(F_t->1, F_t->3, weight of end 1, still) on the latent grid for every triplet of a flow store holding
    ``names``, at their ``times`` (None: the midpoint)."""
    from latent_interp import flow  # the flow stage's reader; only flow predictors need it

    group = store.open_store(flow_path, "flow")
    if store.names(group) != names:
        raise ValueError(f"{flow_path} holds other triplets than the latents store of its split: rerun rule flow")
    parts = []
    for start, stop in store.chunk_ranges(group["flow_ends"]):
        motion = flow.motion_inputs(flow.read_rows(group, start, stop), "estimated", dict(group.attrs["flow"]),
                                    None if times is None else times[start:stop])
        parts.append(warp.motion_to_latent_grid(motion, downsampling))
    if not parts:
        return ()
    return tuple(torch.cat([p[k] for p in parts]).to(device) for k in range(4))


def triplet_times(frames_path, names: list[str], time=True) -> np.ndarray | None:
    """Each triplet's t from its split's frames store, in the order of ``names`` (the latents store's); None (the
    midpoint) where ``time`` (config ``interp.time``, ``at_true_time``) is ``midpoint``."""
    if not at_true_time(time):
        return None
    group = store.open_store(frames_path, "frames")
    if store.names(group) != names:
        raise ValueError(f"{frames_path} holds other triplets than the latents store of its split: rerun rule encode")
    return warp.snapped(store.middle_times(group))


def train_predictors(*, train, val, predictors, settings: dict, frames: tuple | list = (), device: str = "auto",
                     threads: int = 1, flow: tuple | list = ()) -> dict:
    """Rule interp_train: fit every predictor of ``settings`` (config interp's) on the latents store ``train``,
    select on ``val``, save them in the folder ``predictors`` (module docstring). ``frames``: the (train, val) frames
    stores, for each triplet's t (none: every triplet at the midpoint); ``flow``: the (train, val) flow stores, needed
    by ``flow_unet``."""
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
    time = interp_config.get("time", True)
    train_times, val_times = ((triplet_times(path, names, time) if frames else None)
                              for path, names in zip(tuple(frames) or (None, None), (train_names, val_names)))
    train_motion = val_motion = ()
    if any(name in FLOW_PREDICTORS for name in settings_by_name):
        if not flow_paths:
            raise ValueError("config key interp.predictors: flow_unet reads the train and val flow stores (rule "
                             "flow), and none were given")
        downsampling = int(train_vae.get("downsampling", 8))
        train_motion = read_latent_motion(flow_paths[0], train_names, downsampling, torch_device, train_times)
        val_motion = read_latent_motion(flow_paths[1], val_names, downsampling, torch_device, val_times)
    scale = float(torch.cat(train).std())
    reverse = interp_config.get("augment_time_reversal", True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = interp_config.get("seed", 0)
    records, rows = {}, []
    for name, settings in settings_by_name.items():
        motion = (train_motion, val_motion) if name in FLOW_PREDICTORS else ((), ())
        fit_data, fit_times = (*train, *motion[0]), train_times
        if reverse:  # backwards at 1 - t: the ends swap, so do their flows, and the weight of end 1 becomes end 3's
            flows = motion[0]
            backwards = (train[2], train[1], train[0],
                         *((flows[1], flows[0], 1 - flows[2], flows[3]) if flows else ()))
            fit_data = tuple(torch.cat([a, b]) for a, b in zip(fit_data, backwards))
            fit_times = None if train_times is None else np.concatenate([train_times, 1 - train_times])
        if name == "linear":
            model, name_rows = fit_linear(settings, fit_data, val, scale, times=(fit_times, val_times))
        else:
            model, name_rows = train_network(name, settings, fit_data, (*val, *motion[1]), scale, seed,
                                             times=(fit_times, val_times))
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
              "augment_time_reversal": reverse, "time": "midpoint" if train_times is None else "true",
              "vae": train_vae,
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
