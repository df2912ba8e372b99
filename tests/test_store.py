import warnings

import numpy as np
import pytest

from latent_interp import store


def _store(path, names, kind="frames"):
    group = store.create(path, kind, "val", {"note": 1}, names, ["Disney"] * len(names))
    store.add_array(group, store.FRAMES, (3, 4, 4, 3), np.uint8)
    return group


def test_names_round_trip_as_variable_length_strings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fixed-width unicode would warn: it has no zarr v3 specification
        _store(tmp_path / "a.zarr", ["Disney_v1_0_000001_s1", "Japan_v2_0_000002_s3"])
    reopened = store.open_store(tmp_path / "a.zarr", "frames")
    assert store.names(reopened) == ["Disney_v1_0_000001_s1", "Japan_v2_0_000002_s3"]
    assert reopened.attrs["note"] == 1 and reopened.attrs["kind"] == "frames"


def test_open_checks_kind_and_existence(tmp_path):
    _store(tmp_path / "a.zarr", ["x"])
    with pytest.raises(ValueError, match="expected a 'latents' store"):
        store.open_store(tmp_path / "a.zarr", "latents")
    with pytest.raises(FileNotFoundError, match="not a zarr store"):
        store.open_store(tmp_path / "missing.zarr")


def test_duplicate_or_mismatched_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not unique"):
        _store(tmp_path / "d.zarr", ["x", "x"])
    with pytest.raises(ValueError, match="2 triplet names but 1 origins"):
        store.create(tmp_path / "e.zarr", "frames", "val", {}, ["x", "y"], ["Disney"])


def test_pairing_is_by_name(tmp_path):
    a = _store(tmp_path / "a.zarr", ["x", "y"])
    b = _store(tmp_path / "b.zarr", ["y", "x"])
    c = _store(tmp_path / "c.zarr", ["x", "z"])
    assert store.require_same_triplets(a, _store(tmp_path / "a2.zarr", ["x", "y"]), "a", "a2") == ["x", "y"]
    with pytest.raises(ValueError, match="different order"):
        store.require_same_triplets(a, b, "a", "b")
    with pytest.raises(ValueError, match=r"only in the first: \['y'\], only in the second: \['z'\]"):
        store.require_same_triplets(a, c, "a", "c")


def test_chunks_hold_about_four_mib_and_cover_the_array(tmp_path):
    assert store.triplets_per_chunk((3, 4, 32, 32), np.float32, 10_000) == 85  # 48 KiB a latent triplet
    assert store.triplets_per_chunk((3, 256, 256, 3), np.uint8, 10_000) == 7
    assert store.triplets_per_chunk((3, 4, 32, 32), np.float32, 5) == 5
    group = _store(tmp_path / "a.zarr", [f"t{i}" for i in range(5)])
    array = store.add_array(group, "wide", (3, 4, 32, 32), np.float32)
    assert list(store.chunk_ranges(array)) == [(0, 5)]


def test_provenance_has_no_timestamp():
    record = store.provenance("ingest", {"size": 8})
    assert record["stage"] == "ingest" and record["settings"] == {"size": 8}
    assert set(record) == {"stage", "settings", "versions"}


@pytest.mark.parametrize("total, count, align", [(10, 3, 1), (10, 3, 4), (7, 3, 7), (0, 2, 5), (100, 7, 3)])
def test_shards_cover_the_rows_once_in_order_on_the_chunk_grid(total, count, align):
    shards = [store.shard_rows(total, index, count, align) for index in range(count)]
    assert shards[0][0] == 0 and shards[-1][1] == total
    assert all(previous[1] == following[0] for previous, following in zip(shards, shards[1:]))
    assert all(start % align == 0 or start == total for start, _ in shards)
    with pytest.raises(ValueError, match="shard 3 of 3"):
        store.shard_rows(total, 3, 3, align)
