"""Loading the VAE in every form it ships in, choosing its device, and the tiny kl-f8-shaped demo architecture.

Every model is a diffusers ``AutoencoderKL``. A diffusers folder (the tiny demo VAE in ``models/tiny-vae``, a local
copy of ``bullhug/kl-f8-anime2``) loads with ``from_pretrained``; a single file in latent diffusion's key layout
(``kl-f8-anime2.ckpt`` or a ``.safetensors``) loads with ``from_single_file`` and the kl-f8 config shipped here.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

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


KL_F8_CONFIG = Path(__file__).parent / "configs" / "kl-f8"  # kl-f8-anime2's architecture, for single files


def autoencoder_class():
    """diffusers' AutoencoderKL, imported when a model is built or loaded: importing diffusers takes about 3 s
    beyond torch, which the jobs that only pick a device or set threads (interp_train) need not pay."""
    from diffusers import AutoencoderKL

    return AutoencoderKL


def build_vae(**overrides) -> AutoencoderKL:
    """A freshly initialised AutoencoderKL with the tiny config, any key overridden (tests shrink it further)."""
    return autoencoder_class()(**{**TINY_VAE_CONFIG, **overrides})


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
    """sha256 over the encoder's tensors (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(ENCODER_PREFIXES):
            tensor = tensor.detach().to("cpu", copy=False).contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def load_vae(source: str | Path, device: torch.device | str = "cpu",
             single_file_config: str | Path | None = None) -> tuple[AutoencoderKL, dict]:
    """Load the VAE from any form ``source_format`` accepts; return it in eval mode with its provenance record.

    Single files are converted with the kl-f8 architecture config shipped in ``latent_interp/configs/kl-f8`` (or
    ``single_file_config``, a folder holding a diffusers config.json), so they load with no network access.
    """
    form = source_format(source)
    # low_cpu_mem_usage=False: the default asks for accelerate, which this project does not need.
    options = dict(torch_dtype=torch.float32, low_cpu_mem_usage=False)
    config_dir = str(single_file_config or KL_F8_CONFIG)
    if form == "diffusers":
        model, digest = autoencoder_class().from_pretrained(source, **options), folder_digest(source)
    elif form == "safetensors":
        model = autoencoder_class().from_single_file(str(source), config=config_dir, local_files_only=True, **options)
        digest = file_digest(source)
    elif form == "ckpt":
        state_dict = checkpoint_state_dict(source)
        model = autoencoder_class().from_single_file(state_dict, config=config_dir, local_files_only=True, **options)
        digest = file_digest(source)
    else:
        model, digest = _load_from_hub(str(source), options), None
    model.to(device).eval()
    provenance = {
        "source": str(source),
        "format": form,
        "sha256": digest,
        "encoder_sha256": encoder_digest(model),
        "scaling_factor": float(model.config.scaling_factor),
        "config": {key: value for key, value in model.config.items() if not key.startswith("_")},
    }
    if form in {"safetensors", "ckpt"}:
        provenance["single_file_config"] = config_dir
    return model, provenance


def _load_from_hub(hub_id: str, options: dict) -> AutoencoderKL:
    try:
        return autoencoder_class().from_pretrained(hub_id, local_files_only=bool(os.environ.get("HF_HUB_OFFLINE")),
                                             **options)
    except Exception as error:  # offline, unknown id, or no access: all end the same way for the user
        raise RuntimeError(
            f"vae.pretrained = {hub_id!r} looks like a hub id, and it could not be loaded ({type(error).__name__}: "
            f"{error}). On a machine without hub access, download the weights elsewhere (a diffusers folder such as "
            "bullhug/kl-f8-anime2, or the single file vae/kl-f8-anime2.ckpt of hakurei/waifu-diffusion-v1-4), copy "
            "them here and set vae.pretrained to the local folder or file."
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
