"""Finding frame triplets on disk, preprocessing them the seed's way, and ingesting a split into a frames store.

On-disk layout (ATD-12K's ``train_10k`` and the seed's own folders): ``<root>/<split>/<triplet>/frame{1,2,3}.<ext>``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from latent_interp import store, synthetic

FRAME_NAMES = ("frame1", "frame2", "frame3")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
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


def preprocess_frame(image: Image.Image, size: int, resample: str = "bilinear") -> np.ndarray:
    """The seed's preprocessing: any mode to RGB, then squash to ``size`` x ``size`` (no crop, aspect not kept)."""
    if image.mode != "RGB":
        image = image.convert("RGBA").convert("RGB") if image.mode == "P" else image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), RESAMPLE[resample])
    return np.asarray(image, dtype=np.uint8)


def to_model_range(frames_uint8: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [-1, 1] (the seed's Normalize(0.5, 0.5))."""
    frames = np.moveaxis(frames_uint8, -1, -3).astype(np.float32)
    return frames / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float [..., 3, H, W] in [-1, 1] -> uint8 [..., H, W, 3], clamped and rounded."""
    images = np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5, 0, 255)
    return np.moveaxis(np.rint(images).astype(np.uint8), -3, -1)


def frame_index(path: str | Path) -> int:
    """1, 2 or 3 for ``frame1.jpg`` .. ``frame3.png``."""
    stem = Path(path).stem
    if stem not in FRAME_NAMES:
        raise ValueError(f"{path}: not a frame file (expected frame1/frame2/frame3 with {FRAME_EXTENSIONS})")
    return FRAME_NAMES.index(stem) + 1


def split_frame_paths(split_dir: str | Path) -> list[str]:
    """Every ``<triplet>/frame{1,2,3}.<ext>`` under ``split_dir``, sorted: the ingest rule's inputs for real data."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"split folder {split_dir} does not exist (check config key data.root)")
    paths = [p for p in split_dir.glob("*/frame[123].*") if p.suffix.lower() in FRAME_EXTENSIONS]
    return sorted(str(p) for p in paths)


def group_triplets(frame_paths: list[str]) -> dict[str, list[str]]:
    """{triplet name: [frame1, frame2, frame3] paths}, sorted by name; a triplet missing a frame is an error."""
    triplets: dict[str, dict[int, str]] = {}
    for path in frame_paths:
        frames = triplets.setdefault(Path(path).parent.name, {})
        index = frame_index(path)
        if index in frames:
            raise ValueError(f"{Path(path).parent}: two files for frame{index} ({frames[index]}, {path})")
        frames[index] = str(path)
    for name, frames in triplets.items():
        missing = [f"frame{k}" for k in (1, 2, 3) if k not in frames]
        if missing:
            raise FileNotFoundError(f"triplet {name}: missing {', '.join(missing)} (have {sorted(frames.values())})")
    return {name: [frames[k] for k in (1, 2, 3)] for name, frames in sorted(triplets.items())}


def load_triplet(paths: list[str], size: int, resample: str) -> np.ndarray:
    """uint8 [3, size, size, 3] for one triplet's three frame files."""
    frames = []
    for path in paths:
        try:
            with Image.open(path) as image:
                frames.append(preprocess_frame(image, size, resample))
        except (OSError, SyntaxError) as error:  # PIL reports truncated or corrupt files as OSError
            raise OSError(f"cannot read frame {path}: {error}") from error
    return np.stack(frames)


def ingest_split(frame_paths: list[str], out_path: str | Path, split: str, size: int, resample: str = "bilinear",
                 threads: int = 1) -> None:
    """Decode and preprocess a split's frames into ``out_path`` (schema in latent_interp.store), chunk by chunk."""
    if resample not in RESAMPLE:
        raise ValueError(f"config key preprocess.resample = {resample!r}: choose one of {sorted(RESAMPLE)}")
    triplets = group_triplets(frame_paths)
    names = list(triplets)
    settings = {"size": size, "resample": resample, "convert": "RGB", "crop": "none (squash)",
                "source_files": len(frame_paths)}
    group = store.create(out_path, "frames", split, names, [origin_of(n) for n in names],
                         {"preprocess": settings, "provenance": store.provenance("ingest", settings)})
    frames = store.add_array(group, store.FRAMES, (3, size, size, 3), np.uint8)
    # PIL decodes and resizes without holding the GIL, so threads give real parallelism here.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool, tqdm(total=len(names), desc=f"ingest {split}",
                                                                         unit="triplet") as progress:
        for start, stop in store.chunk_ranges(frames):
            batch = list(pool.map(lambda name: load_triplet(triplets[name], size, resample), names[start:stop]))
            frames[start:stop] = np.stack(batch)
            progress.update(stop - start)
