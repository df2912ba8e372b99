"""The GPU fast path: kl-f8 encode and decode through the stages' functions, and the fine-tune step (P7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import Row, Timer, cartoon_triplets, gpu_vae, pick_device
from rows.training import finetune_step_ratio

P7_TARGET = "encode >= 1,500, decode >= 700 img/s; metrics >= decode; fine-tune >= 0.85"
P7_MEASURES = "GPU: kl-f8 encode/decode img/s through the stage functions (256 px, bf16); fine-tune step / bare"


def _stage_rates(model_dir: Path, device, frames: np.ndarray, batch: int, compiled: bool, layout) -> dict:
    """Encode and decode img/s of ``frames`` through encode_frames / decode_latents (the stages' functions), the
    model in ``layout`` and compiled or not (vae.compile_model), after a first batch that holds any compile."""
    import torch

    from latent_interp import encode, vae

    model = vae.load_vae(model_dir, device)[0].to(memory_format=layout)  # the stages' inputs follow the weights
    record = vae.compile_model(model, device, compiled)
    with Timer() as first:
        latents, _ = encode.encode_frames(model, frames[:batch], device, batch)
        encode.decode_latents(model, latents, device, batch)
    with Timer() as encoding:
        latents, _ = encode.encode_frames(model, frames, device, batch)
    with Timer() as decoding:
        decoded = encode.decode_latents(model, latents, device, batch)
    torch.cuda.empty_cache() if device.type == "cuda" else None
    return {"encode_img_s": len(frames) / encoding.seconds, "decode_img_s": len(frames) / decoding.seconds,
            "first_batch_seconds": first.seconds, "compiled": record["compiled"], "layout": str(layout),
            "batch_size": batch, "decoded": decoded}


def p7_gpu(quick: bool, tmp: Path, device=None, model_dir: Path | None = None) -> Row:
    """On a GPU: kl-f8 encode and decode img/s at 256 px in bf16 through the stage functions, eager and compiled
    (vae.compile), in both layouts, at batch 64 and at vae.batch_size auto's choice; the metric engine's img/s and
    its agreement with skimage; a fine-tune step against the bare forward and backward. The study at ATD-12K's size
    is row P14. ``device`` and ``model_dir`` let the tests run this code on the CPU with the tiny VAE, eager only
    (the compiled path has its own CPU test; no figures here)."""
    import torch

    from latent_interp import metrics, vae

    device = device or pick_device()
    if device.type != "cuda" and model_dir is None:
        return Row("P7", P7_MEASURES, None, P7_TARGET, None, "no GPU here: not measured (python bench/run.py --rows "
                   "P7 on a GPU machine)")
    model_dir = model_dir or gpu_vae(tmp)
    batch, batches, size = (4, 2, 64) if quick else (64, 16, 256)
    triplets = cartoon_triplets(batches * batch // 3 + 1, size)
    frames = triplets.reshape(-1, size, size, 3)[:batches * batch]
    variants = {"eager": (False, torch.contiguous_format), "eager channels_last": (False, torch.channels_last)}
    if device.type == "cuda":  # the compiled path costs a minute a variant; on the CPU it has its own test
        variants.update({"compiled": (True, torch.contiguous_format),
                         "compiled channels_last": (True, torch.channels_last)})
    rates = {}
    for label, (compiled, layout) in variants.items():
        rates[label] = _stage_rates(model_dir, device, frames, batch, compiled, layout)
        print(f"  {label}: encode {rates[label]['encode_img_s']:.0f}, decode {rates[label]['decode_img_s']:.0f} "
              f"img/s (first batch {rates[label]['first_batch_seconds']:.1f} s)", flush=True)
    auto = vae.auto_batch_size(vae.load_vae(model_dir, device)[0], device, (size, size), 4)
    if device.type == "cuda" and auto["batch_size"] != batch:
        larger = frames if len(frames) >= 4 * auto["batch_size"] else np.concatenate(
            [frames] * -(-4 * auto["batch_size"] // len(frames)))
        rates["compiled channels_last, batch auto"] = _stage_rates(model_dir, device, larger, auto["batch_size"],
                                                                   True, torch.channels_last)
    # what a stage runs with vae.compile auto on a job large enough to pay for the compile, in the layout
    # encode.memory_format picks with it
    chosen = "compiled channels_last" if vae.compiles("auto", device) else ("eager channels_last"
                                                                             if device.type == "cpu" else "eager")
    encode_rate, decode_rate = rates[chosen]["encode_img_s"], rates[chosen]["decode_img_s"]
    decoded = rates[chosen].pop("decoded")
    for record in rates.values():
        record.pop("decoded", None)
    with Timer() as scoring:
        scores = metrics.torch_image_metrics(frames, decoded, device)
    metric_rate = len(frames) / scoring.seconds
    # the GPU engine against skimage's per-image calls, on a few of the same images
    metric_difference = max(float(np.abs(scores[i] - metrics.image_metrics(frames[i], decoded[i])).max())
                            for i in range(0, len(frames), len(frames) // 8))
    step_ratio, step_details = finetune_step_ratio(model_dir, device, tmp, triplets[:6 if quick else 48])
    met = encode_rate >= 1500 and decode_rate >= 700 and step_ratio >= 0.85 and metric_rate >= decode_rate \
        and metric_difference <= 1e-5
    levers = "; ".join(f"{label} {r['encode_img_s']:.0f}/{r['decode_img_s']:.0f}" for label, r in rates.items())
    return Row("P7", P7_MEASURES, encode_rate, P7_TARGET, met,
               f"encode {encode_rate:.0f} img/s, decode {decode_rate:.0f} img/s ({chosen}; encode/decode img/s by "
               f"variant: {levers}), metrics {metric_rate:.0f} img/s (max difference to skimage "
               f"{metric_difference:.1e}); fine-tune step {step_ratio:.2f}",
               {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "batch_size": batch,
                "frames": len(frames), "stage_rates_by_variant": rates, "chosen": chosen, "batch_auto": auto,
                "metric_img_s": metric_rate, "metric_max_difference_to_skimage": metric_difference,
                "finetune": step_details})

