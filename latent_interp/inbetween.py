"""Rule inbetween: a video re-timed with in-betweens, for one model.

Between every two consecutive drawings of the video's extraction (``drawings.csv``), ``inbetween.factor`` F minus one
in-betweens at t = k/F, made by ``inbetween.method`` (a method of the registry that does not see frame 2), so a video
of n drawings gives (n - 1) F + 1 frames. Each frame is placed at its own time: a drawing at its timestamp, the
in-between at t between drawings k and k + 1 at time_k + t (time_k+1 - time_k), so the clip keeps the video's timing
(on twos, irregular or not) with more drawings in it. Across a scene cut the slots hold the drawing before the cut:
nothing is in-betweened from one shot into another.

The drawings are decoded again from the video (``video.frames_at``, the frames the extraction counted) and
preprocessed as the study's frames are (``preprocess``), so the clip is at the study's size; each pair's flows come
from the same estimator as the flow stage's (``flow.pair_rows``), and the method runs exactly as rule interp runs it,
at t (``interp.Chunk``).

Folder ``results/inbetween/{model}/{video}/``:
    ``inbetween.mp4``  the re-timed clip: H.264, yuv420p, CRF 18 (``inbetween.codec: h264``), or lossless (libx264rgb
                       at CRF 0, RGB as computed; few players read it)
    ``compare.mp4``    the source as it plays (each drawing held until the next), the method and ``pixel_blend`` at
                       the same t, side by side, labelled
    ``manifest.csv``   one row per frame of the clip (``MANIFEST_COLUMNS``): ``frame`` (0-based), ``time`` (s),
                       ``kind`` (``drawing``, ``inbetween`` or ``held``), ``drawing`` (the drawing shown or the
                       pair's first), ``next_drawing`` (the pair's second; empty for a drawing), ``t`` (0 for a
                       drawing), ``note`` (why a slot is held, or that the pair's flow is not finite and
                       ``pixel_blend`` stands in)
    ``clip.json``      the counts, the settings, the model's VAE record and provenance; ``skipped``: why the video has
                       no clip (fewer than two drawings), the folder then holding nothing else
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from latent_interp import data, encode, flow, interp, predictors as learned_predictors, store, vae, video
from latent_interp.interp.depth import DecoderWarps
from latent_interp.interp.scoring import _predict_chunk
from latent_interp.settings import Preprocess, VaeRun

CODECS = {"h264": ("libx264", "yuv420p", {"crf": "18"}), "lossless": ("libx264rgb", "rgb24", {"crf": "0"})}
MANIFEST_COLUMNS = ["frame", "time", "kind", "drawing", "next_drawing", "t", "note"]
CLIP, COMPARE, MANIFEST, RECORD = video.CLIP, video.COMPARE, video.CLIP_MANIFEST, video.CLIP_RECORD
PAIRS_PER_BATCH = 16  # pairs of drawings predicted together: the memory of a chunk of rule interp
TIME_BASE = Fraction(1, 90000)  # the clips' timestamps: MPEG's clock, fine enough for any factor
LABEL_BAND = 16  # px above each panel of the comparison, for its label


def plan(drawings: pd.DataFrame, factor: int) -> pd.DataFrame:
    """The clip's frames (``MANIFEST_COLUMNS``) for ``drawings`` (``video.read_drawings``): each drawing, then between
    it and the next F - 1 in-betweens at t = k/F, held across a scene cut."""
    rows = []
    for position, drawing in enumerate(drawings.itertuples(index=False)):
        rows.append({"time": drawing.time, "kind": "drawing", "drawing": drawing.drawing, "next_drawing": None,
                     "t": 0.0, "note": ""})
        if position + 1 == len(drawings):
            break
        following = drawings.iloc[position + 1]
        cut = following["scene"] != drawing.scene
        for step in range(1, factor):
            t = step / factor
            rows.append({"time": drawing.time + t * (following["time"] - drawing.time),
                         "kind": "held" if cut else "inbetween", "drawing": drawing.drawing,
                         "next_drawing": int(following["drawing"]), "t": t,
                         "note": "a scene cut: no in-between across it" if cut else ""})
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS[1:]).astype({"drawing": int, "next_drawing": "Int64"})
    table.insert(0, "frame", np.arange(len(table)))
    return table


def make_inbetweens(pairs: np.ndarray, ts: list[float], method: str, model, vae_record: dict, learned: dict,
                    device: torch.device, batch_size: int, flow_settings: dict | None = None,
                    guard: encode.NonFiniteGuard | None = None) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """For pairs of drawings [P, 2, H, W, 3] uint8: t -> the method's in-betweens [P, H, W, 3] at each t of ``ts``,
    computed as rule interp computes the method (a ``Chunk`` of the pairs at t, their latents, reconstructions and
    flows); and ``ok`` [P], false where the pair's flow is not finite and a flow method fell back to ``pixel_blend``."""
    registered = interp.REGISTRY[method]
    count = len(pairs)
    triplets = pairs[:, [0, 0, 1]]  # no frame 2 exists: its slot repeats frame 1, and no method it may be reads it
    rows, ok = flow.pair_rows(pairs, flow_settings) if registered.reads_flow else (None, np.ones(count, bool))
    latents = recon = np.zeros((count, 3, 1, 1, 1), np.float32)
    if set(registered.reads) & {"latents", "recon", "predictor"} or registered.output == "latent":
        frames = pairs.reshape(-1, *pairs.shape[2:])
        posterior = encode.encode_frames(model, frames, device, batch_size, vae_record["dtype"], guard)
        latents = posterior[0].reshape(count, 2, *posterior[0].shape[1:])[:, [0, 0, 1]]
        if "recon" in registered.reads:
            decoded = encode.decode_latents(model, latents[:, [0, 2]].reshape(-1, *latents.shape[2:]), device,
                                            batch_size, vae_record["dtype"], pairs.shape[2:4], guard)
            recon = decoded.reshape(count, 2, *decoded.shape[1:])[:, [0, 0, 1]]
    decoder = DecoderWarps(model, batch_size, vae_record["dtype"], pairs.shape[2:4], guard) \
        if method.startswith("decoder_flow") else None
    made = {}
    for t in ts:
        chunk = interp.Chunk(triplets, recon, latents, rows, learned, device, dict(flow_settings or {}),
                             vae_record.get("downsampling", 8), decoder, np.full(count, t))
        images = _predict_chunk(chunk, [method], model, batch_size, vae_record["dtype"], guard)[0][method]
        fallback = interp.pixel_blend(pairs[:, 0], pairs[:, 1], np.full(count, t))
        made[t] = np.where(ok[:, None, None, None], images, fallback)
    return made, ok


def _fill_inbetweens(clip_frames: np.ndarray, blends: np.ndarray, frames: pd.DataFrame, images: np.ndarray,
                     scenes: np.ndarray, factor: int, method: str, runner: tuple, flow_settings: dict | None,
                     guard: encode.NonFiniteGuard, progress) -> int:
    """Put the method's in-betweens (and ``pixel_blend``'s, for the comparison) into their slots of the clip
    (``frames``, the plan), for every pair of consecutive drawings of one scene, ``PAIRS_PER_BATCH`` at a time;
    ``runner``: (model, VAE record, learned predictors, device, batch size). Returns how many pairs had no finite
    flow (noted in the plan)."""
    slot = {(row.drawing, row.t): row.frame for row in frames[frames["kind"] == "inbetween"].itertuples()}
    pairs = np.flatnonzero(scenes[1:] == scenes[:-1])  # drawing k and k + 1, not across a cut
    ts = [step / factor for step in range(1, factor)]  # as plan() writes them, so the slots match exactly
    fell_back = 0
    for start in range(0, len(pairs), PAIRS_PER_BATCH):
        batch = pairs[start:start + PAIRS_PER_BATCH]
        made, ok = make_inbetweens(np.stack([images[batch], images[batch + 1]], axis=1), ts, method, *runner,
                                   flow_settings, guard)
        fell_back += int((~ok).sum())
        for k in batch[~ok]:
            frames.loc[(frames["drawing"] == k) & (frames["kind"] == "inbetween"), "note"] = \
                "the pair's flow is not finite: pixel_blend"
        for t, inbetweens in made.items():
            where = [slot[(k, t)] for k in batch]
            clip_frames[where] = inbetweens
            blends[where] = interp.pixel_blend(images[batch], images[batch + 1], np.full(len(batch), t))
        progress.update(len(batch))
    return fell_back


def write_clip(path: Path, frames, times: np.ndarray, codec: str) -> None:
    """``frames`` (an iterable of uint8 [H, W, 3], even sides) at ``times`` (s) as an MP4 written with PyAV."""
    import av

    name, pixel_format, options = CODECS[codec]
    times = np.asarray(times, dtype=np.float64)
    steps = np.diff(times)
    rate = Fraction(1 / float(np.median(steps))).limit_denominator(1000) if len(steps) else Fraction(24)
    with av.open(str(path), "w") as container:
        stream = None
        for image, time in zip(frames, times):
            if stream is None:
                stream = container.add_stream(name, rate=rate, options=options)
                stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], pixel_format
                stream.codec_context.time_base = TIME_BASE
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = int(round((time - times[0]) / TIME_BASE)), TIME_BASE
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode(None))


def labelled(panels: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """Panels [H, W, 3] side by side, each under a white band with its label."""
    import cv2

    row = []
    for image, label in panels:
        band = np.full((LABEL_BAND, image.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label, (3, LABEL_BAND - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        row.append(np.concatenate([band, image]))
    return np.concatenate(row, axis=1)


class ClipInputs(NamedTuple):
    """Rule inbetween's inputs: the video file, its extraction folder and, for a learned method, the model's folder of
    learned predictors."""
    video_file: str
    extraction: str
    predictors: str | None = None


def retime_video(*, inputs: ClipInputs, clip, model: str, vae_run: VaeRun, preprocess: Preprocess, settings: dict,
                 flow_settings: dict | None = None, threads: int = 1) -> dict:
    """Rule inbetween: the video of ``inputs`` (its extraction's drawings) re-timed by ``model`` into the folder
    ``clip`` (module docstring); returns clip.json's record. ``settings``: config ``inbetween`` (method, factor,
    codec)."""
    video_file, extraction, predictors = inputs
    out_dir, method, factor = Path(clip), settings["method"], int(settings["factor"])
    out_dir.mkdir(parents=True, exist_ok=True)
    drawings = video.read_drawings(extraction)
    record = {"model": model, "video": str(video_file), "extraction": str(extraction), "settings": dict(settings),
              "skipped": None}
    if len(drawings) < 2:
        record["skipped"] = (f"{len(drawings)} drawing{'' if len(drawings) == 1 else 's'} in its extraction: an "
                             "in-between needs two")
        (out_dir / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        print(f"inbetween {model}/{Path(video_file).name}: no clip, {record['skipped']}")
        return record
    vae.prepare_torch(threads)
    device = vae.pick_device(vae_run.device)
    model_object, vae_record = vae.load_vae(vae_run.source, device, **(vae_run.options or {}))
    model_object = encode.prepare_model(model_object, device)
    learned = {}
    if interp.REGISTRY[method].learned:
        learned, _ = learned_predictors.load_predictors(predictors, device)
    images = np.stack([data.preprocess_frame(Image.fromarray(image), preprocess.size, preprocess.resample,
                                             preprocess.fit)
                       for image in video.frames_at(video_file, drawings["frame"])])
    frames = plan(drawings, factor)
    source = images[frames["drawing"].to_numpy(int)]  # what the video shows at each frame's time
    clip_frames, blends = source.copy(), source.copy()  # the drawings, and the slots held at a cut, are the source's
    guard, scenes = encode.NonFiniteGuard(), drawings["scene"].to_numpy()
    with torch.inference_mode(), tqdm(total=int((scenes[1:] == scenes[:-1]).sum()), unit="pair",
                                      desc=f"inbetween {model}/{Path(video_file).name}") as progress:
        fell_back = _fill_inbetweens(clip_frames, blends, frames, images, scenes, factor,
                                     method, (model_object, vae_record, learned, device, vae_run.batch_size),
                                     flow_settings, guard, progress)
    held = frames["kind"] == "held"
    write_clip(out_dir / CLIP, clip_frames, frames["time"], settings["codec"])
    write_clip(out_dir / COMPARE, (labelled([(source[k], "source"), (clip_frames[k], method),
                                            (blends[k], "pixel_blend")]) for k in range(len(frames))),
               frames["time"], settings["codec"])
    frames.to_csv(out_dir / MANIFEST, index=False, float_format="%.6f")
    record.update(counts={"drawings": len(drawings), "frames": len(frames),
                          "inbetweens": int((frames["kind"] == "inbetween").sum()), "held": int(held.sum()),
                          "pairs_without_flow": fell_back},
                  size=list(images.shape[1:3]), vae=vae_record, non_finite=guard.record(),
                  provenance=store.provenance("inbetween", {"device": device.type, "preprocess": preprocess._asdict(),
                                                            "flow": flow_settings}))
    (out_dir / RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"inbetween {model}/{Path(video_file).name}: {len(drawings)} drawings -> {len(frames)} frames "
          f"({method}, factor {factor})")
    return record
