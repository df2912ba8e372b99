"""Where a split's videos are, which split a video goes to, and what an extraction left behind: torch- and
PyAV-free, since the Snakefile lists every video before any job runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from latent_interp import schema
from latent_interp.assign import hash_fraction

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif")
DETECTORS = ("content", "adaptive", "threshold", "histogram", "hash", "none")
DROP_REASONS = ("cut", "too_still", "too_far", "stride", "cap")
# config data.video's defaults (the schema's). held: codec noise on a held drawing moves grey levels by a few steps
# on the thumbnail, where a new drawing moves the pixels of its moving parts by tens; 0.1% of 256 x 144 is 37 pixels,
# a mouth flap is several times that.
DEFAULTS = schema.defaults("data.video")
MANIFEST_COLUMNS = ["triplet", "kept", "drop_reason", "frame1", "frame2", "frame3", "time1", "time2", "time3", "t",
                    "scene", "difference12", "difference23", "motion"]
MANIFEST, INFO, TRIPLETS, DRAWINGS = "manifest.csv", "video.json", "triplets", "drawings.csv"
DRAWING_COLUMNS = ["drawing", "frame", "time", "scene"]  # drawings.csv: every drawing the extraction found
# rule inbetween's folder (latent_interp.inbetween): the clip, the comparison, the manifest, the record; named here,
# torch-free, for the report that lists them
CLIP, COMPARE, CLIP_MANIFEST, CLIP_RECORD = "inbetween.mp4", "compare.mp4", "manifest.csv", "clip.json"
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


def read_record(extraction: str | Path) -> dict:
    return json.loads((Path(extraction) / INFO).read_text())


def read_manifest(extraction: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(extraction) / MANIFEST, keep_default_na=False,
                       dtype={"triplet": str, "drop_reason": str, "kept": bool})


def read_drawings(extraction: str | Path) -> pd.DataFrame:
    """Every drawing of an extraction, in order: its number (0, 1, ..: its position), its first decoded frame, its
    time (s) and its scene."""
    drawings = pd.read_csv(Path(extraction) / DRAWINGS)
    if drawings["drawing"].tolist() != list(range(len(drawings))):
        raise ValueError(f"{Path(extraction) / DRAWINGS}: the drawings are not numbered 0, 1, .. in order: rerun "
                         "rule extract_video")
    return drawings


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
