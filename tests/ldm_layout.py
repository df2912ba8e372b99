"""Test helper: write a diffusers AutoencoderKL's weights in latent diffusion's key layout (kl-f8-anime2.ckpt's),
the inverse of what diffusers' single-file loader converts."""

import re

import torch

_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename(key: str, blocks: int) -> str:
    key = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
    key = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.down.\1.block.\2", key)
    key = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", key)
    key = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)",
                 lambda m: f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}", key)
    key = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0",
                 lambda m: f"decoder.up.{blocks - 1 - int(m[1])}.upsample", key)
    key = re.sub(r"\.mid_block\.resnets\.(\d+)", lambda m: f".mid.block_{int(m[1]) + 1}", key)
    for new, old in _ATTENTION.items():
        key = key.replace(f".mid_block.attentions.0.{new}.", f".mid.attn_1.{old}.")
    return key


def to_ldm_layout(model) -> dict[str, torch.Tensor]:
    blocks = len(model.config.block_out_channels)
    state = {}
    for key, value in model.state_dict().items():
        new_key = _rename(key, blocks)
        # Latent diffusion's attention uses 1x1 convolutions where diffusers uses linear layers.
        if ".mid.attn_1." in new_key and new_key.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]
        state[new_key] = value.detach().clone().contiguous()
    return state
