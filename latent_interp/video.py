"""Video files in, frame triplets out (``data.layout: video``): held frames merged into drawings, scene cuts found,
triplets of three consecutive drawings of one scene written in the triplet layout the rest of the DAG reads.

Animation is drawn on twos and threes: a drawing is held for several frames, so consecutive frames repeat. A frame is
a new drawing when it differs from the first frame of the current drawing (not from the frame before, so a slow pan
that changes a little each frame still starts new drawings) in more than ``held.threshold`` of the pixels of the
analysis thumbnail, a pixel counting as changed when its grey level moves by more than ``held.noise`` (which the
codec's noise on a held drawing does not). A triplet is three consecutive drawings of one scene; its frames are the
first frame of each drawing, at the times they appear, and t = (time2 - time1) / (time3 - time1) is the true place
of the middle drawing (0.5 only on even timing). Scene cuts come from PySceneDetect; no triplet spans one.

Decoding: PyAV, one pass, in presentation order, frame-accurate (every decoded frame is counted; nothing is
seeked). Times are the stream's timestamps (variable frame rate included), in seconds. The stream's display rotation
is applied (``VideoFrame.rotation``, degrees counter-clockwise, as FFmpeg's player does; flips are not). Every pixel
format is converted to 8-bit RGB by FFmpeg's swscale: 10- and 12-bit sources are rounded to 8 bits, an alpha channel
is dropped (the colour channels as stored, not composited), a palette (GIF) is expanded.

One extraction job per video writes ``results/videos/<split>/<video>/`` (``extract_video``):

``triplets/<triplet>/frame{1,2,3}.png``
    the kept triplets, frames at the video's own (rotated) size, lossless; ingest fits them to preprocess.size like
    any triplet folder. A drawing in two triplets is written once and hard-linked.
``manifest.csv`` (``MANIFEST_COLUMNS``), one row per candidate triplet (every three consecutive drawings), kept or not:
    ``triplet``              name, ``<video>-<index of its first drawing, 5 digits>``
    ``kept``                 True for the triplets written; ``drop_reason`` says why the others were not:
                             ``cut`` (spans a scene cut), ``too_still`` / ``too_far`` (motion outside
                             data.video.motion), ``stride`` (data.video.stride), ``cap`` (data.video.max_triplets)
    ``frame1..3``            index of each drawing's first frame among the decoded frames (0-based)
    ``time1..3``             its timestamp, seconds
    ``t``                    (time2 - time1) / (time3 - time1)
    ``scene``                the scene (0-based) of the triplet's first drawing
    ``difference12, difference23``  share of thumbnail pixels changed between drawings 1 and 2, 2 and 3
    ``motion``               mean absolute grey-level difference between drawings 1 and 3 on the thumbnail, / 255
``video.json``
    the video (path, bytes, sha256, container, codec, pixel format, stored and displayed size, rotation, average
    frame rate, time base, duration), the counts (frames decoded, drawings, held frames merged, cuts, scenes,
    candidates, kept, dropped by reason), the cut frames, the settings and provenance; ``skipped`` holds the reason
    when the file could not be read (data.on_error: skip; the split's skip list then names it).
"""

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

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif")
DETECTORS = ("content", "adaptive", "threshold", "histogram", "hash", "none")
DROP_REASONS = ("cut", "too_still", "too_far", "stride", "cap")
# data.video's defaults (workflow/schemas/config.schema.yaml repeats them; tests/test_video.py checks they agree).
DEFAULTS = {
    "assign": "folders",
    "test_fraction": 0.1,
    "analysis_width": 256,
    # Codec noise on a held drawing moves grey levels by a few steps on the thumbnail, where a new drawing moves the
    # pixels of its moving parts by tens; 0.1% of 256 x 144 is 37 pixels, a mouth flap is several times that.
    "held": {"noise": 12, "threshold": 0.001},
    "cuts": {"detector": "content", "threshold": None, "min_scene_len": 15},
    "motion": {"min": None, "max": None},
    "stride": 1,
    "max_triplets": None,
}
MANIFEST_COLUMNS = ["triplet", "kept", "drop_reason", "frame1", "frame2", "frame3", "time1", "time2", "time3", "t",
                    "scene", "difference12", "difference23", "motion"]
MANIFEST, INFO, TRIPLETS = "manifest.csv", "video.json", "triplets"
WRITES_AHEAD = 16  # frames queued for the PNG writer at most (each holds a decoded frame in memory)


def settings_of(video_config: dict | None) -> dict:
    """config data.video with every default filled in (nested sections key by key)."""
    video_config = video_config or {}
    settings = {}
    for key, default in DEFAULTS.items():
        value = video_config.get(key, default)
        settings[key] = {**default, **(value or {})} if isinstance(default, dict) else value
    return settings


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def videos_in(folder: Path) -> list[Path]:
    """The video files directly in ``folder``, by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder {folder} does not exist (check config keys data.root, data.layout, "
                                "data.split_dirs and data.video.assign)")
    return sorted(p for p in folder.iterdir() if is_video_file(p))


def video_folder(data_config: dict, split: str) -> Path:
    """Where a split's videos are: ``<root>/<split_dirs[split] or split>`` (assign folders), or ``<root>``, the one
    folder every split is drawn from (assign hash)."""
    root = Path(data_config["root"])
    if settings_of(data_config.get("video"))["assign"] == "hash":
        return root
    return root / data_config.get("split_dirs", {}).get(split, split)


def split_of(name: str, val_fraction: float, test_fraction: float) -> str:
    """A video's split under assign hash, from its file name alone (so adding videos never moves another): test
    below test_fraction, val up to test_fraction + val_fraction, train above. All triplets of a video go together,
    so no shot straddles train and test."""
    from latent_interp.data import hash_fraction  # here, not at the top: data imports this module

    place = hash_fraction(name)
    return "test" if place < test_fraction else "val" if place < test_fraction + val_fraction else "train"


def split_videos(data_config: dict, split: str) -> list[Path]:
    """The video files of ``split`` (data.layout: video)."""
    settings = settings_of(data_config.get("video"))
    videos = videos_in(video_folder(data_config, split))
    if settings["assign"] == "folders":
        return videos
    if split not in ("train", "val", "test"):
        raise ValueError(f"config key data.video.assign: hash draws splits train, val and test, not {split!r}")
    fractions = float(data_config.get("val_fraction", 0.1)), float(settings["test_fraction"])
    return [path for path in videos if split_of(path.name, *fractions) == split]


def extraction_dir(split: str, video: str | Path) -> str:
    """Rule extract_video's output folder for a video of a split (named by its file name, extension included)."""
    return f"results/videos/{split}/{Path(video).name}"


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
    rotation: int = 0
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


def _open(path: Path):
    """(container, video stream) or VideoFault naming what is wrong."""
    import av

    if path.stat().st_size == 0:
        raise VideoFault("empty file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoFault(f"unreadable container ({error})") from error
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


def _rotated(image: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as displayed: ``rotation`` degrees counter-clockwise (quarter turns)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _write_png(path: Path, frame, rotation: int) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    # PNG level 1: lossless like any level, and several times faster to write than the default 3 on 1080p frames
    if not cv2.imwrite(str(path), _rotated(frame.to_ndarray(format="bgr24"), rotation),
                       [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")


def _place(target: Path, frame, linked: Path | None, fault: bool) -> None:
    """Write a kept drawing's PNG, or hard-link the one already written; ``fault``: the first triplet is whole."""
    if linked is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(linked, target)
    else:
        _write_png(target, frame, frame.rotation)
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
            scan.rotation = int(frame.rotation)
            scan.size = (frame.height, frame.width) if round(scan.rotation / 90) % 2 else (frame.width, frame.height)
        thumb = _rotated(frame.reformat(width=self.thumb_size[0], height=self.thumb_size[1], format="bgr24",
                                        interpolation="AREA").to_ndarray(), frame.rotation)
        grey = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY)
        if self.detector is not None:
            scan.cuts += [cut.frame_num for cut in self.detector.process_frame(
                scenedetect.FrameTimecode(index, self.rate), thumb)]
        drawings, held = scan.drawings, self.settings["held"]
        # a rotation that changes mid-stream turns the thumbnail: a new drawing, not a comparison of two shapes
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


def _video_record(path: Path, container, stream, duration) -> dict:
    context = stream.codec_context
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": None,  # hashed beside the decode
            "container": container.format.name, "codec": context.name, "pixel_format": context.pix_fmt,
            "stored_size": [context.width, context.height],
            "average_frame_rate": float(stream.average_rate) if stream.average_rate else None,
            "time_base": str(stream.time_base), "duration": duration}


def extract_video(path: str | Path, out_dir: str | Path, settings: dict, on_error: str = "skip") -> dict:
    """Extract one video's triplets into ``out_dir`` (layout in the module docstring); returns video.json's record.

    A file that cannot be read (``VideoFault``, or FFmpeg failing mid-stream) stops the run naming it
    (``on_error="fail"``) or leaves an extraction with no triplets whose ``skipped`` says why (``"skip"``)."""
    import av

    path, out_dir = Path(path), Path(out_dir)
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
            except av.error.FFmpegError as error:
                raise VideoFault(f"decoding failed ({error})") from error
        if scan.frames == 0:
            raise VideoFault("no frame could be decoded")
        step = 1 / (record["video"]["average_frame_rate"] or 24)
        # the header promised more than was decoded: a truncated file or a stream that ends early
        if duration and duration - (scan.last_time + step) > 0.01 * duration + 2 * step:
            raise VideoFault(f"stream ends early: {scan.frames} frames decoded, the last at {scan.last_time:.3f} s "
                             f"of the {duration:.3f} s its header gives")
        record["video"].update(rotation=scan.rotation, size=list(scan.size))
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


def read_record(extraction: str | Path) -> dict:
    return json.loads((Path(extraction) / INFO).read_text())


def read_manifest(extraction: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(extraction) / MANIFEST, keep_default_na=False,
                       dtype={"triplet": str, "drop_reason": str, "kept": bool})


def read_extractions(extractions) -> tuple[list[dict], dict[str, float]]:
    """What ingest keeps of a split's extractions: each video's ``summary``, and every kept triplet's t by name."""
    summaries, middle_times = [], {}
    for extraction in extractions:
        manifest = read_manifest(extraction)
        kept = manifest[manifest["kept"]]
        middle_times.update(zip(kept["triplet"], kept["t"].astype(float)))
        summaries.append(summary(read_record(extraction), manifest))
    return summaries, middle_times


def summary(record: dict, manifest: pd.DataFrame) -> dict:
    """What the frames store (attrs ``videos``) and the report's Data section keep of one extraction: the video, its
    counts, why it was skipped, and its kept triplets' t."""
    kept = manifest[manifest["kept"]]
    video = record["video"]
    return {"video": Path(video["path"]).name, **{key: video.get(key) for key in (
                "path", "sha256", "container", "codec", "size", "average_frame_rate", "duration")},
            "counts": record.get("counts", {}), "skipped": record["skipped"],
            "t": [round(float(value), 6) for value in kept["t"]]}
