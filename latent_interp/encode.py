"""The two GPU stages: encode a frames store into a latents store, and decode a latents store into a recon store.

Both stream one store chunk at a time (memory does not grow with the split) and feed the model micro-batches of
``batch_size`` frames. On CUDA the VAE runs under bf16 autocast; on the CPU it runs in float32, which keeps two runs
bit-identical.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from tqdm import tqdm

from latent_interp import data, store, vae
from latent_interp.atomic import fault_point


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA; nothing on the CPU (float32 keeps reruns bit-identical)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def encode_frames(model, frames_uint8: np.ndarray, device: torch.device, batch_size: int):
    """uint8 [F, H, W, 3] -> posterior (mean, logvar), each float32 [F, C, h, w]."""
    means, logvars = [], []
    for start in range(0, len(frames_uint8), batch_size):
        x = torch.from_numpy(data.to_model_range(frames_uint8[start:start + batch_size])).to(device)
        with autocast_for(device):
            posterior = model.encode(x).latent_dist
        means.append(posterior.mean.float().cpu().numpy())
        logvars.append(posterior.logvar.float().cpu().numpy())
    return np.concatenate(means), np.concatenate(logvars)


@torch.inference_mode()
def decode_latents(model, latents: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
    """float32 [F, C, h, w] (unscaled) -> uint8 [F, H, W, 3]."""
    frames = []
    for start in range(0, len(latents), batch_size):
        z = torch.from_numpy(np.ascontiguousarray(latents[start:start + batch_size])).to(device)
        with autocast_for(device):
            images = model.decode(z).sample
        frames.append(data.to_uint8(images.float().cpu().numpy()))
    return np.concatenate(frames)


def _open_stage(source_path, kind: str, vae_source, device: str, threads: int, single_file_config, settings: dict):
    """What encode and reconstruct share: threads, device, the source store, the model, and the stage settings."""
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    source = store.open_store(source_path, kind)
    model, vae_record = vae.load_vae(vae_source, torch_device, single_file_config)
    settings = {**settings, "device": torch_device.type,
                "autocast": "bf16" if torch_device.type == "cuda" else "none (float32)"}
    return torch_device, source, model, vae_record, settings


def _derived_store(out_path, kind: str, split: str, source, vae_record: dict, settings: dict, triplet_shape,
                   dtype, shard: tuple[int, int] | None):
    """A fresh store with the source store's triplets, preprocessing record and the VAE that made it, and the rows
    [start, stop) of the source it holds: all of them, or one shard's (index, count), aligned to the chunks of the
    whole split's store (latent_interp.store)."""
    total = len(store.names(source))
    attrs = {"vae": vae_record, "preprocess": source.attrs["preprocess"],
             "provenance": store.provenance("encode" if kind == "latents" else "reconstruct", settings)}
    rows = (0, total)
    if shard is not None:
        rows = store.shard_rows(total, *shard, align=store.triplets_per_chunk(triplet_shape, dtype, total))
        attrs.update(store.shard_attrs(*shard, rows))
    group = store.create(out_path, kind, split, attrs, store.names(source)[slice(*rows)],
                         store.origins(source)[slice(*rows)])
    return group, rows[0]


def _shard_label(shard, separator=" ") -> str:
    """"" for a whole split; " shard1" (or "-shard1") for shard 1, as progress bars and fault points name it."""
    return "" if shard is None else f"{separator}shard{shard[0]}"


def encode_split(frames_path, vae_source, out_path, split: str, batch_size: int = 16, device: str = "auto",
                 threads: int = 1, single_file_config=None, shard: tuple[int, int] | None = None) -> None:
    """frames store -> latents store (schema in latent_interp.store); with ``shard`` (index, count), one shard of it."""
    torch_device, frames_group, model, vae_record, settings = _open_stage(
        frames_path, "frames", vae_source, device, threads, single_file_config,
        {"batch_size": batch_size, "latents": "posterior mean and logvar, not multiplied by the scaling factor"})
    frames = frames_group[store.FRAMES]
    _, _, height, width, _ = frames.shape
    factor = 2 ** (len(model.config.block_out_channels) - 1)
    latent_shape = (3, model.config.latent_channels, height // factor, width // factor)
    group, first = _derived_store(out_path, "latents", split, frames_group, vae_record, settings, latent_shape,
                                  np.float32, shard)
    mean = store.add_array(group, store.MEAN, latent_shape, np.float32)
    logvar = store.add_array(group, store.LOGVAR, latent_shape, np.float32)
    with tqdm(total=mean.shape[0], desc=f"encode {split}{_shard_label(shard)}", unit="triplet") as progress:
        for start, stop in store.chunk_ranges(mean):
            batch = frames[first + start:first + stop].reshape(-1, height, width, 3)
            batch_mean, batch_logvar = encode_frames(model, batch, torch_device, batch_size)
            mean[start:stop] = batch_mean.reshape(stop - start, *latent_shape)
            logvar[start:stop] = batch_logvar.reshape(stop - start, *latent_shape)
            progress.update(stop - start)
            fault_point(f"encode{_shard_label(shard, '-')}", "mid-store")


def reconstruct_split(latents_path, vae_source, out_path, split: str, batch_size: int = 16, device: str = "auto",
                      threads: int = 1, single_file_config=None, shard: tuple[int, int] | None = None) -> None:
    """latents store -> recon store: decode the posterior mean (deterministic, unlike the seed's sample()); with
    ``shard`` (index, count), one shard of it."""
    torch_device, latents_group, model, vae_record, settings = _open_stage(
        latents_path, "latents", vae_source, device, threads, single_file_config,
        {"batch_size": batch_size, "decoded": "posterior mean"})
    if vae_record["sha256"] != latents_group.attrs["vae"]["sha256"]:
        raise ValueError(f"{latents_path} was encoded by {latents_group.attrs['vae']['source']} "
                         f"(sha256 {latents_group.attrs['vae']['sha256'][:12]}), not by {vae_source}")
    mean = latents_group[store.MEAN]
    size = latents_group.attrs["preprocess"]["size"]
    group, first = _derived_store(out_path, "recon", split, latents_group, vae_record, settings, (3, size, size, 3),
                                  np.uint8, shard)
    frames = store.add_array(group, store.FRAMES, (3, size, size, 3), np.uint8)
    with tqdm(total=frames.shape[0], desc=f"reconstruct {split}{_shard_label(shard)}", unit="triplet") as progress:
        for start, stop in store.chunk_ranges(frames):
            latents = mean[first + start:first + stop].reshape(-1, *mean.shape[2:])
            decoded = decode_latents(model, latents, torch_device, batch_size)
            frames[start:stop] = decoded.reshape(stop - start, 3, size, size, 3)
            progress.update(stop - start)
            fault_point(f"reconstruct{_shard_label(shard, '-')}", "mid-store")
