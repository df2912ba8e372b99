"""Video extraction against a bare PyAV decode of the same file (P13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import Row, Timer


def _grainy_video(path: Path, width: int, height: int, seconds: int) -> None:
    """The demo's drawings at ``width`` x ``height``, 24 fps on twos, shots cut together, with a film grain (sigma 2
    grey levels, different every frame, as in scanned or compressed material), H.264 CRF 18: a file whose decode costs
    what a real episode's does, where flat synthetic colour would decode several times faster."""
    import av

    from latent_interp import synthetic

    shots = [synthetic.render_drawings(spec, width, height, np.linspace(0, 1, 12))
             for spec in synthetic.triplet_specs(0, "bench-video", 4)]
    rng = np.random.default_rng(0)
    grains = [rng.normal(0, 2.0, (height, width, 1)).astype(np.float32) for _ in range(7)]
    frames = [frame for shot in shots for frame in synthetic.held_frames(shot, "twos")]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for index in range(seconds * 24):
            image = np.clip(frames[index % len(frames)] + grains[index % len(grains)], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _bare_decode_rate(path: Path) -> float:
    """Frames per second of decoding every frame with PyAV (its threads on), nothing else."""
    import av

    with av.open(str(path)) as container, Timer() as timer:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = sum(1 for _ in container.decode(stream))
    return count / timer.seconds


def p13_video(quick: bool, tmp: Path) -> Row:
    """Video extraction (decode, thumbnails, held frames, cuts, the kept triplets written as PNGs) against a bare PyAV
    decode of the same 1080p 24 fps file, frames per second, the medians of three alternated passes of each.
    Extraction keeps at most 4 triplets in the 30 s (480 an hour, about what ATD-12K took from each film); its time
    for one hour of such video is stated. Uncapped (every triplet of consecutive drawings written: 12 PNGs a second
    at 1080p) is measured too: writing then dominates."""
    from latent_interp import video

    (width, height), seconds, cap = ((96, 54), 4, 2) if quick else ((1920, 1080), 30, 4)
    path = tmp / "p13-video.mp4"
    _grainy_video(path, width, height, seconds)
    bare, capped = [], []
    for attempt in range(1 if quick else 3):  # alternated, medians: one 6 s pass of either moves by 5% run to run
        bare.append(_bare_decode_rate(path))
        with Timer() as timer:
            record = video.extract_video(video=path, extraction=tmp / f"p13-capped{attempt}",
                                         settings={"max_triplets": cap})
        capped.append(record["counts"]["frames"] / timer.seconds)
    with Timer() as uncapped:
        everything = video.extract_video(video=path, extraction=tmp / "p13-all", settings={})
    frames = record["counts"]["frames"]
    bare_rate, capped_rate, uncapped_rate = float(np.median(bare)), float(np.median(capped)), frames / uncapped.seconds
    ratio = capped_rate / bare_rate
    hour = 3600 * 24 / capped_rate / 60
    return Row("P13", f"video extraction / bare PyAV decode, same {width}x{height} 24 fps H.264 file "
               f"(max_triplets {cap} in {seconds} s)", ratio, ">= 0.8", ratio >= 0.8,
               f"{ratio:.2f} ({capped_rate:.0f} vs {bare_rate:.0f} frames/s; one hour: {hour:.0f} min); every "
               f"triplet written: {uncapped_rate / bare_rate:.2f} ({uncapped_rate:.0f} frames/s, "
               f"{everything['counts']['kept']} triplets)",
               {"size": [width, height], "seconds": seconds, "frames": frames, "bare_rates": bare,
                "capped_rates": capped, "capped_counts": record["counts"],
                "uncapped_seconds": uncapped.seconds, "uncapped_counts": everything["counts"],
                "hour_minutes": hour, "bytes": path.stat().st_size})
