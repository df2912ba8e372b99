"""Faulty data never stops the study silently nor disappears: skipped and listed, or a clear failure."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from latent_interp import data, store
from latent_interp.settings import Preprocess
from conftest import ingest_folder


def _good(folder, seed, modes=("RGB", "RGB", "RGB"), ext="jpg", size=(48, 27)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k, mode in enumerate(modes, start=1):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        image = image.convert(mode)
        image.save(folder / f"frame{k}.{'png' if mode in ('RGBA', 'P', 'L') else ext}")


def _annotate(root, name, level=1):
    path = root / name / f"{name}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"level": level, "motion_RoI": {"x": 10, "y": 5, "width": 20, "height": 10},
                                "image_size": [48, 27], "general_motion_type": "translation",
                                "behavior": "walking"}))


@pytest.fixture
def faulty_split(tmp_path):
    split = tmp_path / "test"
    _good(split / "Disney_ok_1", 0)
    _good(split / "Japan_modes", 1, modes=("RGBA", "P", "L"))
    _good(split / "Disney_truncated", 2)
    jpeg = (split / "Disney_truncated" / "frame2.jpg").read_bytes()
    (split / "Disney_truncated" / "frame2.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    _good(split / "Japan_garbage", 3)
    (split / "Japan_garbage" / "frame3.jpg").write_bytes(b"\x00not an image")
    _good(split / "Disney_missing", 4)
    (split / "Disney_missing" / "frame3.jpg").unlink()
    (split / "Japan_empty").mkdir()
    _good(split / "Disney_stray_inside", 5)
    (split / "Disney_stray_inside" / ".DS_Store").write_bytes(b"\x00\x00")
    (split / ".DS_Store").write_bytes(b"\x00")
    _good(split / "Japan_no_annotation", 6)
    annotations = tmp_path / "annotations"
    for name in ("Disney_ok_1", "Japan_modes", "Disney_truncated", "Japan_garbage", "Disney_missing",
                 "Disney_stray_inside"):
        _annotate(annotations, name)
    return split, annotations


def test_skip_lists_every_fault_and_counts_add_up(faulty_split, tmp_path):
    split, annotations = faulty_split
    source = data.SplitSource(split, annotations=annotations)
    out = tmp_path / "test.zarr"
    counts = data.ingest_split(source=source, frames=out, skipped=tmp_path / "skipped.csv", split="test",
                               preprocess=Preprocess(32))
    assert counts == {"found": 8, "ingested": 3, "skipped": 5, "stray_files": 2}
    assert counts["found"] == counts["ingested"] + counts["skipped"]
    group = store.open_store(out, "frames")
    assert store.names(group) == ["Disney_ok_1", "Disney_stray_inside", "Japan_modes"]
    assert group[store.FRAMES].shape == (3, 3, 32, 32, 3)
    skipped = pd.read_csv(tmp_path / "skipped.csv")
    reasons = dict(zip(skipped[skipped.what == "triplet"].triplet, skipped[skipped.what == "triplet"].reason))
    assert reasons.keys() == {"Disney_truncated", "Japan_garbage", "Disney_missing", "Japan_empty",
                              "Japan_no_annotation"}
    assert "unreadable image" in reasons["Disney_truncated"] and "unreadable image" in reasons["Japan_garbage"]
    assert reasons["Disney_missing"] == "missing frame3" and "empty folder" in reasons["Japan_empty"]
    assert reasons["Japan_no_annotation"] == "no annotation file"
    assert sorted(skipped[skipped.what == "file"].path.map(lambda p: p.split("/")[-1])) == [".DS_Store"] * 2
    assert skipped.loc[skipped.triplet == "Disney_truncated", "path"].item().endswith("frame2.jpg")
    annotations_table = store.read_annotations(group)
    assert list(annotations_table.level) == [1, 1, 1] and list(annotations_table.roi_w) == [20, 20, 20]


@pytest.mark.parametrize("fault, expected", [
    ("truncated", "frame2.jpg: unreadable image"),
    ("missing", "missing frame3"),
    ("stray", ".DS_Store: stray file"),
])
def test_fail_mode_stops_naming_the_file(tmp_path, fault, expected):
    split = tmp_path / "val"
    _good(split / "Disney_a", 0)
    if fault == "truncated":
        path = split / "Disney_a" / "frame2.jpg"
        path.write_bytes(path.read_bytes()[:100])
    elif fault == "missing":
        (split / "Disney_a" / "frame3.jpg").unlink()
    else:
        (split / ".DS_Store").write_bytes(b"\x00")
    with pytest.raises(ValueError, match=expected) as error:
        ingest_folder(split, tmp_path / "val.zarr", "val", 16, on_error="fail")
    assert "data.on_error" in str(error.value)


def test_every_mode_becomes_rgb(tmp_path):
    _good(tmp_path / "s" / "Japan_modes", 1, modes=("RGBA", "P", "L"), size=(40, 30))
    ingest_folder(tmp_path / "s", tmp_path / "s.zarr", "s", 16)
    frames = store.open_store(tmp_path / "s.zarr")[store.FRAMES]
    assert frames.shape == (1, 3, 16, 16, 3)
    grey = frames[0, 2].astype(int)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()


def test_an_all_faulty_split_gives_an_empty_store(tmp_path):
    (tmp_path / "s" / "Disney_empty").mkdir(parents=True)
    counts = ingest_folder(tmp_path / "s", tmp_path / "s.zarr", "s", 16)
    assert counts["ingested"] == 0 and counts["skipped"] == 1
    assert store.open_store(tmp_path / "s.zarr")[store.FRAMES].shape == (0, 3, 16, 16, 3)
