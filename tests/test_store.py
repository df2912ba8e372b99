import warnings

import numpy as np
import pytest

from latent_interp import store


def _store(path, names, kind="frames"):
    group = store.create(path, kind, "val", {"note": 1}, names, ["Disney"] * len(names))
    store.add_array(group, store.FRAMES, (3, 4, 4, 3), np.uint8)[:] = 0
    store.seal(group)
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


def _latents(path, count=40, rows_per_chunk=16):
    """A sealed latents store of ``count`` triplets in chunks of ``rows_per_chunk``, its first chunk all zeros (a
    chunk equal to the fill value, which zarr skips by default), and its values."""
    group = store.create(path, "latents", "val", {}, [f"t{i:03d}" for i in range(count)], ["Disney"] * count)
    values = np.random.default_rng(0).normal(size=(count, 3, 4, 4, 4)).astype(np.float32)
    values[:rows_per_chunk] = 0.0
    store.add_array(group, store.MEAN, (3, 4, 4, 4), np.float32, chunk_rows=rows_per_chunk)[:] = values
    store.seal(group)
    return values


def test_every_chunk_is_written_and_the_seal_counts_them(tmp_path):
    values = _latents(tmp_path / "l.zarr")
    assert (tmp_path / "l.zarr" / "mean" / "c" / "0" / "0" / "0" / "0" / "0").is_file()  # the all-zero chunk too
    group = store.open_store(tmp_path / "l.zarr", "latents")
    assert group.attrs["integrity"]["chunks"] == {"mean": 3, "origins": 1, "triplets": 1}
    assert np.array_equal(group[store.MEAN][:], values)


def test_a_lost_chunk_is_refused_naming_the_store_and_the_chunk(tmp_path):
    """As a user would lose one: a partial copy leaves out one chunk file of a finished latents store. zarr alone
    reads its 16 triplets as zeros with no error (zarr-python issue 486)."""
    _latents(tmp_path / "l.zarr")
    (tmp_path / "l.zarr" / "mean" / "c" / "1" / "0" / "0" / "0" / "0").unlink()
    import zarr

    assert not zarr.open_group(str(tmp_path / "l.zarr"), mode="r")[store.MEAN][16:32].any()  # what zarr does
    with pytest.raises(store.StoreIntegrityError, match=r"l\.zarr: 1 chunk\(s\) missing, first mean/c/1/0/0/0/0"):
        store.open_store(tmp_path / "l.zarr", "latents")


def test_a_chunk_lost_after_opening_fails_the_read_naming_it(tmp_path):
    _latents(tmp_path / "l.zarr")
    group = store.open_store(tmp_path / "l.zarr", "latents")
    (tmp_path / "l.zarr" / "mean" / "c" / "2" / "0" / "0" / "0" / "0").unlink()
    assert group[store.MEAN][:16].shape == (16, 3, 4, 4, 4)  # other chunks still read
    with pytest.raises(store.StoreIntegrityError, match=r"chunk mean/c/2/0/0/0/0 is missing"):
        group[store.MEAN][:]


def test_a_corrupt_chunk_fails_its_read_naming_it(tmp_path):
    values = _latents(tmp_path / "l.zarr")
    chunk = tmp_path / "l.zarr" / "mean" / "c" / "1" / "0" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, as a flaky disk or transfer gives
    chunk.write_bytes(bytes(data))
    group = store.open_store(tmp_path / "l.zarr", "latents")
    assert np.array_equal(group[store.MEAN][:16], values[:16])
    with pytest.raises(store.StoreIntegrityError, match=r"l\.zarr: chunk mean/c/1/0/0/0/0 is corrupt"):
        group[store.MEAN][16:32]


def test_a_store_whose_job_did_not_finish_is_refused(tmp_path):
    group = store.create(tmp_path / "u.zarr", "frames", "val", {}, ["x"], ["Disney"])
    store.add_array(group, store.FRAMES, (3, 4, 4, 3), np.uint8)[:] = 1
    with pytest.raises(store.StoreIntegrityError, match=r"u\.zarr: not sealed"):
        store.open_store(tmp_path / "u.zarr", "frames")
    store.add_array(group, "half_written", (3, 4, 4, 3), np.uint8)  # no chunk written: the seal refuses
    with pytest.raises(store.StoreIntegrityError, match="chunks not written at the end of the job"):
        store.seal(group)
