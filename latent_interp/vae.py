"""Loading a VAE of any supported family in every form it ships in, choosing its device, and the tiny demo
architectures.

Families (``FAMILIES``): diffusers' ``AutoencoderKL`` with 4 latent channels (SD 1.x/2.x kl-f8, kl-f8-anime2, SDXL's
VAE) or 16 (SD3, FLUX: no quant convs, a shift factor), whose encoder gives a Gaussian posterior (mean, logvar); and
``AutoencoderTiny`` (TAESD), whose encoder gives one deterministic latent: it has no posterior variance, and nothing
here invents one (``posterior`` returns None for it).

Forms (``weights.source_format``): a diffusers folder (``from_pretrained``, the class from its config.json); a single
``.safetensors`` or pickled ``.ckpt`` with an architecture config (a folder holding a diffusers config.json, or one of
the names in ``latent_interp/configs``: kl-f8, sdxl, sd3, flux, taesd), converted from latent diffusion's key layout
(AutoencoderKL, diffusers' ``from_single_file``) or TAESD's (AutoencoderTiny, ``tiny_state_dict``); or a hub id.

Latents are stored as the encoder gives them (AutoencoderKL: the unscaled posterior mean; TAESD: latents already in
its teacher's scaled space, scaling factor 1). A diffusion model sees ``(z - shift_factor) * scaling_factor``; every
store records both factors, and ``latent_space`` is what two stores must agree on to be compared latent to latent.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path

import torch

from latent_interp import antialias, weights
from latent_interp.weights import HUB_ID, WEIGHT_SUFFIXES, is_model_file, source_format  # noqa: F401 (torch-free, for the Snakefile)

# kl-f8 geometry: three 2x downsamplings (8x in all) and 4 latent channels. Widths are cut about 8x from kl-f8's
# (128, 256, 512, 512), one ResNet layer per block, and no mid-block attention, so the model trains on 2 CPU cores.
TINY_VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(32, 64, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=256,
    mid_block_add_attention=False,
)


# TAESD's geometry (8x, 4 latent channels, one deterministic latent) with widths cut from 64 to 32 (diffusers' tiny
# encoder needs one width throughout) and 2 blocks a level instead of 3, so tools/train_tiny_vae.py distils it from
# models/tiny-vae on one CPU core (0.55 s a step of 16 crops of 64 px; 64 wide: 1.6 s) as models/tiny-taesd.
TINY_TAESD_CONFIG = dict(
    encoder_block_out_channels=(32, 32, 32, 32),
    decoder_block_out_channels=(32, 32, 32, 32),
    num_encoder_blocks=(1, 2, 2, 2),
    num_decoder_blocks=(2, 2, 2, 1),
    latent_channels=4,
)

# architecture configs for single files, by name; kl-f8-anime2's, the default (torch-free, in weights)
CONFIGS, KL_F8_CONFIG, architecture_dir = weights.CONFIGS, weights.KL_F8_CONFIG, weights.architecture_dir
# diffusers class name -> family name, as configs, stores and tables give it
FAMILIES = {"AutoencoderKL": "kl", "AutoencoderTiny": "tiny"}


def autoencoder_class(family: str = "kl"):
    """diffusers' class of the family, imported when a model is built or loaded: importing diffusers takes about
    3 s beyond torch, which the jobs that only pick a device or set threads (interp_train) need not pay."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    return {"kl": AutoencoderKL, "tiny": AutoencoderTiny}[family]


def family_of(model) -> str:
    return FAMILIES[type(model).__name__]


def build_vae(family: str = "kl", **overrides):
    """A freshly initialised tiny model of the family (TINY_VAE_CONFIG, TINY_TAESD_CONFIG), any key overridden
    (tests shrink them further, or give AutoencoderKL 16 latent channels)."""
    defaults = TINY_VAE_CONFIG if family == "kl" else TINY_TAESD_CONFIG
    return autoencoder_class(family)(**{**defaults, **overrides})


def posterior(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frames in [-1, 1] -> (latent, log-variance): AutoencoderKL's posterior mean and logvar; AutoencoderTiny's
    deterministic latent and None."""
    if family_of(model) == "tiny":
        return model.encode(x).latents, None
    distribution = model.encode(x).latent_dist
    return distribution.mean, distribution.logvar


def downsampling(config) -> int:
    """Frame size / latent size: one 2x step between consecutive blocks, in both families (``weights``)."""
    return weights.downsampling(config)


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config key vae.device asks for {requested!r}, but torch sees no CUDA device")
    return device


def prepare_torch(threads: int) -> None:
    """Give torch ``threads`` CPU threads (at most the CPUs available) and, on glibc, keep freed memory for reuse.

    Why the second: glibc hands large freed blocks back to the OS, and the activations of 256 px frames are tens of
    MB each, so every forward pass page-faults its memory in again. On 2 cores this halved the time of decoding 8
    frames (2.8 s -> 1.05 s) and cut a training step on 4 frames from 2.95 s to 1.75 s. The cost: a job keeps its
    peak memory until it ends.
    """
    # Never more threads than CPUs this process may run on (Snakemake hands a rule up to --cores threads, and
    # oversubscribed torch threads spin against each other): sched_getaffinity honours Slurm's and taskset's limits.
    torch.set_num_threads(max(1, min(threads, len(os.sched_getaffinity(0)))))
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # mallopt parameter numbers from <malloc.h>
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)
    libc.mallopt(m_top_pad, 1 << 28)


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """sha256 over the folder's model files (``weights.is_model_file``), so a store records exactly which weights
    made it."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if is_model_file(path):
            digest.update(path.name.encode())
            digest.update(file_digest(path).encode())
    return digest.hexdigest()


# The weights that map a frame to its posterior: equal encoder digests mean equal latents, so a decoder-only
# fine-tune decodes its base model's latents instead of encoding every split again (encode.reconstruct_split checks).
ENCODER_PREFIXES = ("encoder.", "quant_conv.")


def encoder_digest(model: torch.nn.Module) -> str:
    """sha256 over the encoder's tensors (names, dtypes, shapes and bytes, in name order), and the anti-aliasing
    filter in front of its downsamplings where it has one (``latent_interp.antialias``: no tensor of the state dict,
    but other latents from the same weights)."""
    digest = hashlib.sha256()
    if antialias.blur_size(model):
        digest.update(f"antialias blur {antialias.blur_size(model)}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(ENCODER_PREFIXES):
            tensor = tensor.detach().to("cpu", copy=False).contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def load_vae(source: str | Path, device: torch.device | str = "cpu", config: str | Path | None = None,
             scaling_factor: float | None = None, shift_factor: float | None = None, dtype: str = "auto",
             key: str = "vae"):
    """Load a VAE from any form ``source_format`` accepts; return it in eval mode with its provenance record.

    ``config``: a single file's architecture (``architecture_dir``; kl-f8 when None), so single files load with no
    network access. ``scaling_factor``/``shift_factor`` override the model config's (recorded either way);
    ``dtype`` is what it runs in on CUDA (``compute_dtype``). ``key`` names the config entry in error messages.
    """
    form = source_format(source, key)
    # low_cpu_mem_usage=False: the default asks for accelerate, which this project does not need.
    options = dict(torch_dtype=torch.float32, low_cpu_mem_usage=False)
    config_dir = architecture_dir(config, key) if form in {"safetensors", "ckpt"} else None
    if form == "diffusers":
        family = _family_in_config(Path(source) / "config.json", key)
        model, digest = autoencoder_class(family).from_pretrained(source, **options), folder_digest(source)
    elif form in {"safetensors", "ckpt"}:
        model, digest = _load_single_file(Path(source), form, config_dir, options, key), file_digest(source)
    else:
        model, digest = _load_from_hub(str(source), options, key), None
    overrides = {name: float(value) for name, value in
                 (("scaling_factor", scaling_factor), ("shift_factor", shift_factor)) if value is not None}
    if overrides:
        model.register_to_config(**overrides)
    model = antialias.restore(model)  # an anti-aliased encoder saved by the fine-tune: its filters again
    model.to(device).eval()
    family = family_of(model)
    provenance = {
        "source": str(source),
        "format": form,
        "sha256": digest,
        "encoder_sha256": encoder_digest(model),
        "family": type(model).__name__,
        "posterior": "gaussian" if family == "kl" else "deterministic",
        "latent_channels": int(model.config.latent_channels),
        "downsampling": downsampling(model.config),
        "scaling_factor": float(model.config.scaling_factor),
        "shift_factor": float(model.config.get("shift_factor") or 0.0),
        "scaling_overridden": sorted(overrides),
        "dtype": dtype,
        "config": {name: value for name, value in model.config.items() if not name.startswith("_")},
    }
    if config_dir is not None:
        provenance["single_file_config"] = str(config_dir)
    return model, provenance


# What two latents stores must share for their latents to be compared, interpolated or decoded as one space.
LATENT_SPACE_KEYS = ("family", "latent_channels", "downsampling", "scaling_factor", "shift_factor", "encoder_sha256")


def latent_space(record: dict) -> dict:
    """The part of a store's VAE record that defines its latent space (LATENT_SPACE_KEYS)."""
    return {name: record.get(name) for name in LATENT_SPACE_KEYS}


def require_same_latent_space(record: dict, other: dict, what: str, other_what: str) -> None:
    """Raise, naming both sides and the first difference, unless the two VAE records share a latent space."""
    ours, theirs = latent_space(record), latent_space(other)
    differences = [f"{name} {ours[name]!r} vs {theirs[name]!r}" for name in LATENT_SPACE_KEYS
                   if ours[name] != theirs[name]]
    if differences:
        raise ValueError(f"{what} and {other_what} are not in the same latent space: " + "; ".join(differences))


def compute_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a VAE on ``device`` (None: plain float32). ``auto`` is bf16 on CUDA (fast, and safe from
    fp16's overflow in SDXL's VAE) and float32 on the CPU, so two CPU runs are bit-identical; a half precision named
    in the VAE's entry runs as asked on either device (the CPU has autocast for both), which is how the tests make a
    model overflow in float16 without a GPU (``encode.NonFiniteGuard``)."""
    if dtype == "float32" or (dtype == "auto" and device.type != "cuda"):
        return None
    return {"auto": torch.bfloat16, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


# What compiling is worth, measured on an H200 (bench P7, kl-f8's architecture at 256 px in bf16, batch 64): the
# compile costs its job 32-43 s (the first batch through a compiled module), and then saves, against eager, 1.0 ms
# a frame in the encoder (573 -> 1,361 img/s, channels_last) and 1.8 ms in the decoder (297 -> 629 img/s): 15 and
# 27 ms per megapixel of frame.
COMPILE_SECONDS = 36.0
COMPILE_SAVES_SECONDS_PER_MEGAPIXEL = {"encoder": 0.0154, "decoder": 0.0269}
# torch.compile's options for the VAE (docs/performance.md has what the alternatives measured)
COMPILE_OPTIONS = {"mode": "default", "fullgraph": False}


def compiles(setting: str | bool, device: torch.device, module: str = "decoder",
             megapixels: float | None = None) -> bool:
    """Config key vae.compile for one module (encoder or decoder) of a job that runs ``megapixels`` of frames
    through it: ``true`` and ``false`` everywhere; ``auto`` on CUDA where what compiling saves over the job's frames
    (COMPILE_SAVES_SECONDS_PER_MEGAPIXEL) exceeds what it costs (COMPILE_SECONDS), never on the CPU (inductor's
    compile took 35 s for the tiny encoder on 2 cores, and oneDNN's eager convolutions are what is fast there)."""
    if setting != "auto":
        return bool(setting)
    if device.type != "cuda":
        return False
    return megapixels is None or megapixels * COMPILE_SAVES_SECONDS_PER_MEGAPIXEL[module] > COMPILE_SECONDS


def compile_model(model, device: torch.device, setting: str | bool = "auto",
                  megapixels: dict[str, float] | None = None) -> dict:
    """Compile the encoder and/or decoder in place where ``compiles`` says so, given the megapixels of frames the
    job runs through each (``megapixels``; a module it does not run is left out); return the record a store keeps.
    ``nn.Module.compile`` keeps the state dict's key names, so digests, saving and checkpoints are unchanged. A module
    is compiled once per job: the batch axis is marked dynamic where the inputs are made (``encode``'s
    ``mark_batch_dynamic``), so a split's last, smaller batch reuses the same code. What compiling fuses is what eager
    leaves on the table in a VAE: GroupNorm + SiLU chains, about half of an eager decode in public profiles."""
    megapixels = {"encoder": None, "decoder": None} if megapixels is None else megapixels
    modules = [name for name, amount in megapixels.items() if compiles(setting, device, name, amount)]
    for name in modules:
        getattr(model, name).compile(**COMPILE_OPTIONS)
    return {"compiled": bool(modules), "setting": setting, "modules": modules,
            **({"options": dict(COMPILE_OPTIONS)} if modules else {}),
            **({"megapixels": {name: round(amount, 1) for name, amount in megapixels.items() if amount is not None}}
               if any(amount is not None for amount in megapixels.values()) else {})}


def auto_batch_size(model, device: torch.device, frame_shape: tuple[int, int], latent_channels: int,
                    cpu_default: int = 16, most: int = 256) -> dict:
    """vae.batch_size: auto. On CUDA: the most frames whose activations fit in half the free memory, measured by one
    probe batch of 2 frames through the encoder and the decoder at the split's frame size (peak memory above the
    weights, per frame), at most ``most``; on the CPU, where larger batches are no faster, ``cpu_default``. Returns
    the choice with how it was made, for the store's provenance."""
    if device.type != "cuda":
        return {"batch_size": cpu_default, "chosen": "auto: the CPU default"}
    height, width = frame_shape
    factor = downsampling(model.config)
    probe = 2
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        x = torch.zeros(probe, 3, -(-height // factor) * factor, -(-width // factor) * factor, device=device)
        posterior(model, x)
        model.decode(torch.zeros(probe, latent_channels, x.shape[2] // factor, x.shape[3] // factor,
                                 device=device))
    per_frame = max(1, (torch.cuda.max_memory_allocated(device) - base) // probe)
    free, _ = torch.cuda.mem_get_info(device)
    size = int(max(1, min(most, free // 2 // per_frame)))
    return {"batch_size": size, "chosen": f"auto: half of {free / 2**30:.1f} GiB free / {per_frame / 2**20:.0f} MiB "
                                          f"a frame, at most {most}"}


def _family_in_config(config_json: Path, key: str) -> str:
    import json

    class_name = json.loads(config_json.read_text()).get("_class_name", "AutoencoderKL")
    if class_name not in FAMILIES:
        raise ValueError(f"config key {key}: {config_json} describes a {class_name}; supported families are "
                         f"{', '.join(FAMILIES)}")
    return FAMILIES[class_name]


def _load_single_file(path: Path, form: str, config_dir: Path, options: dict, key: str):
    family = _family_in_config(config_dir / "config.json", key)
    if family == "kl":  # diffusers converts latent diffusion's key layout
        source = str(path) if form == "safetensors" else checkpoint_state_dict(path)
        return autoencoder_class().from_single_file(source, config=str(config_dir), local_files_only=True, **options)
    from safetensors.torch import load_file

    tensors = load_file(path) if form == "safetensors" else checkpoint_state_dict(path)
    model = autoencoder_class("tiny").from_config(autoencoder_class("tiny").load_config(config_dir))
    try:
        model.load_state_dict(tiny_state_dict(tensors), strict=True)
    except RuntimeError as error:
        raise ValueError(f"config key {key}: {path} does not fit the AutoencoderTiny of {config_dir} "
                         f"({str(error).splitlines()[0]} ...)") from error
    return model.float()


def tiny_state_dict(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TAESD weights in diffusers' keys. Accepts diffusers' own (``encoder.layers.N.*``) or the original TAESD
    module's (``encoder.N.*``, ``decoder.N.*``), whose decoder starts with a parameter-free Clamp that diffusers
    applies in ``DecoderTiny.forward`` instead: its layer N is diffusers' N - 1."""
    converted = {}
    for name, tensor in tensors.items():
        part, _, rest = name.partition(".")
        if part not in {"encoder", "decoder"} or rest.startswith("layers.") or not rest.split(".")[0].isdigit():
            converted[name] = tensor
            continue
        index, _, inner = rest.partition(".")
        index = int(index) - (1 if part == "decoder" else 0)
        converted[f"{part}.layers.{index}.{inner}"] = tensor
    return converted


def _load_from_hub(hub_id: str, options: dict, key: str):
    try:
        config = autoencoder_class().load_config(hub_id, local_files_only=bool(os.environ.get("HF_HUB_OFFLINE")))
        family = FAMILIES.get(config.get("_class_name", "AutoencoderKL"), "kl")
        return autoencoder_class(family).from_pretrained(
            hub_id, local_files_only=bool(os.environ.get("HF_HUB_OFFLINE")), **options)
    except Exception as error:  # offline, unknown id, or no access: all end the same way for the user
        raise RuntimeError(
            f"config key {key} = {hub_id!r} looks like a hub id, and it could not be loaded ({type(error).__name__}: "
            f"{error}). On a machine without hub access, download the weights elsewhere (a diffusers folder such as "
            "bullhug/kl-f8-anime2, or the single file vae/kl-f8-anime2.ckpt of hakurei/waifu-diffusion-v1-4), copy "
            f"them here and set {key} to the local folder or file."
        ) from error


class UnsafeCheckpointError(RuntimeError):
    """A pickled checkpoint asked to call something that is not a tensor or plain-container constructor."""


def _stand_in(qualified_name: str) -> type:
    """A harmless class standing in for an unknown global of a checkpoint.

    Unpickling *rebuilds* an object with ``cls.__new__`` (NEWOBJ) and *calls* a global with ``cls(*args)`` (REDUCE).
    Rebuilding a stand-in keeps its state inert (how a pytorch_lightning ModelCheckpoint is skipped); being called
    means the pickle wanted to run that global (``os.system``, ``builtins.exec``, ...), so it is refused unrun.
    """
    module, _, name = qualified_name.rpartition(".")

    def refuse(self, *args, **kwargs):
        raise UnsafeCheckpointError(f"the checkpoint's pickle calls {qualified_name}(...); refusing to load it")

    return type(name, (), {"__module__": module, "__init__": refuse, "__setstate__": lambda self, state: None})


def checkpoint_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a pickled ``.ckpt`` without running any of its code.

    ``torch.load(weights_only=True)`` refuses kl-f8-anime2.ckpt because its pickle also holds pytorch_lightning
    objects. Every global it does not allow gets a stand-in (see ``_stand_in``), and loading stays weights-only.
    """
    unknown = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    stand_ins = [(_stand_in(name), name) for name in unknown]
    with torch.serialization.safe_globals(stand_ins):
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    tensors = {key: value for key, value in (state_dict or {}).items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path}: no tensors found (expected a state_dict of a latent-diffusion autoencoder)")
    return tensors
