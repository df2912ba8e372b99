"""Finding frame triplets on disk, preprocessing them the seed's way, and ingesting a split into a frames store.

On-disk layout (ATD-12K's ``train_10k`` and the seed's own folders): ``<root>/<split>/<triplet>/frame{1,2,3}.<ext>``.
Videos (``data.layout: video``) are first turned into that layout, one extraction per video (``latent_interp.video``).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from latent_interp import images, schema, store, synthetic, video
from latent_interp.assign import hash_fraction  # val: the train_10k names below data.val_fraction
from latent_interp.settings import Preprocess

FRAME_NAMES = ("frame1", "frame2", "frame3")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
# ATD-12K as released (REFERENCE.md): layout atd12k reads these folders under data.root.
ATD_TRAIN, ATD_TEST, ATD_ANNOTATIONS = "train_10k", "test_2k_540p", "test_2k_annotations"
# torchvision's Resize (the seed's) defaults to bilinear; the others are PIL's names for the config key.
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def origin_of(triplet: str) -> str:
    """ATD-12K names start with their origin: ``Disney_...`` (western) or ``Japan_...`` (eastern)."""
    prefix = triplet.split("_", 1)[0]
    return prefix if prefix in synthetic.ORIGINS else "unknown"


# preprocess.fit: how a frame meets preprocess.size when their aspect ratios differ.
FITS = ("squash", "pad", "crop")
ON_ERROR = schema.section("data.on_error")["default"]  # config data.on_error's


def frame_size(size) -> tuple[int, int]:
    """(width, height) of config key preprocess.size: an int (a square) or [width, height]."""
    if isinstance(size, (list, tuple)):
        width, height = (int(v) for v in size)
        return width, height
    return int(size), int(size)


def preprocess_frame(image: Image.Image, size, resample: str = "bilinear", fit: str = "squash") -> np.ndarray:
    """Any mode to RGB (``images.to_rgb``), then to ``size`` (an int, or [width, height]) by ``fit``, as uint8
    [H, W, 3]:

    ``squash`` (the seed's): resized to exactly the size, aspect not kept;
    ``pad``: resized to fit inside (aspect kept), centred on a black canvas (the bars are part of the frame);
    ``crop``: resized to cover (aspect kept), then the centre cut out. Each frame is fitted on its own, so frames of
    mixed sizes all come out at the size, none stretched (under pad and crop)."""
    if fit not in FITS:
        raise ValueError(f"config key preprocess.fit = {fit!r}: choose one of {', '.join(FITS)}")
    if image.mode != "RGB":
        image = Image.fromarray(images.to_rgb(image, []), "RGB")
    width, height = frame_size(size)
    if image.size == (width, height):
        return np.asarray(image, dtype=np.uint8)
    if fit == "squash":
        return np.asarray(image.resize((width, height), RESAMPLE[resample]), dtype=np.uint8)
    scale = (min if fit == "pad" else max)(width / image.width, height / image.height)
    scaled = (round(image.width * scale), round(image.height * scale))
    if fit == "pad":
        scaled = (min(width, max(1, scaled[0])), min(height, max(1, scaled[1])))
        canvas = Image.new("RGB", (width, height))
        canvas.paste(image.resize(scaled, RESAMPLE[resample]), ((width - scaled[0]) // 2, (height - scaled[1]) // 2))
        return np.asarray(canvas, dtype=np.uint8)
    scaled = (max(width, scaled[0]), max(height, scaled[1]))
    left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
    cropped = image.resize(scaled, RESAMPLE[resample]).crop((left, top, left + width, top + height))
    return np.asarray(cropped, dtype=np.uint8)


def to_model_range(frames_uint8: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1] (the seed's Normalize(0.5, 0.5))."""
    frames = np.moveaxis(frames_uint8, -1, -3).astype(np.float32)
    return frames / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [..., 3, H, W] in [-1, 1] -> uint8 [..., H, W, 3], clamped and rounded."""
    images = np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5, 0, 255)
    return np.moveaxis(np.rint(images).astype(np.uint8), -3, -1)


def is_frame_file(path: Path) -> bool:
    return path.stem in FRAME_NAMES and path.suffix.lower() in FRAME_EXTENSIONS


def frame_index(path: str | Path) -> int:
    """1, 2 or 3 for ``frame1.jpg`` .. ``frame3.png``."""
    stem = Path(path).stem
    if stem not in FRAME_NAMES:
        raise ValueError(f"{path}: not a frame file (expected frame1/frame2/frame3 with {FRAME_EXTENSIONS})")
    return FRAME_NAMES.index(stem) + 1


@dataclass(frozen=True)
class SplitSource:
    """Where a split's triplets are: a folder of triplet folders, optionally only the hash-chosen part of it."""

    folder: Path
    carve: str | None = None  # "train" or "val": keep only that side of the hash split of the folder
    val_fraction: float = 0.0
    annotations: Path | None = None  # ATD-12K's test_2k_annotations/<triplet>/<triplet>.json
    # layout video: the split's video extractions (rule extract_video's folders, triplets under <folder>/triplets);
    # ``folder`` is then where the videos are
    extractions: tuple[Path, ...] | None = None
    lists_strays: bool = True  # False for the other splits drawn from a folder another split already lists

    def keeps(self, triplet: str) -> bool:
        if self.carve is None:
            return True
        return (hash_fraction(triplet) < self.val_fraction) == (self.carve == "val")

    def triplet_dirs(self) -> list[Path]:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"split folder {self.folder} does not exist (check config keys data.root, "
                                    "data.layout and data.split_dirs)")
        if self.extractions is not None:
            return sorted(p for folder in self.extractions for p in (folder / video.TRIPLETS).iterdir() if p.is_dir())
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and self.keeps(p.name))

    def stray_files(self) -> list[Path]:
        """Files in the split's folder that are not data: any file beside the triplet folders, anything but a
        video beside the videos."""
        if not self.lists_strays:
            return []
        found = (p for p in self.folder.iterdir() if not p.is_dir())
        return sorted(p for p in found if self.extractions is None or not video.is_video_file(p))


def split_source(data_config: dict, split: str, videos: list | None = None) -> SplitSource:
    """The SplitSource of ``split`` under config ``data``: layout ``folders`` (``<root>/<split_dirs[split] or
    split>``), ``atd12k`` (train and val carved from train_10k, test from test_2k_540p with its annotations) or
    ``video`` (the extractions of the split's videos: ``videos``, or those ``latent_interp.video.split_videos``
    finds)."""
    root = Path(data_config["root"])
    layout = data_config.get("layout", "folders")
    if layout == "video":
        videos = video.split_videos(data_config, split) if videos is None else videos
        extractions = tuple(Path(video.extraction_dir(split, path)) for path in videos)
        shared = video.settings_of(data_config.get("video"))["assign"] == "hash"
        return SplitSource(video.video_folder(data_config, split), extractions=extractions,
                           lists_strays=not shared or split == "train")
    if layout == "atd12k":
        fraction = float(data_config.get("val_fraction", 0.1))
        if split in ("train", "val"):
            return SplitSource(root / ATD_TRAIN, carve=split, val_fraction=fraction, lists_strays=split == "train")
        if split == "test":
            return SplitSource(root / ATD_TEST, annotations=root / ATD_ANNOTATIONS)
        raise ValueError(f"config key data.splits: layout atd12k has splits train, val and test, not {split!r}")
    folder = root / data_config.get("split_dirs", {}).get(split, split)
    annotations = data_config.get("annotations", {}).get(split)
    return SplitSource(folder, annotations=root / annotations if annotations else None)


def split_input_files(source: SplitSource) -> list[str]:
    """The files whose change makes a split stale: its frame files and annotation files (not its folders), or its
    video extractions (layout video)."""
    if source.extractions is not None:
        return [str(folder) for folder in source.extractions]
    files = []
    for folder in source.triplet_dirs():
        files += [str(p) for p in folder.iterdir() if is_frame_file(p)]
        if source.annotations is not None and annotation_path(source.annotations, folder.name).is_file():
            files.append(str(annotation_path(source.annotations, folder.name)))
    return sorted(files)


def annotation_path(annotations_dir: Path, triplet: str) -> Path:
    return Path(annotations_dir) / triplet / f"{triplet}.json"


def read_annotation(path: Path) -> dict:
    """The ATD-12K annotation fields the metric tables use."""
    record = json.loads(Path(path).read_text())
    roi = record["motion_RoI"]
    return {"level": int(record["level"]), "general_motion_type": str(record["general_motion_type"]),
            "behavior": str(record["behavior"]),
            "motion_roi": [int(roi["x"]), int(roi["y"]), int(roi["width"]), int(roi["height"])],
            "image_size": [int(v) for v in record["image_size"]]}


class FaultyTriplet(Exception):
    """A triplet that cannot be ingested; ``path`` is the file or folder at fault."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def triplet_frame_files(folder: Path) -> tuple[list[str], list[str]]:
    """([frame1, frame2, frame3] paths, stray file paths) of one triplet folder; FaultyTriplet if frames are
    missing or doubled."""
    frames: dict[int, str] = {}
    stray = []
    for path in sorted(folder.iterdir()):
        if is_frame_file(path):
            index = frame_index(path)
            if index in frames:
                raise FaultyTriplet(path, f"two files for frame{index} ({Path(frames[index]).name}, {path.name})")
            frames[index] = str(path)
        else:
            stray.append(str(path))
    if not frames:
        raise FaultyTriplet(folder, "empty folder (no frame files)" if not stray else "no frame files")
    missing = [f"frame{k}" for k in (1, 2, 3) if k not in frames]
    if missing:
        raise FaultyTriplet(folder / f"{missing[0]}.*", f"missing {', '.join(missing)}")
    return [frames[k] for k in (1, 2, 3)], stray


def load_triplet(paths: list[str], size, resample: str, fit: str = "squash",
                 max_pixels: int | None = images.DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, list[list[str]]]:
    """(uint8 [3, H, W, 3], each frame's conversions) for one triplet's three frame files, each read as a viewer
    shows it (``images.read_frame``) and fitted to ``size`` (``preprocess_frame``)."""
    frames, conversions = [], []
    for path in paths:
        try:
            image, converted = images.read_frame(path, max_pixels)
        except images.UnreadableFrame as error:
            raise FaultyTriplet(path, str(error)) from error
        frames.append(preprocess_frame(image, size, resample, fit))
        conversions.append(converted)
    return np.stack(frames), conversions


SKIPPED_COLUMNS = ["split", "what", "triplet", "path", "reason"]


class Conversions:
    """What the ingested frames needed to become 8-bit RGB: how many frames needed any conversion, and for each kind
    (``images.CONVERSIONS``) how many and the first few, so the store says which without listing a whole split."""
    EXAMPLES = 10

    def __init__(self):
        self.frames = 0
        self.by_kind: dict[str, dict] = {}

    def add(self, triplet: str, frame_conversions: list[list[str]]) -> None:
        for index, kinds in enumerate(frame_conversions, start=1):
            self.frames += bool(kinds)
            for kind in dict.fromkeys(kinds):
                entry = self.by_kind.setdefault(kind, {"what": images.CONVERSIONS[kind], "frames": 0, "first": []})
                entry["frames"] += 1
                if len(entry["first"]) < self.EXAMPLES:
                    entry["first"].append(f"{triplet}/frame{index}")

    def record(self) -> dict:
        return {"frames": self.frames, "by_kind": dict(sorted(self.by_kind.items()))}


def _prepare(folder: Path, size, resample: str, fit: str, annotations_dir: Path | None, max_pixels: int | None):
    """(frames uint8 [3, H, W, 3], each frame's conversions, annotation or None, stray files) of one triplet folder,
    or FaultyTriplet."""
    paths, stray = triplet_frame_files(folder)
    annotation = None
    if annotations_dir is not None:
        path = annotation_path(annotations_dir, folder.name)
        if not path.is_file():
            raise FaultyTriplet(path, "no annotation file")
        try:
            annotation = read_annotation(path)
        except (ValueError, KeyError, TypeError) as error:
            raise FaultyTriplet(path, f"unreadable annotation ({type(error).__name__}: {error})") from error
    return (*load_triplet(paths, size, resample, fit, max_pixels), annotation, stray)


def ingest_split(*, source: SplitSource, frames: str | Path, skipped: str | Path, split: str, preprocess: Preprocess,
                 on_error: str = ON_ERROR, max_pixels: int | None = images.DEFAULT_MAX_PIXELS,
                 threads: int = 1) -> dict:
    """Rule ingest: decode a split's triplets from ``source`` and fit them to ``preprocess`` into the frames store
    ``frames`` (docs/outputs.md), chunk by chunk.

    Every frame is read as a viewer shows it (``images.read_frame``); the store's ``conversions`` attribute counts
    the frames that needed a conversion, by kind. Faulty triplets (missing or unreadable frames, frames above
    ``max_pixels``, empty folders, missing annotations) are skipped and listed in ``skipped`` with the reason
    (``on_error="skip"``), or stop the run naming the file (``"fail"``). Stray files are listed too. Returns the
    counts: found = ingested + skipped.
    """
    out_path, skipped_path = frames, skipped
    size, resample, fit = preprocess.size, preprocess.resample, preprocess.fit
    if resample not in RESAMPLE:
        raise ValueError(f"config key preprocess.resample = {resample!r}: choose one of {sorted(RESAMPLE)}")
    if fit not in FITS:
        raise ValueError(f"config key preprocess.fit = {fit!r}: choose one of {', '.join(FITS)}")
    width, height = frame_size(size)
    triplet_dirs = source.triplet_dirs()
    skipped = []

    def fault(what: str, triplet: str, path, reason: str):
        if on_error == "fail":
            raise ValueError(f"ingest {split}: {path}: {reason} (config key data.on_error is 'fail'; "
                             "set it to 'skip' to skip and list such triplets)")
        skipped.append((split, what, triplet, str(path), reason))

    for path in source.stray_files():
        fault("file", "", path, "stray file, ignored")
    videos, middle_times = video.read_extractions(source.extractions or ())
    for entry in videos:
        if entry["skipped"]:
            fault("video", "", entry["path"], entry["skipped"])
    settings = {"size": [width, height], "width": width, "height": height, "fit": fit, "resample": resample,
                "convert": "RGB as a viewer shows it (docs/data.md)", "max_pixels": max_pixels,
                "source": str(source.folder), "carve": source.carve, "val_fraction": source.val_fraction,
                "annotations": str(source.annotations) if source.annotations else None}
    attrs = {"preprocess": settings, "provenance": store.provenance("ingest", settings)}
    if source.extractions is not None:
        attrs["videos"] = videos
    group = store.create(out_path, "frames", split, attrs)
    frames = store.add_array(group, store.FRAMES, (3, height, width, 3), np.uint8, count=len(triplet_dirs))
    chunk = frames.chunks[0]
    names, annotations, pending, written = [], [], [], 0
    conversions = Conversions()

    def attempt(folder):
        try:
            return _prepare(folder, size, resample, fit, source.annotations, max_pixels)
        except FaultyTriplet as error:
            return error

    # PIL decodes and resizes without holding the GIL, so threads give real parallelism here. Triplets are written
    # a whole chunk at a time, so skipped ones never leave a chunk half-written.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool, tqdm(total=len(triplet_dirs), unit="triplet",
                                                                         desc=f"ingest {split}") as progress:
        for start in range(0, len(triplet_dirs), chunk):
            batch_dirs = triplet_dirs[start:start + chunk]
            for folder, result in zip(batch_dirs, pool.map(attempt, batch_dirs)):
                if isinstance(result, FaultyTriplet):
                    fault("triplet", folder.name, result.path, result.reason)
                    continue
                triplet_frames, frame_conversions, annotation, stray = result
                conversions.add(folder.name, frame_conversions)
                names.append(folder.name)
                annotations.append(annotation)
                pending.append(triplet_frames)
                for path in stray:
                    fault("file", folder.name, path, "stray file, ignored")
            while len(pending) >= chunk or (pending and start + chunk >= len(triplet_dirs)):
                batch, pending = pending[:chunk], pending[chunk:]
                frames[written:written + len(batch)] = np.stack(batch)
                written += len(batch)
            progress.update(len(batch_dirs))
    frames.resize((written, *frames.shape[1:]))
    store.write_names(group, names, [origin_of(name) for name in names])
    # the middle frame's true time: from the video's timestamps, or 0.5 where triplet folders cannot say
    store.write_middle_times(group, [middle_times.get(name, 0.5) for name in names],
                             "video timestamps" if source.extractions is not None else "assumed")
    if source.annotations is not None:
        store.write_annotations(group, annotations)
    counts = {"found": len(triplet_dirs), "ingested": written,
              "skipped": sum(1 for row in skipped if row[1] == "triplet"),
              "stray_files": sum(1 for row in skipped if row[1] == "file"),
              **({"videos": len(videos), "videos_skipped": sum(1 for row in skipped if row[1] == "video")}
                 if source.extractions is not None else {})}
    group.attrs["counts"] = counts
    group.attrs["conversions"] = conversions.record()
    store.seal(group)
    pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).to_csv(skipped_path, index=False)
    print(f"ingest {split}: {counts}")
    return counts
