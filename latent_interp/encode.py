"""The two GPU stages: encode a frames store into a latents store, and decode a latents store into a recon store.

Both stream one store chunk at a time (memory does not grow with the split) and feed the model micro-batches of
``batch_size`` frames. On CUDA the VAE runs under autocast in its ``dtype`` (bf16 unless its config entry says
otherwise, ``vae.compute_dtype``); on the CPU it runs in float32, which keeps two runs bit-identical.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from tqdm import tqdm

from latent_interp import data, store, vae
from latent_interp.atomic import fault_point


def autocast_for(device: torch.device, dtype: str = "auto"):
    """Autocast in ``vae.compute_dtype(dtype, device)`` (bf16 on CUDA by default); nothing on the CPU."""
    chosen = vae.compute_dtype(dtype, device)
    return torch.autocast(device.type, dtype=chosen) if chosen is not None else contextlib.nullcontext()


def to_model_input(frames_uint8: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> float32 [F, 3, H, W] in [-1, 1] on ``device`` (``data.to_model_range``); on CUDA the
    uint8 frames are what crosses to the GPU (a quarter of the float bytes) and the GPU scales them."""
    if device.type != "cuda":  # numpy's bits exactly (torch may divide by multiplying with the reciprocal)
        return torch.from_numpy(data.to_model_range(frames_uint8)).contiguous(memory_format=memory_format(device))
    x = torch.from_numpy(np.ascontiguousarray(frames_uint8)).to(device, non_blocking=True).permute(0, 3, 1, 2)
    return (x.float() / 127.5 - 1.0).contiguous(memory_format=memory_format(device))


def to_uint8_frames(images: torch.Tensor) -> np.ndarray:
    """float [F, 3, H, W] in [-1, 1] -> uint8 [F, H, W, 3] on the host: ``data.to_uint8``'s bits, done on the device."""
    scaled = ((images.float() + 1.0) * 127.5).clamp_(0, 255).round_().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def pad_to_multiple(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[F, 3, H, W] reflect-padded at the bottom and right to multiples of ``factor`` (a VAE's downsampling): a
    960 x 540 frame enters kl-f8 as 960 x 544. Only bottom and right, so latent cell (i, j) still covers pixels
    [f i, f (i + 1)) x [f j, f (j + 1)), which the flow-to-latent-grid average relies on; ``decode_latents`` crops the
    decoded frames back, so no store, metric or gallery sees the pad."""
    pad_height, pad_width = -x.shape[-2] % factor, -x.shape[-1] % factor
    if not (pad_height or pad_width):
        return x
    if min(x.shape[-2:]) < factor:
        raise ValueError(f"frames of {x.shape[-1]} x {x.shape[-2]} px are smaller than the VAE's downsampling "
                         f"({factor}); raise config key preprocess.size")
    return torch.nn.functional.pad(x, (0, pad_width, 0, pad_height), mode="reflect")


def vae_pad(frame_height: int, frame_width: int, factor: int) -> dict:
    """The pad record a latents store keeps (attrs ``vae_pad``): frame and padded sizes [H, W], where and how."""
    padded = [-(-frame_height // factor) * factor, -(-frame_width // factor) * factor]
    return {"frame_size": [frame_height, frame_width], "padded_size": padded, "mode": "reflect",
            "where": "bottom and right; decoded frames are cropped back to frame_size"}


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout the VAE runs fastest in, measured (bench P7): channels_last (NHWC) on the CPU, where on 2 cores
    the tiny VAE encoded 12.3 -> 17.1 and decoded 5.0 -> 6.7 frames/s at 256 px (oneDNN); the default (NCHW) on
    CUDA, where channels_last made kl-f8's encoder slower (an H200 in bf16, batch 64: 599 -> 467 frames/s)."""
    return torch.contiguous_format if device.type == "cuda" else torch.channels_last


def prepare_model(model, device: torch.device):
    """The model's weights in ``memory_format(device)``, the layout its inputs come in."""
    return model.to(memory_format=memory_format(device))


def batch_slices(count: int, batch_size: int) -> list[slice]:
    """``count`` frames in the fewest batches of at most ``batch_size``, of equal sizes (within one): a read of 84
    frames runs as 6 batches of 14 rather than 5 of 16 and one of 4, which costs nearly as much as a whole one."""
    batches = -(-count // batch_size)
    edges = [i * count // batches for i in range(batches + 1)] if count else []
    return [slice(start, stop) for start, stop in zip(edges, edges[1:])]


@torch.inference_mode()
def encode_frames(model, frames_uint8: np.ndarray, device: torch.device, batch_size: int, dtype: str = "auto"):
    """uint8 [F, H, W, 3] -> (latent, logvar), float32 [F, C, h, w]: the posterior mean and log-variance, or for a
    deterministic encoder (AutoencoderTiny) its latent and None.

    The outputs are allocated once, before the batches: per-batch results kept in a list sat between the batches'
    activations on the heap and fragmented it, so memory grew with the frames (bench P5: 583 -> 2,547 MiB for 1,000
    -> 10,000 triplets at 64 px)."""
    means = logvars = None
    factor = vae.downsampling(model.config)
    for batch in batch_slices(len(frames_uint8), batch_size):
        x = pad_to_multiple(to_model_input(frames_uint8[batch], device), factor)
        with autocast_for(device, dtype):
            mean, logvar = vae.posterior(model, x)
        if means is None:
            means = np.empty((len(frames_uint8), *mean.shape[1:]), np.float32)
            logvars = np.empty_like(means) if logvar is not None else None
        means[batch] = mean.float().cpu().numpy()
        if logvar is not None:
            logvars[batch] = logvar.float().cpu().numpy()
    return means, logvars


@torch.inference_mode()
def decode_latents(model, latents: np.ndarray, device: torch.device, batch_size: int,
                   dtype: str = "auto", frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """float32 [F, C, h, w] (as stored) -> uint8 [F, H, W, 3], into one array allocated up front (see
    encode_frames); ``frame_size`` (H, W) crops away the pad ``encode_frames`` added (``pad_to_multiple``)."""
    frames = None
    for batch in batch_slices(len(latents), batch_size):
        z = torch.from_numpy(np.ascontiguousarray(latents[batch])).to(device, non_blocking=True)
        z = z.contiguous(memory_format=memory_format(device))
        with autocast_for(device, dtype):
            images = model.decode(z).sample
        if frame_size is not None:
            images = images[..., :frame_size[0], :frame_size[1]]
        decoded = to_uint8_frames(images)
        if frames is None:
            frames = np.empty((len(latents), *decoded.shape[1:]), np.uint8)
        frames[batch] = decoded
    return frames


def frame_size_of(latents_group) -> tuple[int, int]:
    """(H, W) of the frames a latents store encodes: its pad record's, or (older and seed stores, never padded) the
    latent grid times the downsampling."""
    pad = latents_group.attrs.get("vae_pad")
    if pad is not None:
        return tuple(pad["frame_size"])
    factor = latents_group.attrs["vae"]["downsampling"]
    return latents_group[store.MEAN].shape[-2] * factor, latents_group[store.MEAN].shape[-1] * factor


def _open_stage(source_path, kind: str, vae_source, device: str, threads: int, vae_options: dict | None,
                settings: dict):
    """What encode and reconstruct share: threads, device, the source store, the model, and the stage settings."""
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    source = store.open_store(source_path, kind)
    model, vae_record = vae.load_vae(vae_source, torch_device, **(vae_options or {}))
    model = prepare_model(model, torch_device)
    chosen = vae.compute_dtype(vae_record["dtype"], torch_device)
    settings = {**settings, "device": torch_device.type,
                "autocast": str(chosen).removeprefix("torch.") if chosen is not None else "none (float32)"}
    return torch_device, source, model, vae_record, settings


def _derived_store(out_path, kind: str, split: str, source, vae_record: dict, settings: dict, triplet_shape,
                   dtype, shard: tuple[int, int] | None):
    """A fresh store with the source store's triplets, preprocessing record and the VAE that made it, and the rows
    [start, stop) of the source it holds: all of them, or one shard's (index, count). A shard starts where a read of
    the whole split's store would (``_read_rows``), so its micro-batches hold the rows an unsharded run's do."""
    total = len(store.names(source))
    attrs = {"vae": vae_record, "preprocess": source.attrs["preprocess"],
             "provenance": store.provenance("encode" if kind == "latents" else "reconstruct", settings)}
    rows = (0, total)
    if shard is not None:
        chunk_rows = store.triplets_per_chunk(triplet_shape, dtype, total)
        rows = store.shard_rows(total, *shard, align=store.rows_per_read(chunk_rows, _read_rows(settings)))
        attrs.update(store.shard_attrs(*shard, rows))
    group = store.create(out_path, kind, split, attrs, store.names(source)[slice(*rows)],
                         store.origins(source)[slice(*rows)])
    return group, rows[0]


# Whether store reads and writes run in threads beside the model (store.read_ahead, store.WriteBehind): on CUDA
# they hide the store behind the GPU (an H200 encoded 458 frames/s in the stage against 467 bare, bench P1); on the
# CPU they take cores from torch's threads (2 cores, tiny VAE at 128 px: 100-109 frames/s with them, 117-126 without).
OVERLAP_IO = {"cuda": True, "cpu": False}


def _read_rows(settings: dict) -> int:
    """Triplets read at a time: at least a batch of frames, so a GPU sees whole batches (store.chunk_ranges)."""
    return -(-settings["batch_size"] // 3)


def _shard_label(shard, separator=" ") -> str:
    """"" for a whole split; " shard1" (or "-shard1") for shard 1, as progress bars and fault points name it."""
    return "" if shard is None else f"{separator}shard{shard[0]}"


def encode_split(frames_path, vae_source, out_path, split: str, batch_size: int = 16, device: str = "auto",
                 threads: int = 1, vae_options: dict | None = None, shard: tuple[int, int] | None = None) -> None:
    """frames store -> latents store (schema in latent_interp.store); with ``shard`` (index, count), one shard of it.
    ``vae_options``: ``vae.load_vae``'s keyword arguments (the VAE's config entry)."""
    torch_device, frames_group, model, vae_record, settings = _open_stage(
        frames_path, "frames", vae_source, device, threads, vae_options, {"batch_size": batch_size})
    deterministic = vae_record["posterior"] == "deterministic"
    settings["latents"] = ("the encoder's deterministic latent (no posterior variance: no logvar array)"
                           if deterministic else "posterior mean and logvar, not multiplied by the scaling factor")
    frames = frames_group[store.FRAMES]
    _, _, height, width, _ = frames.shape
    factor = vae_record["downsampling"]
    latent_shape = (3, vae_record["latent_channels"], -(-height // factor), -(-width // factor))
    group, first = _derived_store(out_path, "latents", split, frames_group, vae_record, settings, latent_shape,
                                  np.float32, shard)
    group.attrs["vae_pad"] = vae_pad(height, width, factor)
    mean = store.add_array(group, store.MEAN, latent_shape, np.float32)
    logvar = None if deterministic else store.add_array(group, store.LOGVAR, latent_shape, np.float32)
    spans = list(store.chunk_ranges(mean, _read_rows(settings)))
    # Reads whole chunks, at least a batch of frames; on CUDA the next read and the last write run beside the model.
    with tqdm(total=mean.shape[0], desc=f"encode {split}{_shard_label(shard)}", unit="triplet") as progress, \
            store.WriteBehind(OVERLAP_IO.get(torch_device.type, True)) as writer:
        for (start, stop), batch in store.read_ahead(frames, spans, first, OVERLAP_IO.get(torch_device.type, True)):
            batch_mean, batch_logvar = encode_frames(model, batch.reshape(-1, height, width, 3), torch_device,
                                                     batch_size, vae_record["dtype"])
            writes = [(mean, slice(start, stop), batch_mean.reshape(stop - start, *latent_shape))]
            if logvar is not None:
                writes.append((logvar, slice(start, stop), batch_logvar.reshape(stop - start, *latent_shape)))
            writer.write(*writes)
            progress.update(stop - start)
            fault_point(f"encode{_shard_label(shard, '-')}", "mid-store")


def reconstruct_split(latents_path, vae_source, out_path, split: str, batch_size: int = 16, device: str = "auto",
                      threads: int = 1, vae_options: dict | None = None,
                      shard: tuple[int, int] | None = None) -> None:
    """latents store -> recon store: decode the posterior mean (deterministic, unlike the seed's sample()); with
    ``shard`` (index, count), one shard of it."""
    torch_device, latents_group, model, vae_record, settings = _open_stage(
        latents_path, "latents", vae_source, device, threads, vae_options,
        {"batch_size": batch_size, "decoded": f"the stored latents of {latents_path}"})
    # Another model's latents are fine when their latent space is this one's: same family, channels, factors and
    # encoder (a decoder-only fine-tune decodes its base's).
    vae.require_same_latent_space(latents_group.attrs["vae"], vae_record,
                                  f"{latents_path} (encoded by {latents_group.attrs['vae']['source']})",
                                  f"the decoding VAE {vae_source}")
    mean = latents_group[store.MEAN]
    height, width = frame_size_of(latents_group)
    group, first = _derived_store(out_path, "recon", split, latents_group, vae_record, settings,
                                  (3, height, width, 3), np.uint8, shard)
    frames = store.add_array(group, store.FRAMES, (3, height, width, 3), np.uint8)
    spans = list(store.chunk_ranges(frames, _read_rows(settings)))
    with tqdm(total=frames.shape[0], desc=f"reconstruct {split}{_shard_label(shard)}", unit="triplet") as progress, \
            store.WriteBehind(OVERLAP_IO.get(torch_device.type, True)) as writer:
        for (start, stop), latents in store.read_ahead(mean, spans, first, OVERLAP_IO.get(torch_device.type, True)):
            decoded = decode_latents(model, latents.reshape(-1, *mean.shape[2:]), torch_device, batch_size,
                                     vae_record["dtype"], (height, width))
            writer.write((frames, slice(start, stop), decoded.reshape(stop - start, 3, height, width, 3)))
            progress.update(stop - start)
            fault_point(f"reconstruct{_shard_label(shard, '-')}", "mid-store")
