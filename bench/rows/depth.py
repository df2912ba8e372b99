"""The warps inside the decoder (interp's decoder_flow@k and their oracles) against a plain decode of the same
latents (P15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import TINY_VAE, Row, Timer, cores


def p15_decoder_warps(quick: bool, tmp: Path) -> Row:
    """What interp pays per triplet for every decoder_flow@k and decoder_flow_oracle@k (the ends decoded once, each
    level's blend decoded from there, for both flows), in plain decodes of one latent: the shipped tiny VAE at the
    demo's 128 px. The bound: one decode per warped method (four levels, two flows)."""
    import torch

    from latent_interp import encode, vae
    from latent_interp.interp.depth import DecoderWarps

    count, size = (4, 32) if quick else (64, 128)
    vae.prepare_torch(cores())
    device = torch.device("cpu")
    model, _ = vae.load_vae(TINY_VAE, device)
    model = encode.prepare_model(model, device)
    rng = np.random.default_rng(0)
    latents = rng.normal(0, 1, (count, 3, 4, size // 8, size // 8)).astype(np.float32)
    motion = tuple(torch.from_numpy(rng.normal(0, scale, (count, channels, size, size)).astype(np.float32))
                   for channels, scale in ((2, 2.0), (2, 2.0), (1, 0.0), (1, 0.0)))
    motion = motion[:2] + (motion[2] + 0.5, motion[3])
    warps = DecoderWarps(model, 16, "auto", (size, size))
    encode.decode_latents(model, latents[:2, 1], device, 16)  # warm-up: the first convolutions pick their kernels
    with Timer() as plain:
        encode.decode_latents(model, latents[:, 1], device, 16)
    with Timer() as warped:
        warps.frames(latents, {"estimated": motion, "oracle": motion})
    methods = 2 * warps.count
    decodes = warped.seconds / plain.seconds
    return Row("P15", "decoder_flow@k and their oracles, per triplet, in plain decodes of one latent", decodes,
               f"<= {methods} (one per method)", decodes <= methods,
               f"{decodes:.1f} decodes for {methods} methods ({warped.seconds / count * 1000:.0f} vs "
               f"{plain.seconds / count * 1000:.0f} ms a triplet; {count} triplets at {size} px, tiny-kl, CPU)",
               {"triplets": count, "size": size, "levels": warps.count, "plain_seconds": plain.seconds,
                "warped_seconds": warped.seconds, "threads": cores()})
