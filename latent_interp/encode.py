"""The two GPU stages: encode a frames store into a latents store, and decode a latents store into a recon store.

Both stream one store chunk at a time (memory does not grow with the split) and feed the model micro-batches of
``batch_size`` frames. On CUDA the VAE runs under autocast in its ``dtype`` (bf16 unless its config entry says
otherwise, ``vae.compute_dtype``); on the CPU it runs in float32, which keeps two runs bit-identical. With
``vae.compile`` the module a job runs is compiled once per job (``compile_for_job``; auto: on CUDA, where the
job's frames pay for the compile), and then runs in channels_last (``memory_format``).

Half precision can overflow (SD-family VAEs in float16 are the known case, hence sdxl-vae-fp16-fix): every batch's
output is checked, and a batch with a NaN or inf is computed again in float32 and counted (``NonFiniteGuard``; the
stores keep the count in attrs ``non_finite``); if float32 is not finite either, the job fails naming the triplets.
Nothing non-finite is ever written into a store or scored.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from tqdm import tqdm

from latent_interp import data, store, vae
from latent_interp.atomic import fault_point
from latent_interp.settings import VaeRun


class NonFiniteError(RuntimeError):
    """A batch's output was NaN or inf in float32 too; ``frames`` are the bad frames' indices in the call's input."""

    def __init__(self, message: str, frames: list[int]):
        super().__init__(message)
        self.frames = frames


class NonFiniteGuard:
    """Counts the batches (and their frames) whose half-precision output held a NaN or inf and were computed again
    in float32; ``record()`` is what a store's attrs ``non_finite`` and the report's provenance show."""

    def __init__(self):
        self.batches = self.frames = 0

    def record(self) -> dict:
        return {"batches_recomputed_float32": self.batches, "frames_recomputed_float32": self.frames}


def _bad_frames(outputs) -> list[int]:
    """Indices along axis 0 where any output tensor holds a NaN or inf."""
    bad = None
    for tensor in outputs:
        if tensor is not None:
            rows = ~torch.isfinite(tensor).flatten(1).all(dim=1)
            bad = rows if bad is None else bad | rows
    return [] if bad is None else bad.nonzero().flatten().tolist()


def guarded(forward, x: torch.Tensor, device: torch.device, dtype: str, guard: NonFiniteGuard | None, what: str):
    """``forward(x)`` (a tuple of tensors, None allowed) under the VAE's autocast; if any output is not finite, once
    more in float32 (autocast off), counted in ``guard``; if still not finite, NonFiniteError."""
    with autocast_for(device, dtype):
        outputs = forward(x)
    if not _bad_frames(outputs):
        return outputs
    if vae.compute_dtype(dtype, device) is not None:
        if guard is not None:
            guard.batches, guard.frames = guard.batches + 1, guard.frames + len(x)
        with torch.autocast(device.type, enabled=False):
            outputs = forward(x.float())
        bad = _bad_frames(outputs)
        if not bad:
            return outputs
    else:
        bad = _bad_frames(outputs)
    raise NonFiniteError(f"the VAE's {what} gave NaN or inf in float32 for {len(bad)} of {len(x)} frames of a batch",
                         bad)


def name_frames(error: NonFiniteError, triplet_names: list[str], where: str) -> NonFiniteError:
    """The error again, naming the triplets (and frames 1..3) of its bad frames: ``triplet_names`` holds one name per
    triplet of the call's input, in order, three frames each."""
    named = [f"{triplet_names[i // 3]} (frame {i % 3 + 1})" for i in error.frames]
    return NonFiniteError(f"{where}: {error} even in float32: {', '.join(named[:10])}"
                          f"{' ...' if len(named) > 10 else ''}", error.frames)


class StageClock:
    """Where a GPU stage's time goes, printed into its log at the end (bench P14 reads the line): the model's
    first batch (which holds the compile, when compiled), the other batches, and the waits for store reads and
    writes (which run in threads beside the model on CUDA, so only what the model could not hide counts)."""

    def __init__(self):
        self.seconds = {"setup": 0.0, "first batch": 0.0, "model": 0.0, "waiting for reads": 0.0,
                        "waiting for writes": 0.0}

    @contextlib.contextmanager
    def __call__(self, part: str):
        if part == "model" and not self.seconds["first batch"]:
            part = "first batch"
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - started

    def iterate(self, items, part: str = "waiting for reads"):
        iterator = iter(items)
        while True:
            with self(part):
                item = next(iterator, StopIteration)
            if item is StopIteration:
                return
            yield item

    def line(self, what: str) -> str:
        return f"timing {what}: " + ", ".join(f"{part} {seconds:.2f} s" for part, seconds in self.seconds.items())


def mark_batch_dynamic(x: torch.Tensor) -> torch.Tensor:
    """Tell torch.compile that axis 0 (the batch) varies, so a compiled VAE compiles once per job rather than again
    for a split's last, smaller batch; a no-op for an eager model."""
    torch._dynamo.maybe_mark_dynamic(x, 0)
    return x


def autocast_for(device: torch.device, dtype: str = "auto"):
    """Autocast in ``vae.compute_dtype(dtype, device)`` (bf16 on CUDA by default); nothing on the CPU."""
    chosen = vae.compute_dtype(dtype, device)
    return torch.autocast(device.type, dtype=chosen) if chosen is not None else contextlib.nullcontext()


def to_model_input(frames_uint8: np.ndarray, device: torch.device, layout: torch.memory_format | None = None):
    """uint8 [F, H, W, 3] -> float32 [F, 3, H, W] in [-1, 1] on ``device`` (``data.to_model_range``), in ``layout``
    (default ``memory_format(device)``; the stages pass their model's, ``layout_of``); on CUDA the uint8 frames are
    what crosses to the GPU (a quarter of the float bytes) and the GPU scales them."""
    layout = layout or memory_format(device)
    if device.type != "cuda":  # numpy's bits exactly (torch may divide by multiplying with the reciprocal)
        return torch.from_numpy(data.to_model_range(frames_uint8)).contiguous(memory_format=layout)
    x = torch.from_numpy(np.ascontiguousarray(frames_uint8)).to(device, non_blocking=True).permute(0, 3, 1, 2)
    return (x.float() / 127.5 - 1.0).contiguous(memory_format=layout)


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


def memory_format(device: torch.device, compiled: bool = False) -> torch.memory_format:
    """The layout the VAE runs fastest in, measured (bench P7): channels_last (NHWC) on the CPU, where on 2 cores
    the tiny VAE encoded 12.3 -> 17.1 and decoded 5.0 -> 6.7 frames/s at 256 px (oneDNN). On CUDA (an H200, kl-f8
    in bf16, batch 64) it depends on the compile: eager, channels_last made it slower (encode 573 -> 450, decode
    297 -> 222 frames/s); compiled, faster or equal (encode 1,077 -> 1,361, decode 629 -> 625)."""
    if device.type == "cuda" and not compiled:
        return torch.contiguous_format
    return torch.channels_last


def prepare_model(model, device: torch.device, compiled: bool = False):
    """The model's weights in ``memory_format(device, compiled)``; its inputs follow them (``layout_of``)."""
    return model.to(memory_format=memory_format(device, compiled))


def layout_of(model) -> torch.memory_format:
    """The layout of the model's convolution weights (``prepare_model``), which its inputs are made in."""
    weight = next(parameter for parameter in model.parameters() if parameter.dim() == 4)
    return torch.channels_last if not weight.is_contiguous() else torch.contiguous_format


def compile_for_job(model, device: torch.device, setting: str | bool, megapixels: dict[str, float]) -> dict:
    """``vae.compile_model`` for the frames a job runs through each module, then the layout that is fastest with
    that choice (``memory_format``); returns the record stores keep (settings ``compile``)."""
    record = vae.compile_model(model, device, setting, megapixels)
    prepare_model(model, device, record["compiled"])
    return record


def batch_slices(count: int, batch_size: int) -> list[slice]:
    """``count`` frames in the fewest batches of at most ``batch_size``, of equal sizes (within one): a read of 84
    frames runs as 6 batches of 14 rather than 5 of 16 and one of 4, which costs nearly as much as a whole one."""
    batches = -(-count // batch_size)
    edges = [i * count // batches for i in range(batches + 1)] if count else []
    return [slice(start, stop) for start, stop in zip(edges, edges[1:])]


@torch.inference_mode()
def encode_frames(model, frames_uint8: np.ndarray, device: torch.device, batch_size: int, dtype: str = "auto",
                  guard: NonFiniteGuard | None = None):
    """uint8 [F, H, W, 3] -> (latent, logvar), float32 [F, C, h, w]: the posterior mean and log-variance, or for a
    deterministic encoder (AutoencoderTiny) its latent and None. A non-finite batch is recomputed in float32 and
    counted in ``guard`` (``guarded``); frames that stay non-finite raise NonFiniteError with their indices.

    The outputs are allocated once, before the batches: per-batch results kept in a list sat between the batches'
    activations on the heap and fragmented it, so memory grew with the frames (bench P5: 583 -> 2,547 MiB for 1,000
    -> 10,000 triplets at 64 px)."""
    means = logvars = None
    factor = vae.downsampling(model.config)
    for batch in batch_slices(len(frames_uint8), batch_size):
        x = mark_batch_dynamic(pad_to_multiple(to_model_input(frames_uint8[batch], device, layout_of(model)), factor))
        try:
            mean, logvar = guarded(lambda inputs: vae.posterior(model, inputs), x, device, dtype, guard, "encoder")
        except NonFiniteError as error:
            raise NonFiniteError(str(error), [batch.start + i for i in error.frames]) from None
        if means is None:
            means = np.empty((len(frames_uint8), *mean.shape[1:]), np.float32)
            logvars = np.empty_like(means) if logvar is not None else None
        means[batch] = mean.float().cpu().numpy()
        if logvar is not None:
            logvars[batch] = logvar.float().cpu().numpy()
    return means, logvars


@torch.inference_mode()
def decode_latents(model, latents: np.ndarray, device: torch.device, batch_size: int,
                   dtype: str = "auto", frame_size: tuple[int, int] | None = None,
                   guard: NonFiniteGuard | None = None) -> np.ndarray:
    """float32 [F, C, h, w] (as stored) -> uint8 [F, H, W, 3], into one array allocated up front (see
    encode_frames); ``frame_size`` (H, W) crops away the pad ``encode_frames`` added (``pad_to_multiple``). Checked
    for NaN and inf before the conversion to uint8 (which would hide them), as ``encode_frames`` is."""
    frames = None
    for batch in batch_slices(len(latents), batch_size):
        z = torch.from_numpy(np.ascontiguousarray(latents[batch])).to(device, non_blocking=True)
        z = mark_batch_dynamic(z.contiguous(memory_format=layout_of(model)))
        try:
            images, = guarded(lambda inputs: (model.decode(inputs).sample,), z, device, dtype, guard, "decoder")
        except NonFiniteError as error:
            raise NonFiniteError(str(error), [batch.start + i for i in error.frames]) from None
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
                settings: dict, compile_setting: str | bool = "auto"):
    """What encode and reconstruct share: threads, device, the source store, the model (compiled per
    ``vae.compile``), its batch size (``vae.batch_size``: a number, or auto from free memory) and the settings."""
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    source = store.open_store(source_path, kind)
    model, vae_record = vae.load_vae(vae_source, torch_device, **(vae_options or {}))
    model = prepare_model(model, torch_device)
    height, width = _frame_size(source, kind, vae_record)
    settings = {**settings, **resolve_batch_size(model, torch_device, settings["batch_size"], (height, width),
                                                 vae_record)}
    chosen = vae.compute_dtype(vae_record["dtype"], torch_device)
    # the frames of the split through the job's one module; a shard decides as its whole split does, so that the
    # shards' records (and the store gathered from them) are the unsharded run's
    megapixels = {"encoder" if kind == "frames" else "decoder": 3 * len(store.names(source)) * height * width / 1e6}
    settings.update(device=torch_device.type,
                    autocast=str(chosen).removeprefix("torch.") if chosen is not None else "none (float32)",
                    compile=compile_for_job(model, torch_device, compile_setting, megapixels))
    return torch_device, source, model, vae_record, settings


def resolve_batch_size(model, device: torch.device, batch_size: int | str, frame_size: tuple[int, int],
                       vae_record: dict) -> dict:
    """{"batch_size": frames per forward pass} for a number, or for "auto" ``vae.auto_batch_size``'s choice with
    how it was made ("batch_size_chosen")."""
    if batch_size != "auto":
        return {"batch_size": int(batch_size)}
    choice = vae.auto_batch_size(model, device, frame_size, vae_record["latent_channels"])
    print(f"vae.batch_size auto: {choice['batch_size']} frames ({choice['chosen']})", flush=True)
    return {"batch_size": choice["batch_size"], "batch_size_chosen": choice["chosen"]}


def _frame_size(source, kind: str, vae_record: dict) -> tuple[int, int]:
    """(H, W) of the frames a stage's source store holds or encodes."""
    if kind == "frames":
        return tuple(source[store.FRAMES].shape[2:4])
    return frame_size_of(source)


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


def encode_split(*, frames, latents, split: str, vae_run: VaeRun, threads: int = 1,
                 shard: tuple[int, int] | None = None) -> None:
    """Rule encode: the frames store ``frames`` -> the latents store ``latents`` (docs/outputs.md) of the model
    ``vae_run`` runs; with ``shard`` (index, count), one shard of it."""
    frames_path, out_path = frames, latents
    clock = StageClock()
    with clock("setup"):
        torch_device, frames_group, model, vae_record, settings = _open_stage(
            frames_path, "frames", vae_run.source, vae_run.device, threads, vae_run.options,
            {"batch_size": vae_run.batch_size}, vae_run.compile)
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
    guard, triplet_names = NonFiniteGuard(), store.names(group)
    # Reads whole chunks, at least a batch of frames; on CUDA the next read and the last write run beside the model.
    with tqdm(total=mean.shape[0], desc=f"encode {split}{_shard_label(shard)}", unit="triplet") as progress, \
            store.WriteBehind(OVERLAP_IO.get(torch_device.type, True)) as writer:
        for (start, stop), batch in clock.iterate(store.read_ahead(frames, spans, first,
                                                                   OVERLAP_IO.get(torch_device.type, True))):
            try:
                with clock("model"):
                    batch_mean, batch_logvar = encode_frames(model, batch.reshape(-1, height, width, 3),
                                                             torch_device, settings["batch_size"], vae_record["dtype"],
                                                             guard)
            except NonFiniteError as error:
                raise name_frames(error, triplet_names[start:stop], f"encoding {frames_path}") from None
            writes = [(mean, slice(start, stop), batch_mean.reshape(stop - start, *latent_shape))]
            if logvar is not None:
                writes.append((logvar, slice(start, stop), batch_logvar.reshape(stop - start, *latent_shape)))
            with clock("waiting for writes"):
                writer.write(*writes)
            progress.update(stop - start)
            fault_point(f"encode{_shard_label(shard, '-')}", "mid-store")
        with clock("waiting for writes"):
            writer.wait()
    _finish(group, guard)
    print(clock.line(f"encode {split}"), flush=True)


def reconstruct_split(*, latents, recon, split: str, vae_run: VaeRun, threads: int = 1,
                      shard: tuple[int, int] | None = None) -> None:
    """Rule reconstruct: the latents store ``latents`` -> the recon store ``recon``, decoding the posterior mean
    (deterministic, unlike the seed's sample()); with ``shard`` (index, count), one shard of it."""
    latents_path, out_path, vae_source = latents, recon, vae_run.source
    clock = StageClock()
    with clock("setup"):
        torch_device, latents_group, model, vae_record, settings = _open_stage(
            latents_path, "latents", vae_run.source, vae_run.device, threads, vae_run.options,
            {"batch_size": vae_run.batch_size, "decoded": f"the stored latents of {latents_path}"}, vae_run.compile)
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
    guard, triplet_names = NonFiniteGuard(), store.names(group)
    with tqdm(total=frames.shape[0], desc=f"reconstruct {split}{_shard_label(shard)}", unit="triplet") as progress, \
            store.WriteBehind(OVERLAP_IO.get(torch_device.type, True)) as writer:
        for (start, stop), latents in clock.iterate(store.read_ahead(mean, spans, first,
                                                                     OVERLAP_IO.get(torch_device.type, True))):
            try:
                with clock("model"):
                    decoded = decode_latents(model, latents.reshape(-1, *mean.shape[2:]), torch_device,
                                             settings["batch_size"], vae_record["dtype"], (height, width), guard)
            except NonFiniteError as error:
                raise name_frames(error, triplet_names[start:stop], f"decoding {latents_path}") from None
            with clock("waiting for writes"):
                writer.write((frames, slice(start, stop), decoded.reshape(stop - start, 3, height, width, 3)))
            progress.update(stop - start)
            fault_point(f"reconstruct{_shard_label(shard, '-')}", "mid-store")
        with clock("waiting for writes"):
            writer.wait()
    _finish(group, guard)
    print(clock.line(f"reconstruct {split}"), flush=True)


def _finish(group, guard: NonFiniteGuard) -> None:
    """The store's last attrs: the guard's count (attrs ``non_finite``), printed when a batch needed float32, and
    the chunk manifest every later read checks (``store.seal``)."""
    group.attrs["non_finite"] = guard.record()
    if guard.batches:
        print(f"{group.store}: {guard.batches} batches ({guard.frames} frames) gave NaN or inf in half precision and "
              "were computed again in float32", flush=True)
    store.seal(group)
