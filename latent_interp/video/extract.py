"""Rule extract_video: one video file -> ``results/videos/<split>/<video>/`` (docs/outputs.md): decoded once with
PyAV, held frames merged into drawings, scene cuts found with PySceneDetect, and triplets of three consecutive
drawings of one scene written as triplet folders with their manifest and record."""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from latent_interp import atomic, store
from latent_interp.video.display import display_operations, displayed, displayed_size
from latent_interp.video.files import (DETECTORS, DRAWING_COLUMNS, DRAWINGS, DROP_REASONS, INFO, MANIFEST,
                                       MANIFEST_COLUMNS, TRIPLETS,
                                       WRITES_AHEAD, settings_of)

class VideoFault(Exception):
    """A video that cannot be extracted: corrupt, truncated, empty, audio-only, unsupported or ending early."""


@dataclass
class Drawing:
    index: int
    frame: int  # index of its first decoded frame
    time: float
    grey: np.ndarray  # the analysis thumbnail, grey
    image: object = None  # its first frame (av.VideoFrame) while a pending triplet may still write it


@dataclass
class Scan:
    """What one pass over a video found, and what it wrote."""

    frames: int = 0
    last_time: float = 0.0  # of the last decoded frame
    rotation: int = 0  # degrees counter-clockwise, as the display matrix gives it
    display: tuple[str, ...] = ()  # what turns a decoded frame into the displayed one (video.display)
    size: tuple[int, int] | None = None  # (width, height) as displayed, of the first frame
    drawings: list[Drawing] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    written: dict[int, Path] = field(default_factory=dict)  # drawing index -> its PNG


def changed_share(grey: np.ndarray, reference: np.ndarray, noise: int) -> float:
    """Share of pixels whose grey level moved by more than ``noise``."""
    return float(np.mean(np.abs(grey.astype(np.int16) - reference.astype(np.int16)) > noise))


def make_detector(cuts: dict):
    """data.video.cuts as a PySceneDetect detector (None for ``none``); threshold null keeps the detector's own."""
    import scenedetect

    name, threshold, min_len = cuts["detector"], cuts["threshold"], int(cuts["min_scene_len"])
    if name == "none":
        return None
    classes = {"content": scenedetect.ContentDetector, "adaptive": scenedetect.AdaptiveDetector,
               "threshold": scenedetect.ThresholdDetector, "histogram": scenedetect.HistogramDetector,
               "hash": scenedetect.HashDetector}
    if name not in classes:
        raise ValueError(f"config key data.video.cuts.detector = {name!r}: choose one of {', '.join(DETECTORS)}")
    options = {"min_scene_len": min_len}
    if threshold is not None:
        options["adaptive_threshold" if name == "adaptive" else "threshold"] = threshold
    return classes[name](**options)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()


def _decoder_errors() -> tuple[type[BaseException], ...]:
    """What FFmpeg and PyAV raise on a bad file: FFmpeg's errors, and PyAV's ValueError on what it cannot convert or
    decode as text (a frame of a form it has no array for, metadata that is not UTF-8). An OSError of our own (a full
    disk) is neither, and stops the run."""
    import av

    return av.error.FFmpegError, ValueError


def _open(path: Path):
    """(container, video stream) or VideoFault naming what is wrong."""
    import av

    if path.stat().st_size == 0:
        raise VideoFault("empty file")
    try:
        container = av.open(str(path))
    except _decoder_errors() as error:
        raise VideoFault(f"unreadable container ({type(error).__name__}: {error})") from error
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["no"]
        container.close()
        # a stream of a codec FFmpeg does not know is typed "data": no decoder, so no video for us either
        raise VideoFault(f"no video stream FFmpeg can decode ({', '.join(kinds)} streams only)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise VideoFault("unsupported codec (FFmpeg in PyAV has no decoder for it)")
    stream.thread_type = "AUTO"  # frame and slice threads: the decode is most of an extraction's time
    return container, stream


def _duration(container, stream) -> float | None:
    """The stream's duration in seconds from its header, or the container's; None when neither says."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6
    return None


def _write_png(path: Path, frame) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    # PNG level 1: lossless like any level, and several times faster to write than the default 3 on 1080p frames
    if not cv2.imwrite(str(path), displayed(frame.to_ndarray(format="bgr24"), display_operations(frame)),
                       [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")


def _place(target: Path, frame, linked: Path | None, fault: bool) -> None:
    """Write a kept drawing's PNG, or hard-link the one already written; ``fault``: the first triplet is whole."""
    if linked is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(linked, target)
    else:
        _write_png(target, frame)
    if fault:
        atomic.fault_point("extract", "mid-video")


def _candidate(video_id: str, first: Drawing, middle: Drawing, last: Drawing, noise: int) -> dict:
    """The manifest row of three consecutive drawings, before it is decided (``_Scanner.decide``)."""
    span = last.time - first.time
    return {"triplet": f"{video_id}-{first.index:05d}", "kept": False, "drop_reason": "",
            "frame1": first.frame, "frame2": middle.frame, "frame3": last.frame,
            "time1": first.time, "time2": middle.time, "time3": last.time,
            "t": (middle.time - first.time) / span if span > 0 else math.nan, "scene": 0,
            "difference12": changed_share(middle.grey, first.grey, noise),
            "difference23": changed_share(last.grey, middle.grey, noise),
            "motion": float(np.mean(np.abs(last.grey.astype(np.int16) - first.grey)) / 255)}


class _Scanner:
    """One pass over a video's frames: drawings, cuts and candidate triplets, each triplet decided once the cut
    detector has seen far enough past it, and the kept ones written by a thread beside the decode."""

    def __init__(self, out_dir: Path, video_id: str, settings: dict, rate: float, duration: float | None):
        self.out_dir, self.video_id, self.settings = out_dir, video_id, settings
        self.rate, self.duration = rate, duration
        self.scan = Scan()
        self.detector = make_detector(settings["cuts"])
        # a cut is reported up to this many frames after it happens (PySceneDetect's filters look ahead)
        self.lag = self.detector.event_buffer_length if self.detector is not None else 0
        self.pending: deque[int] = deque()  # last drawing of each candidate not yet decided
        self.eligible = 0  # candidates that passed the cut and motion checks (the stride counts them)
        self.windows: set[int] = set()  # max_triplets' slices of the duration already holding a triplet
        self.released = 0  # drawings before this hold no decoded frame any more
        self.thumb_size = None
        # PNG encoding (OpenCV, without the GIL) runs in a thread beside the decode
        self.writer, self.writes = ThreadPoolExecutor(1), deque()

    def add(self, frame) -> None:
        import cv2
        import scenedetect

        scan, index = self.scan, self.scan.frames
        scan.frames += 1
        time = float(frame.time) if frame.time is not None else index / self.rate
        scan.last_time = time
        if self.thumb_size is None:
            width = int(self.settings["analysis_width"])
            self.thumb_size = (width, max(2, round(width * frame.height / frame.width)))
            scan.rotation, scan.display = int(frame.rotation), display_operations(frame)
            scan.size = displayed_size(frame.width, frame.height, scan.display)
        thumb = displayed(frame.reformat(width=self.thumb_size[0], height=self.thumb_size[1], format="bgr24",
                                         interpolation="AREA").to_ndarray(), display_operations(frame))
        grey = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY)
        if self.detector is not None:
            scan.cuts += [cut.frame_num for cut in self.detector.process_frame(
                scenedetect.FrameTimecode(index, self.rate), thumb)]
        drawings, held = scan.drawings, self.settings["held"]
        # a display matrix that changes mid-stream turns the thumbnail: a new drawing, not a comparison of two shapes
        if (not drawings or grey.shape != drawings[-1].grey.shape
                or changed_share(grey, drawings[-1].grey, held["noise"]) > held["threshold"]):
            drawings.append(Drawing(len(drawings), index, time, grey, frame))
            if len(drawings) >= 3:
                scan.rows.append(_candidate(self.video_id, *drawings[-3:], held["noise"]))
                self.pending.append(len(drawings) - 1)
            if len(drawings) >= 4:
                drawings[-4].grey = drawings[-4].grey[:0, :0]  # only the last three are compared again
        while self.pending and drawings[self.pending[0]].frame + self.lag <= index:
            self.decide(self.pending.popleft())
        self.release(self.pending[0] - 2 if self.pending else len(drawings) - 2)

    def decide(self, k: int) -> None:
        """Keep or drop candidate (k-2, k-1, k): every cut up to drawing k's first frame is known by now."""
        first, middle, last = self.scan.drawings[k - 2:k + 1]
        row, motion, cap = self.scan.rows[k - 2], self.settings["motion"], self.settings["max_triplets"]
        cuts = self.scan.cuts
        reason = None
        if any(first.frame < cut <= last.frame for cut in cuts):
            reason = "cut"
        elif motion["min"] is not None and row["motion"] < motion["min"]:
            reason = "too_still"
        elif motion["max"] is not None and row["motion"] > motion["max"]:
            reason = "too_far"
        else:
            self.eligible += 1
            if (self.eligible - 1) % self.settings["stride"]:
                reason = "stride"
            elif cap is not None:
                # one triplet per equal slice of the video's time, the first that qualifies: spread over the whole
                # video in one pass (duration unknown: the first max_triplets)
                window = (min(cap - 1, int(middle.time / self.duration * cap)) if self.duration
                          else len(self.windows) if len(self.windows) < cap else None)
                if window is None or window in self.windows:
                    reason = "cap"
                else:
                    self.windows.add(window)
        row.update(scene=sum(cut <= first.frame for cut in cuts), kept=reason is None, drop_reason=reason or "")
        if reason is None:
            self.write(row["triplet"], (first, middle, last))

    def write(self, triplet: str, drawings) -> None:
        written = self.scan.written
        for number, drawing in enumerate(drawings, start=1):
            target = self.out_dir / TRIPLETS / triplet / f"frame{number}.png"
            # a drawing in two triplets is written once; one writer thread keeps the order, so it exists by then
            linked = written.get(drawing.index)
            self.writes.append(self.writer.submit(_place, target, None if linked else drawing.image, linked,
                                                  len(written) == 2 and number == 3))
            written.setdefault(drawing.index, target)
            while self.writes and (self.writes[0].done() or len(self.writes) > WRITES_AHEAD):
                self.writes.popleft().result()  # raises a failed write's error; holds the decode back when behind

    def release(self, before: int) -> None:
        """Drop the decoded frames of drawings before ``before``: no pending triplet can write them any more."""
        for drawing in self.scan.drawings[self.released:before]:
            drawing.image = None
        self.released = max(self.released, before)

    def finish(self) -> Scan:
        """The cuts the detector still held back, the last candidates decided, every write done."""
        import scenedetect

        scan = self.scan
        if self.detector is not None:
            scan.cuts += [cut.frame_num for cut in self.detector.post_process(
                scenedetect.FrameTimecode(scan.frames, self.rate))]
            scan.cuts = sorted(set(scan.cuts))
        while self.pending:
            self.decide(self.pending.popleft())
        self.writer.shutdown()
        while self.writes:
            self.writes.popleft().result()
        return scan


def _decoded(container, stream, ahead: int = 8):
    """The stream's frames, decoded in a thread of their own up to ``ahead`` frames before the analysis: the analysis
    (thumbnails, cuts) then runs while FFmpeg decodes instead of after it (P13: 0.75 of a bare decode's rate in one
    thread; closer to 1 this way). FFmpeg's errors are raised here, in the caller's thread."""
    frames, stop, done = queue.Queue(maxsize=ahead), threading.Event(), object()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for frame in container.decode(stream):
                if not offer(frame):
                    return
            offer(done)
        except BaseException as error:  # noqa: BLE001 (handed to the caller, who raises it)
            offer(error)

    thread = threading.Thread(target=decode, name="decode", daemon=True)
    thread.start()
    try:
        while (item := frames.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the caller stopped early or failed: the decoder stops too
        thread.join()


def _scan(container, stream, out_dir: Path, video_id: str, settings: dict, duration: float | None) -> Scan:
    """One pass over the video (``_Scanner``), with a progress bar."""
    scanner = _Scanner(out_dir, video_id, settings, float(stream.average_rate or stream.guessed_rate or 24), duration)
    try:
        with tqdm(total=int(stream.frames) or None, unit="frame", desc=f"extract {video_id}") as progress:
            for frame in _decoded(container, stream):
                scanner.add(frame)
                progress.update()
        return scanner.finish()
    except BaseException:
        scanner.writer.shutdown(cancel_futures=True)  # a decode that fails leaves no write behind it
        raise


def frames_at(path: str | Path, indices) -> list[np.ndarray]:
    """The frames of the video ``path`` at decoded-frame ``indices`` (as the extraction counts them: every decoded
    frame, in presentation order), as displayed (``video.display``), RGB uint8 [H, W, 3], in the order asked; one
    pass, stopping after the last one asked."""
    wanted, found = set(int(i) for i in indices), {}
    if not wanted:
        return []
    last = max(wanted)
    container, stream = _open(Path(path))
    with container:
        for index, frame in enumerate(_decoded(container, stream)):
            if index in wanted:
                found[index] = displayed(frame.to_ndarray(format="rgb24"), display_operations(frame))
            if index >= last:
                break
    missing = sorted(wanted - set(found))
    if missing:
        raise VideoFault(f"{path}: frames {missing[:5]} were not decoded (the video changed since its extraction?)")
    return [found[int(i)] for i in indices]


def _video_record(path: Path, container, stream, duration) -> dict:
    context = stream.codec_context
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": None,  # hashed beside the decode
            "container": container.format.name, "codec": context.name, "pixel_format": context.pix_fmt,
            "stored_size": [context.width, context.height],
            "average_frame_rate": float(stream.average_rate) if stream.average_rate else None,
            "time_base": str(stream.time_base), "duration": duration}


def extract_video(*, video: str | Path, extraction: str | Path, settings: dict, on_error: str = "skip") -> dict:
    """Rule extract_video: the triplets of the file ``video`` into the folder ``extraction`` (docs/outputs.md);
    returns video.json's record.

    A file that cannot be read (``VideoFault``, or FFmpeg failing mid-stream) stops the run naming it
    (``on_error="fail"``) or leaves an extraction with no triplets whose ``skipped`` says why (``"skip"``)."""
    path, out_dir = Path(video), Path(extraction)
    settings = settings_of(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRIPLETS).mkdir(exist_ok=True)
    record = {"video": {"path": str(path)}, "skipped": None}
    hashing = ThreadPoolExecutor(1)
    digest = hashing.submit(sha256_of, path)  # hashlib reads and hashes without the GIL, beside the decode
    hashing.shutdown(wait=False)
    try:
        container, stream = _open(path)
        with container:
            duration = _duration(container, stream)
            record["video"] = _video_record(path, container, stream, duration)
            try:
                scan = _scan(container, stream, out_dir, path.name, settings, duration)
            except _decoder_errors() as error:
                raise VideoFault(f"decoding failed ({type(error).__name__}: {error})") from error
        if scan.frames == 0:
            raise VideoFault("no frame could be decoded")
        step = 1 / (record["video"]["average_frame_rate"] or 24)
        # the header promised more than was decoded: a truncated file or a stream that ends early
        if duration and duration - (scan.last_time + step) > 0.01 * duration + 2 * step:
            raise VideoFault(f"stream ends early: {scan.frames} frames decoded, the last at {scan.last_time:.3f} s "
                             f"of the {duration:.3f} s its header gives")
        record["video"].update(rotation=scan.rotation, display=list(scan.display), size=list(scan.size))
    except VideoFault as error:  # the file's fault; anything else (a full disk, say) stops the run as it is
        if on_error == "fail":
            raise ValueError(f"extract {path}: {error} (config key data.on_error is 'fail'; set it to 'skip' to "
                             "skip and list such videos)") from error
        for child in (out_dir / TRIPLETS).iterdir():  # nothing of a skipped video is kept
            atomic.remove(child)
        record["skipped"] = str(error)
        scan = Scan()
    record["video"]["sha256"] = digest.result()
    table = pd.DataFrame(scan.rows, columns=MANIFEST_COLUMNS)
    table.to_csv(out_dir / MANIFEST, index=False)
    pd.DataFrame([[d.index, d.frame, d.time, sum(cut <= d.frame for cut in scan.cuts)] for d in scan.drawings],
                 columns=DRAWING_COLUMNS).to_csv(out_dir / DRAWINGS, index=False)
    kept = table[table["kept"].astype(bool)]
    dropped = {reason: int((table["drop_reason"] == reason).sum()) for reason in DROP_REASONS}
    record.update(
        counts={"frames": scan.frames, "drawings": len(scan.drawings),
                "held_frames_merged": scan.frames - len(scan.drawings), "cuts": len(scan.cuts),
                "scenes": len(scan.cuts) + 1 if scan.frames else 0, "candidates": len(table), "kept": len(kept),
                "dropped": dropped},
        cuts=[int(cut) for cut in scan.cuts], settings=settings,
        provenance=store.provenance("extract_video", settings))
    (out_dir / INFO).write_text(json.dumps(record, indent=2, default=float) + "\n")
    return record
