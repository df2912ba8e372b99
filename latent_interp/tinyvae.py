"""Training the tiny demo VAEs from scratch on synthetic frames (``python tools/train_tiny_vae.py``).

The demo ships the results under ``models/tiny-vae`` (family kl: an AutoencoderKL trained as latent diffusion trains
its autoencoder) and ``models/tiny-taesd`` (family tiny: an AutoencoderTiny distilled from a teacher as TAESD is
from SD's VAE: its encoder regresses the teacher's scaled latents, its decoder reconstructs the frames from them, so
both speak the teacher's latent space). The workflow never trains them. The loop is short on purpose
(nanoGPT style): one checkpoint file holds model, EMA weights, optimizer, step and config, so a killed run resumes.

Why these choices: random 64x64 crops of the full-size frames (the model is fully convolutional) make a step cheap
enough for 2 CPU cores; an MSE reconstruction loss optimises PSNR, the demo's figure (in a 300-step comparison it
reached 16.6 dB where L1 reached 15.1); the KL term is scaled as latent
diffusion scales it (weight 1e-6 against a reconstruction summed over the image), so it regularises without
erasing the latent (the seed's collapse, ../shared/REFERENCE.md); the EMA of the weights is what gets saved.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from latent_interp import data, finetune, synthetic, vae


@dataclass
class TrainConfig:
    family: str = "kl"  # or "tiny": distil an AutoencoderTiny from ``teacher``
    teacher: str = ""  # family tiny: the AutoencoderKL (any form vae.load_vae takes) whose latent space it learns
    steps: int = 12000
    batch_size: int = 16
    crop: int = 64
    lr: float = 7e-4  # 2e-3 gave a higher loss than 5e-4 or 2e-4 in a 150-step comparison
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    reconstruction_loss: str = "mse"  # or "l1"; mse optimises PSNR directly
    kl_weight: float = 1e-6
    ema_decay: float = 0.999
    seed: int = 1234  # not the demo's seed 0: the shipped model never sees the demo's own frames
    train_triplets: int = 1500
    val_triplets: int = 32
    size: int = 256
    raw_width: int = 256
    raw_height: int = 144
    resample: str = "bilinear"
    jpeg_quality: int = 95
    eval_every: int = 500
    checkpoint_every: int = 250
    threads: int = 2


def render_frames(seed: int, split: str, count: int, cfg: TrainConfig) -> np.ndarray:
    """``count`` synthetic triplets as uint8 [count * 3, size, size, 3], through the same JPEG + resize as the demo."""
    frames = []
    for spec in synthetic.triplet_specs(seed, split, count):
        for frame in synthetic.render_triplet(spec, cfg.raw_width, cfg.raw_height):
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="JPEG", quality=cfg.jpeg_quality, subsampling=0)
            frames.append(data.preprocess_frame(Image.open(buffer), cfg.size, cfg.resample))
    return np.stack(frames)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def random_crops(frames: np.ndarray, batch_size: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    index = rng.integers(len(frames), size=batch_size)
    tops = rng.integers(frames.shape[1] - crop + 1, size=batch_size)
    lefts = rng.integers(frames.shape[2] - crop + 1, size=batch_size)
    batch = np.stack([frames[i, t:t + crop, l:l + crop] for i, t, l in zip(index, tops, lefts)])
    flip = rng.random(batch_size) < 0.5
    batch[flip] = batch[flip, :, ::-1]
    return torch.from_numpy(data.to_model_range(batch))


@torch.no_grad()
def mean_psnr(model, frames: np.ndarray, batch_size: int = 16) -> float:
    """Mean per-image PSNR (uint8 round trip, data range 1) of decoding the encoder's latent (posterior mean)."""
    psnrs = []
    for start in range(0, len(frames), batch_size):
        batch = frames[start:start + batch_size]
        x = torch.from_numpy(data.to_model_range(batch))
        rec = data.to_uint8(model.decode(vae.posterior(model, x)[0]).sample.numpy())
        mse = ((rec.astype(np.float64) - batch) / 255.0) ** 2
        psnrs.extend(10 * np.log10(1.0 / np.maximum(mse.mean(axis=(1, 2, 3)), 1e-12)))
    return float(np.mean(psnrs))


def kl_loss(model, x: torch.Tensor, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, kl) of an AutoencoderKL: latent diffusion's autoencoder loss without its GAN."""
    posterior = model.encode(x).latent_dist
    reconstruction = model.decode(posterior.sample()).sample
    error = reconstruction - x
    rec_loss = error.abs().mean() if cfg.reconstruction_loss == "l1" else error.square().mean()
    # KL summed per image, divided by the pixel count: the same ratio as latent diffusion's summed losses.
    kl = posterior.kl().mean() / x[0].numel()
    return rec_loss + cfg.kl_weight * kl, rec_loss, kl


def distillation_loss(model, teacher, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, latent error) of an AutoencoderTiny learning ``teacher``'s scaled latent space, as TAESD
    does (without its adversarial term): the encoder regresses (mean - shift) * scale, and the decoder reconstructs
    the frame from that target, so it decodes the teacher's latents as well as its own encoder's."""
    with torch.no_grad():
        mean, _ = vae.posterior(teacher, x)
        target = (mean - (teacher.config.shift_factor or 0.0)) * teacher.config.scaling_factor
    latent_error = (model.encode(x).latents - target).square().mean()
    rec_loss = (model.decode(target).sample - x).square().mean()
    return rec_loss + latent_error, rec_loss, latent_error


def train(out_dir: str | Path, checkpoint_path: str | Path, cfg: TrainConfig) -> None:
    torch.set_num_threads(cfg.threads)
    out_dir, checkpoint_path = Path(out_dir), Path(checkpoint_path)
    torch.manual_seed(cfg.seed)
    model = vae.build_vae(cfg.family)
    teacher = None
    if cfg.family == "tiny":
        if not cfg.teacher:
            raise ValueError("--teacher: family tiny distils from a teacher AutoencoderKL (e.g. models/tiny-vae)")
        teacher, teacher_record = vae.load_vae(cfg.teacher)
        teacher.requires_grad_(False)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        ema.load_state_dict(checkpoint["ema"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        rng.bit_generator.state = checkpoint["numpy_rng"]
        torch.set_rng_state(checkpoint["torch_rng"])
        step = checkpoint["step"]
        print(f"resumed from {checkpoint_path} at step {step}", flush=True)

    print("rendering training frames ...", flush=True)
    train_frames = render_frames(cfg.seed, "train", cfg.train_triplets, cfg)
    val_frames = render_frames(cfg.seed, "val", cfg.val_triplets, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "training_log.csv"  # the curve ships with the model
    fresh_log = step == 0
    with open(log_path, "w" if fresh_log else "a", newline="") as log_file:
        writer = csv.writer(log_file)
        if fresh_log:
            # "kl" is the latent error against the teacher for family tiny
            writer.writerow(["step", "lr", "loss", "reconstruction", "kl", "val_psnr_ema", "seconds", "objective"])
        started, running = time.time(), []
        while step < cfg.steps:
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = random_crops(train_frames, cfg.batch_size, cfg.crop, rng)
            loss, rec_loss, kl = kl_loss(model, x, cfg) if teacher is None else distillation_loss(model, teacher, x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            finetune.update_ema(ema, model, cfg.ema_decay)
            step += 1
            running.append((loss.item(), rec_loss.item(), kl.item()))
            if step % cfg.eval_every == 0 or step == cfg.steps:
                val_psnr = mean_psnr(ema.eval(), val_frames)
                means = np.mean(running, axis=0)
                objective = cfg.reconstruction_loss if teacher is None else "distillation"
                writer.writerow([step, f"{lr:.6g}", *(f"{m:.6g}" for m in means), f"{val_psnr:.3f}",
                                 f"{time.time() - started:.0f}", objective])
                log_file.flush()
                print(f"step {step}: loss {means[0]:.4f} val PSNR (EMA) {val_psnr:.2f} dB", flush=True)
                running = []
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                finetune.save_checkpoint(checkpoint_path, dict(
                    model=model.state_dict(), ema=ema.state_dict(), optimizer=optimizer.state_dict(), step=step,
                    numpy_rng=rng.bit_generator.state, torch_rng=torch.get_rng_state(), config=asdict(cfg)))
    ema.save_pretrained(out_dir, safe_serialization=True)
    record = {"trained_by": "tools/train_tiny_vae.py", "config": asdict(cfg),
              "val_psnr_ema": mean_psnr(ema, val_frames)}
    if teacher is not None:
        record["teacher"] = {k: v for k, v in teacher_record.items() if k != "config"}
        record["teacher_val_psnr"] = mean_psnr(teacher, val_frames)
    (out_dir / "training.json").write_text(json.dumps(record, indent=2) + "\n")
