import numpy as np
import pytest
from PIL import Image

from latent_interp import data, store


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


def test_group_triplets_orders_frames_and_names_a_missing_frame(tmp_path):
    paths = [str(tmp_path / "b" / f"frame{k}.jpg") for k in (3, 1, 2)] + [str(tmp_path / "a" / "frame1.png")]
    with pytest.raises(FileNotFoundError, match="triplet a: missing frame2, frame3"):
        data.group_triplets(paths)
    grouped = data.group_triplets(paths[:3])
    assert grouped == {"b": [str(tmp_path / "b" / f"frame{k}.jpg") for k in (1, 2, 3)]}


def test_split_frame_paths_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        data.split_frame_paths(tmp_path / "nope")


def test_unreadable_frame_is_named(tmp_path):
    bad = tmp_path / "t" / "frame1.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match=str(bad)):
        data.load_triplet([str(bad)] * 3, 16, "bilinear")


def test_ingest_writes_the_frames_schema(frame_tree, tmp_path):
    paths = data.split_frame_paths(frame_tree / "train")
    out = tmp_path / "train.zarr"
    data.ingest_split(paths, out, "train", size=32, threads=2)
    group = store.open_store(out, "frames")
    frames = group[store.FRAMES]
    names = store.names(group)
    assert frames.shape == (4, 3, 32, 32, 3) and frames.dtype == np.uint8
    assert names == sorted(names) and len(names) == 4
    assert store.origins(group) == [data.origin_of(n) for n in names]
    assert group.attrs["split"] == "train" and group.attrs["preprocess"]["size"] == 32
    assert "torch" in group.attrs["provenance"]["versions"]
    # Pixel-exact against loading the files by hand.
    triplets = data.group_triplets(paths)
    expected = data.load_triplet(triplets[names[2]], 32, "bilinear")
    np.testing.assert_array_equal(frames[2], expected)


def test_ingest_streams_across_chunks(frame_tree, tmp_path, monkeypatch):
    paths = data.split_frame_paths(frame_tree / "train")
    data.ingest_split(paths, tmp_path / "whole.zarr", "train", size=16)
    monkeypatch.setattr(store, "CHUNK_BYTES", 3 * 16 * 16 * 3)  # one triplet a chunk
    data.ingest_split(paths, tmp_path / "chunked.zarr", "train", size=16)
    chunked = store.open_store(tmp_path / "chunked.zarr")[store.FRAMES]
    assert chunked.chunks[0] == 1
    np.testing.assert_array_equal(chunked[:], store.open_store(tmp_path / "whole.zarr")[store.FRAMES][:])


def test_ingest_rejects_unknown_resample(frame_tree, tmp_path):
    with pytest.raises(ValueError, match="preprocess.resample"):
        data.ingest_split(data.split_frame_paths(frame_tree / "val"), tmp_path / "v.zarr", "val", 16, "cubic")
