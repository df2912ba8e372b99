"""The field's geometry: the 540p config's cost per stage against the 256 px study's (P12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import TINY_VAE, Row, Timer, child_peak_rss_mb, cores, gpu_vae, pick_device


def p12_field_geometry(quick: bool, tmp: Path) -> Row:
    """The 540p config's cost per stage against the 256 px study's, on the same drawing: time per frame (the VAE,
    the metrics) or per triplet (the flow) at 960 x 540 over that at 256 x 256, and the VAE's peak memory for one
    frame. kl-f8 sees 960 x 544 (padded), 7.97 times the pixels of 256 x 256: a stage that scales with pixels costs
    about that much more; the target allows a quarter more than that before calling it worse than linear."""
    import torch

    from latent_interp import data, encode, flow, metrics, perceptual, synthetic, vae

    geometries = {"256": (32, 32), "540p": (96, 54)} if quick else {"256": (256, 256), "540p": (960, 540)}
    repeats = 1 if quick else 2
    device = pick_device()
    model_dir = TINY_VAE if quick else gpu_vae(tmp)
    vae.prepare_torch(cores())
    model, record = vae.load_vae(model_dir, device)
    model = encode.prepare_model(model, device)
    lpips_model = perceptual.LPIPS().eval().to(device)  # random weights: the real one's speed
    estimate = flow.estimator({})
    spec = synthetic.triplet_specs(0, "bench", 1)[0]
    seconds, peaks = {}, {}
    for name, (width, height) in geometries.items():
        triplet = np.stack(synthetic.render_triplet(spec, width, height))
        frames = np.concatenate([triplet] * repeats)
        encode.encode_frames(model, frames[:1], device, 1)  # warm-up: first-call costs are not the stage's
        timings = {}
        with Timer() as timer:
            means, _ = encode.encode_frames(model, frames, device, 1)
        timings["encode"] = timer.seconds / len(frames)
        with Timer() as timer:
            decoded = encode.decode_latents(model, means, device, 1, frame_size=(height, width))
        timings["decode"] = timer.seconds / len(frames)
        with Timer() as timer:
            for _ in range(repeats):
                flow.triplet_flows(triplet, estimate)
        timings["flow"] = timer.seconds / repeats
        for stage, score in (("metrics: standard", metrics.image_metrics),
                             ("metrics: animeinterp", metrics.animeinterp_metrics),
                             ("metrics: eisai chamfer", perceptual.chamfer_distance)):
            with Timer() as timer:
                for frame, truth in zip(decoded, frames):
                    score(truth, frame)
            timings[stage] = timer.seconds / len(frames)
        with Timer() as timer, torch.no_grad():
            for frame, truth in zip(decoded, frames):
                lpips_model(*(torch.from_numpy(np.ascontiguousarray(data.to_model_range(x)[None]))
                              .to(device) for x in (truth, frame)))
        timings["metrics: lpips"] = timer.seconds / len(frames)
        seconds[name] = timings
        peak, printed = child_peak_rss_mb("child_vae_frame.py", cores(), model_dir, width, height)
        cuda = [line for line in printed.splitlines() if line.startswith("CUDA_PEAK_MIB")]
        peaks[name] = float(cuda[0].split()[1]) if cuda else peak
    factor = record["downsampling"]
    padded = {name: -(-w // factor) * factor * -(-h // factor) * factor for name, (w, h) in geometries.items()}
    pixel_ratio = padded["540p"] / padded["256"]
    ratios = {stage: seconds["540p"][stage] / seconds["256"][stage] for stage in seconds["256"]}
    worst_stage = max(ratios, key=ratios.get)
    memory_ratio = peaks["540p"] / peaks["256"]
    met = ratios[worst_stage] <= 1.25 * pixel_ratio
    described = ", ".join(f"{stage} {ratio:.1f}" for stage, ratio in ratios.items())
    return Row("P12", "540p config / 256 px study, time per stage on the same drawing ("
               + ("the tiny VAE" if quick else "kl-f8 architecture") + ")",
               ratios[worst_stage], f"<= {1.25 * pixel_ratio:.1f} (1.25 x the {pixel_ratio:.2f} pixel ratio)", met,
               f"worst {worst_stage} {ratios[worst_stage]:.1f}; {described}; VAE peak memory "
               f"{peaks['540p']:.0f} vs {peaks['256']:.0f} MiB ({memory_ratio:.1f}x)",
               {"device": str(device), "model": str(model_dir), "geometries": geometries,
                "seconds": seconds, "ratios": ratios, "pixel_ratio": pixel_ratio,
                "peak_mib": peaks, "peak_is": "torch.cuda.max_memory_allocated" if device.type == "cuda"
                else "peak RSS of a process that encodes and decodes one frame"})
