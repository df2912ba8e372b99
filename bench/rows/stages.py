"""The stage rows: the encode stage against a bare encoder (P1), the metric stage against the seed's loop (P2),
the encode stage's peak memory as the split grows (P5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import (TINY_VAE, Row, Timer, batch_rate, cartoon_triplets, child_peak_rss_mb, cores, frames_store,
                    gpu_vae, pick_device)
from latent_interp.settings import VaeRun


def p1_encode(quick: bool, tmp: Path) -> Row:
    """Encode stage (store read, normalise, VAE, store write) against the bare encoder forward, same batches.

    The stage runs on N and on 2N triplets; the difference is its marginal time for N triplets, which leaves out
    model loading and hashing (paid once per job, whatever the split's size)."""
    import torch

    from latent_interp import encode, vae

    device = pick_device()
    gpu = device.type == "cuda"
    if gpu:
        size, count, batch, model_dir = 256, 1024, 64, gpu_vae(tmp)
    else:
        size, count, batch, model_dir = (32, 8, 8, TINY_VAE) if quick else (128, 192, 16, TINY_VAE)
    vae.prepare_torch(cores())
    triplets = cartoon_triplets(count, size)
    half = frames_store(tmp / "p1-half.zarr", triplets[:count // 2])
    whole = frames_store(tmp / "p1-whole.zarr", triplets)
    times = {}
    for name, path in (("warm-up", half), ("half", half), ("whole", whole)):
        with Timer() as timer:
            encode.encode_split(frames=path, latents=tmp / f"p1-{name}-latents.zarr", split="bench",
                                vae_run=VaeRun(model_dir, batch_size=batch, device=device.type), threads=cores())
        times[name] = timer.seconds
    frames = count // 2 * 3
    # At --quick sizes timing noise can exceed the difference; a floor keeps the (meaningless) figure defined.
    stage_rate = frames / max(times["whole"] - times["half"], 1e-3)
    model, _ = vae.load_vae(model_dir, device)
    model = encode.prepare_model(model, device)
    flat = triplets[:count // 2].reshape(-1, size, size, 3)
    batches = [encode.to_model_input(flat[start:start + batch], device) for start in range(0, frames, batch)]

    @torch.inference_mode()
    def forward(x):
        with encode.autocast_for(device):
            model.encode(x)

    bare_rate = batch_rate(forward, batches) * frames / len(batches)
    ratio = stage_rate / bare_rate
    target = 0.85 if gpu else 0.90
    return Row("P1", "encode stage / bare VAE encoder forward, same batches", ratio,
               f">= {target:.2f} ({'GPU, bf16' if gpu else 'CPU'})", ratio >= target,
               f"{ratio:.2f} ({stage_rate:.1f} vs {bare_rate:.1f} img/s)",
               {"device": str(device), "size": size, "frames": frames, "batch_size": batch,
                "model": "kl-f8 architecture" if gpu else "models/tiny-vae", "seconds": times})

def _recon_like(triplets: np.ndarray) -> np.ndarray:
    """A reconstruction's kind of error: a blurred, slightly shifted copy (what a VAE does to line art)."""
    blurred = triplets.astype(np.float32)
    blurred = (blurred + np.roll(blurred, 1, axis=2) + np.roll(blurred, 1, axis=3)) / 3
    return np.clip(blurred + 3, 0, 255).astype(np.uint8)


def p2_metrics(quick: bool, tmp: Path) -> Row:
    """Metric stage against cores x the seed's single-core per-image skimage loop, on the same frames."""
    from latent_interp import metrics, store

    count, size = (6, 64) if quick else (300, 256)
    triplets = cartoon_triplets(count, size)
    truth = frames_store(tmp / "p2-frames.zarr", triplets)
    recon_values = _recon_like(triplets)
    recon = store.create(tmp / "p2-recon.zarr", "recon", "bench", {}, store.names(store.open_store(truth)),
                         store.origins(store.open_store(truth)))
    store.add_array(recon, store.FRAMES, triplets.shape[1:], np.uint8)[:] = recon_values
    store.seal(recon)
    sample = min(count, 8 if quick else 60)  # the loop's rate, from the first triplets
    with Timer() as loop:
        expected = [metrics.image_metrics(triplets[t, f], recon_values[t, f]) for t in range(sample) for f in range(3)]
    loop_rate = 3 * sample / loop.seconds
    workers = cores()
    with Timer() as stage:
        table = metrics.compute_split_metrics(frames=truth, recon=tmp / "p2-recon.zarr", model="m", split="bench",
                                              outputs=metrics.MetricsOutputs(tmp / "p2.csv", tmp / "p2.json"),
                                              threads=workers, device="cpu")
    stage_rate = 3 * count / stage.seconds
    difference = float(np.abs(table[["mse", "psnr", "ssim"]].to_numpy()[:3 * sample] - np.array(expected)).max())
    ratio = stage_rate / (workers * loop_rate)
    met = ratio >= 0.85 and difference <= 1e-5
    return Row("P2", "metric stage / (cores x single-core skimage loop), values equal to 1e-5", ratio, ">= 0.85 (CPU)",
               met, f"{ratio:.2f} ({stage_rate:.1f} img/s on {workers} cores vs {loop_rate:.1f} on one; "
               f"max difference {difference:.1e})",
               {"images": 3 * count, "size": size, "workers": workers, "stage_seconds": stage.seconds})

def p5_encode_memory(quick: bool, tmp: Path) -> Row:
    """Peak memory of the encode stage on 10,000 triplets against 1,000. 64 px frames: small enough to be quick,
    large enough that a read (whole chunks of the latents store, 1,365 triplets) is a part of the split, as at 256 px
    (85 triplets), not all of it."""
    small, large = (20, 200) if quick else (1000, 10_000)
    peaks = {}
    for count in (small, large):
        # The child builds its frames store from few drawn triplets before encoding; both sizes do the same.
        peaks[count], _ = child_peak_rss_mb("child_encode.py", tmp, count, 64, TINY_VAE)
    ratio = peaks[large] / peaks[small]
    return Row("P5", f"encode peak RSS, {large:,} triplets / {small:,} (64 px)", ratio, "<= 1.2", ratio <= 1.2,
               f"{ratio:.2f} ({peaks[large]:.0f} MiB vs {peaks[small]:.0f} MiB)", {"peak_mib": peaks})
