import numpy as np
import pandas as pd
import pytest
from PIL import Image

from latent_interp import assign, data, store
from conftest import ingest_folder


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_preprocess_converts_any_mode_to_rgb_and_squashes(mode):
    image = Image.new("RGB", (96, 54), (200, 30, 60)).convert(mode)
    frame = data.preprocess_frame(image, 32)
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8


def test_preprocess_matches_pil_resize_bilinear():
    array = np.random.default_rng(0).integers(0, 256, (36, 64, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(array).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(data.preprocess_frame(Image.fromarray(array), 16), expected)


def test_model_range_round_trip():
    frames = np.random.default_rng(1).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    model_input = data.to_model_range(frames)
    assert model_input.shape == (2, 3, 3, 8, 8) and model_input.min() >= -1 and model_input.max() <= 1
    np.testing.assert_array_equal(data.to_uint8(model_input), frames)


def test_origin_of():
    assert data.origin_of("Disney_v4_0_000024_s2") == "Disney"
    assert data.origin_of("Japan_v2_0_161238_s3") == "Japan"
    assert data.origin_of("my_clip") == "unknown"


def test_unreadable_frame_is_named(tmp_path):
    bad = tmp_path / "t" / "frame1.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(data.FaultyTriplet, match="unreadable image") as error:
        data.load_triplet([str(bad)] * 3, 16, "bilinear")
    assert error.value.path == str(bad)


def test_ingest_writes_the_frames_schema(frame_tree, tmp_path):
    out = tmp_path / "train.zarr"
    counts = ingest_folder(frame_tree / "train", out, "train", size=32, threads=2)
    assert counts == {"found": 4, "ingested": 4, "skipped": 0, "stray_files": 0}
    group = store.open_store(out, "frames")
    frames = group[store.FRAMES]
    names = store.names(group)
    assert frames.shape == (4, 3, 32, 32, 3) and frames.dtype == np.uint8
    assert names == sorted(names) and len(names) == 4
    assert store.origins(group) == [data.origin_of(n) for n in names]
    assert group.attrs["split"] == "train" and group.attrs["preprocess"]["size"] == [32, 32]
    assert group.attrs["counts"]["ingested"] == 4 and "torch" in group.attrs["provenance"]["versions"]
    # Pixel-exact against loading the files by hand.
    paths, _ = data.triplet_frame_files(frame_tree / "train" / names[2])
    np.testing.assert_array_equal(frames[2], data.load_triplet(paths, 32, "bilinear")[0])
    assert pd.read_csv(out.with_suffix(".skipped.csv")).empty


def test_ingest_streams_across_chunks(frame_tree, tmp_path, monkeypatch):
    ingest_folder(frame_tree / "train", tmp_path / "whole.zarr", "train", size=16)
    monkeypatch.setattr(store, "CHUNK_BYTES", 3 * 16 * 16 * 3)  # one triplet a chunk
    ingest_folder(frame_tree / "train", tmp_path / "chunked.zarr", "train", size=16)
    chunked = store.open_store(tmp_path / "chunked.zarr")[store.FRAMES]
    assert chunked.chunks[0] == 1
    np.testing.assert_array_equal(chunked[:], store.open_store(tmp_path / "whole.zarr")[store.FRAMES][:])


def test_ingest_rejects_unknown_resample(frame_tree, tmp_path):
    with pytest.raises(ValueError, match="preprocess.resample"):
        ingest_folder(frame_tree / "val", tmp_path / "v.zarr", "val", 16, resample="cubic")


def test_hash_split_is_stable_and_near_the_fraction():
    names = [f"Disney_v1_0_{i:06d}_s1" for i in range(4000)]
    val = [n for n in names if assign.hash_fraction(n) < 0.1]
    assert 330 < len(val) < 470
    grown = names + [f"Japan_v2_0_{i:06d}_s2" for i in range(500)]
    assert [n for n in grown if assign.hash_fraction(n) < 0.1][:len(val)] == val  # adding never moves old ones


def test_split_sources_for_both_layouts(tmp_path):
    atd = {"root": str(tmp_path), "splits": ["train", "val", "test"], "layout": "atd12k", "val_fraction": 0.2}
    train, val, test = (data.split_source(atd, s) for s in ("train", "val", "test"))
    assert train.folder == val.folder == tmp_path / "train_10k" and test.folder == tmp_path / "test_2k_540p"
    assert test.annotations == tmp_path / "test_2k_annotations"
    name = next(f"t{i}" for i in range(100) if assign.hash_fraction(f"t{i}") < 0.2)
    assert val.keeps(name) and not train.keeps(name)
    folders = {"root": str(tmp_path), "splits": ["train"], "split_dirs": {"train": "my_train"},
               "annotations": {"train": "my_annotations"}}
    assert data.split_source(folders, "train").folder == tmp_path / "my_train"
    assert data.split_source(folders, "train").annotations == tmp_path / "my_annotations"
    assert data.split_source(folders, "val").annotations is None
    assert data.split_source(folders, "val").folder == tmp_path / "val"
    with pytest.raises(FileNotFoundError, match="data.root"):
        data.split_source(folders, "val").triplet_dirs()


def test_a_width_height_size_squashes_to_exactly_that_size():
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    frame = data.preprocess_frame(image, [64, 36])
    assert frame.shape == (36, 64, 3)
    np.testing.assert_array_equal(frame, np.asarray(image.resize((64, 36), Image.Resampling.BILINEAR)))
    assert data.frame_size(32) == (32, 32) and data.frame_size([960, 540]) == (960, 540)


def test_pad_fits_inside_with_black_bars_and_keeps_the_aspect():
    image = Image.new("RGB", (100, 100), (250, 250, 250))  # a square into a 16:9 frame: bars left and right
    frame = data.preprocess_frame(image, [64, 36], fit="pad")
    assert frame.shape == (36, 64, 3)
    lit = np.argwhere(frame.sum(axis=2) > 0)
    (top, left), (bottom, right) = lit.min(axis=0), lit.max(axis=0) + 1
    assert (top, bottom) == (0, 36) and (left, right) == (14, 50)  # a 36 x 36 square, centred
    assert frame[:, :14].max() == 0 and frame[:, 50:].max() == 0


def test_crop_covers_and_cuts_the_centre_of_each_frame_whatever_its_size():
    # Two frames of different sizes and aspects, with a centre mark: both come out at the size, unstretched.
    for width, height in ((200, 100), (90, 160)):
        array = np.zeros((height, width, 3), np.uint8)
        array[height // 2 - 5:height // 2 + 5, width // 2 - 5:width // 2 + 5] = 255
        frame = data.preprocess_frame(Image.fromarray(array), [40, 40], fit="crop")
        assert frame.shape == (40, 40, 3)
        scale = max(40 / width, 40 / height)
        scaled = Image.fromarray(array).resize((round(width * scale), round(height * scale)),
                                               Image.Resampling.BILINEAR)
        left, top = (scaled.width - 40) // 2, (scaled.height - 40) // 2
        np.testing.assert_array_equal(frame, np.asarray(scaled.crop((left, top, left + 40, top + 40))))
        mark = np.argwhere(frame[..., 0] > 128)
        extent = mark.max(axis=0) - mark.min(axis=0) + 1
        assert abs(int(extent[0]) - int(extent[1])) <= 1  # the square mark stays square: no stretching


def test_an_unknown_fit_names_the_key():
    with pytest.raises(ValueError, match="preprocess.fit"):
        data.preprocess_frame(Image.new("RGB", (8, 8)), 8, fit="stretch")
