"""The zarr v3 stores every stage reads and writes: their schema, chunking, names and provenance.

The schema of every store (arrays, shapes, dtypes, attrs) is written once, in docs/outputs.md; the names below
(``FRAMES``, ``MEAN``, ``LOGVAR``, ...) are the arrays' names there.

Stores are written whole by one job into a fresh folder (``mode="w"``) and never changed in place afterwards. Rows
are chunked many triplets together (about 4 MiB a chunk): one latent triplet alone is only 48 KiB. Float arrays are
compressed with Blosc LZ4 over shuffled bytes, uint8 frames with zarr's default Zstd (``compressors_for``).

Integrity: zarr reads a missing chunk as its fill value, silently (zarr-python issue 486), so a chunk lost to a
partial copy or a flaky filesystem would read as zeros. Every array here is written with every chunk (also chunks
that equal the fill value, ``write_empty_chunks``), each chunk ends in a CRC32C of its bytes (zarr's ``crc32c``
codec, after compression), and the job that writes a store ends by sealing it (``seal``: attrs ``integrity``, the
number of chunks of every array). ``open_store`` refuses a sealed store with a missing chunk before anything is
read, and every chunk read is checked against its CRC32C (``_CheckedStore``); both errors name the store and the
chunk. A store that was never sealed (its job died before the end) is refused too.

Sharded splits (config ``data.shard_size``): a shard store holds the rows ``attrs["shard"]["rows"]`` = [start,
stop) of its split, with the same arrays and attrs plus ``shard`` (index, count, rows). Shards start on the chunk
grid of the whole split's store, so every chunk, and every micro-batch inside it, holds the same rows as in an
unsharded run; ``gather`` concatenates them into a store byte-identical to the unsharded one.
"""

from __future__ import annotations

import asyncio
import json
import platform
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

TRIPLETS = "triplets"
ORIGINS = "origins"
MIDDLE_TIME = "t"
FRAMES = "frames"
MEAN = "mean"
LOGVAR = "logvar"
# ATD-12K annotations (frames stores of annotated splits only)
LEVEL, MOTION_ROI, IMAGE_SIZE, MOTION_TYPE, BEHAVIOR = (
    "level", "motion_roi", "image_size", "general_motion_type", "behavior")
CHUNK_BYTES = 4 * 2**20
VERSIONED_PACKAGES = ("latent-interp", "torch", "diffusers", "zarr", "numpy", "pillow", "scikit-image", "scikit-learn",
                      "umap-learn", "pandas", "opencv-python-headless", "av", "scenedetect")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the results."""
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def provenance(stage: str, settings: dict) -> dict:
    """The record stored with an artifact. No timestamps or host names: two runs must give identical stores."""
    return {"stage": stage, "settings": settings, "versions": versions()}


def triplets_per_chunk(triplet_shape: tuple[int, ...], dtype, total: int) -> int:
    """How many triplets make a chunk of about CHUNK_BYTES (at least 1, at most the whole split)."""
    triplet_bytes = int(np.prod(triplet_shape)) * np.dtype(dtype).itemsize
    return max(1, min(max(total, 1), CHUNK_BYTES // triplet_bytes))


def create(path: str | Path, kind: str, split: str, attrs: dict, triplets: list[str] | None = None,
           origins: list[str] | None = None) -> zarr.Group:
    """A fresh store; the triplet names go in now (``triplets``) or, once known, with ``write_names``."""
    group = zarr.open_group(str(path), mode="w")
    group.attrs.update({"kind": kind, "split": split, **attrs})
    if triplets is not None:
        write_names(group, triplets, origins)
    return group


def create_array(group: zarr.Group, name: str, shape: tuple[int, ...], dtype, chunks: tuple[int, ...] | None = None,
                 compressors="auto") -> zarr.Array:
    """Every array of a store is made here: each chunk written, even one that equals the fill value (so that a
    missing chunk always means a lost one), and checksummed (CRC32C after the compressors; see the docstring)."""
    chunks = chunks or (max(shape[0], 1), *shape[1:])
    if compressors == "auto":  # zarr's own default, which "auto" cannot be combined with
        compressors = [zarr.codecs.ZstdCodec(level=0, checksum=False)]
    return group.create_array(name, shape=shape, dtype=dtype, chunks=chunks,
                              compressors=[*(compressors or []), zarr.codecs.Crc32cCodec()],
                              config={"write_empty_chunks": True})


def write_strings(group: zarr.Group, name: str, values: list[str]) -> None:
    # Variable-length str arrays: fixed-width numpy unicode has no zarr v3 spec (REFERENCE.md).
    array = create_array(group, name, (len(values),), str)
    if values:
        array[:] = np.asarray(values, dtype=object)


def write_names(group: zarr.Group, triplets: list[str], origins: list[str]) -> None:
    if len(triplets) != len(origins):
        raise ValueError(f"{group.store}: {len(triplets)} triplet names but {len(origins)} origins")
    if len(set(triplets)) != len(triplets):
        raise ValueError(f"{group.store}: triplet names are not unique")
    write_strings(group, TRIPLETS, triplets)
    write_strings(group, ORIGINS, origins)


def write_middle_times(group: zarr.Group, times: list[float], source: str) -> None:
    count = len(times)
    create_array(group, MIDDLE_TIME, (count,), np.float64)[:] = np.asarray(times, dtype=np.float64)
    group.attrs["t_source"] = source


def middle_times(group: zarr.Group) -> np.ndarray:
    """Frame 2's time in [0, 1] per triplet (frames stores)."""
    return group[MIDDLE_TIME][:] if group[MIDDLE_TIME].shape[0] else np.empty(0)


def write_annotations(group: zarr.Group, annotations: list[dict]) -> None:
    """ATD-12K annotation arrays, in triplet order (schema above)."""
    count = len(annotations)
    create_array(group, LEVEL, (count,), np.int8)[:] = np.array([a["level"] for a in annotations], dtype=np.int8)
    for name, width in ((MOTION_ROI, 4), (IMAGE_SIZE, 2)):
        create_array(group, name, (count, width), np.int32)[:] = np.array(
            [a[name] for a in annotations], dtype=np.int32).reshape(count, width)
    for name in (MOTION_TYPE, BEHAVIOR):
        write_strings(group, name, [a[name] for a in annotations])


def read_annotations(group: zarr.Group):
    """The annotation arrays as a table indexed like the triplets, or None when the store has none."""
    if LEVEL not in group:
        return None
    table = pd.DataFrame({"triplet": names(group), LEVEL: group[LEVEL][:] if len(names(group)) else []})
    for name in (MOTION_TYPE, BEHAVIOR):
        table[name] = [str(v) for v in group[name][:]] if len(table) else []
    table[[f"roi_{k}" for k in "xywh"]] = group[MOTION_ROI][:] if len(table) else np.empty((0, 4), int)
    table[["image_width", "image_height"]] = group[IMAGE_SIZE][:] if len(table) else np.empty((0, 2), int)
    return table


def add_array(group: zarr.Group, name: str, triplet_shape: tuple[int, ...], dtype, count: int | None = None,
              chunk_rows: int | None = None):
    """An array of ``count`` triplets (default: as many as the store's names), chunked along axis 0 by about
    CHUNK_BYTES or, given, ``chunk_rows`` triplets (arrays written together share their chunk rows, so that no write
    touches part of a chunk)."""
    count = group[TRIPLETS].shape[0] if count is None else count
    chunk = max(1, min(chunk_rows, max(count, 1))) if chunk_rows else triplets_per_chunk(triplet_shape, dtype, count)
    return create_array(group, name, (count, *triplet_shape), dtype, (chunk, *triplet_shape), compressors_for(dtype))


def compressors_for(dtype):
    """float32 arrays (latents): Blosc LZ4 over byte-shuffled floats, smaller and faster to read than zarr's default
    Zstd (4,000 latent triplets: 0.87 of the raw size read at 1,440 MiB/s, against 0.92 at 980 MiB/s; bench P3).
    Frames (uint8) keep zarr's default, Zstd."""
    if np.dtype(dtype).kind == "f":
        return [zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=np.dtype(dtype).itemsize)]
    return "auto"


class StoreIntegrityError(RuntimeError):
    """A store with a missing or corrupt chunk, or one its job never sealed."""


def _array_chunk_counts(root: Path) -> dict[str, int]:
    """Array path -> the number of chunks its shape and chunk grid make, from the zarr.json files under ``root``."""
    counts = {}
    for meta in root.rglob("zarr.json"):
        record = json.loads(meta.read_text())
        if record.get("node_type") == "array":
            shape, chunks = record["shape"], record["chunk_grid"]["configuration"]["chunk_shape"]
            count = int(np.prod([-(-size // chunk) for size, chunk in zip(shape, chunks)]))
            counts[meta.parent.relative_to(root).as_posix()] = count
    return counts


def seal(group: zarr.Group) -> None:
    """The writing job's last act: check that every chunk of every array is on disk and record how many
    (attrs ``integrity``); ``open_store`` refuses a store that lacks this, or has lost a chunk since."""
    root = Path(str(group.store.root))
    expected = _array_chunk_counts(root)
    missing = {array: count - _stored_chunks(root / array) for array, count in expected.items()
               if _stored_chunks(root / array) != count}
    if missing:
        raise StoreIntegrityError(f"{root}: chunks not written at the end of the job: {missing}")
    group.attrs["integrity"] = {"chunks": dict(sorted(expected.items())), "checksum": "crc32c per chunk",
                                "empty_chunks": "written"}


def _stored_chunks(array_dir: Path) -> int:
    chunk_dir = array_dir / "c"
    return sum(1 for path in chunk_dir.rglob("*") if path.is_file()) if chunk_dir.is_dir() else 0


def _missing_chunks(root: Path, array: str, count: int) -> list[str]:
    """The chunk keys of ``array`` that are not on disk (its grid is along axis 0, or a single chunk)."""
    record = json.loads((root / array / "zarr.json").read_text())
    shape, chunks = record["shape"], record["chunk_grid"]["configuration"]["chunk_shape"]
    grid = [-(-size // chunk) for size, chunk in zip(shape, chunks)]
    keys = ["c/" + "/".join(str(i) for i in np.unravel_index(index, grid)) for index in range(count)]
    return [f"{array}/{key}" for key in keys if not (root / array / key).is_file()]


def _crc32c_holds(data: np.ndarray) -> bool:
    """Whether a chunk's last 4 bytes are the CRC32C of the rest (zarr's crc32c codec), without copying it."""
    import google_crc32c

    return np.uint32(google_crc32c.value(data[:-4])).tobytes() == bytes(data[-4:])


class _CheckedStore(zarr.storage.LocalStore):
    """A read-only local store whose chunk reads fail, naming the store and the chunk, where a chunk is missing or
    its CRC32C does not match (zarr would fill the first with zeros; the codec's own error names neither)."""

    async def get(self, key, prototype=None, byte_range=None):
        value = await super().get(key, prototype, byte_range)
        if "/c/" not in f"/{key}" or byte_range is not None:
            return value
        if value is None:
            raise StoreIntegrityError(f"{self.root}: chunk {key} is missing (a partial copy or a lost file?); "
                                      "rerun the rule that writes this store")
        # in a worker thread, as the read itself was: on the event loop it would hold up every other chunk's read
        if not await asyncio.to_thread(_crc32c_holds, value.as_numpy_array()):
            raise StoreIntegrityError(f"{self.root}: chunk {key} is corrupt (its CRC32C does not match its bytes); "
                                      "rerun the rule that writes this store")
        return value


def open_store(path: str | Path, kind: str | None = None) -> zarr.Group:
    """Open a store read-only, checking it is of the expected kind, sealed, and has every chunk (see the docstring:
    a sealed store is then read through ``_CheckedStore``)."""
    if not Path(path, "zarr.json").is_file():
        raise FileNotFoundError(f"{path}: not a zarr store (no zarr.json)")
    group = zarr.open_group(str(path), mode="r")
    if kind is not None and group.attrs.get("kind") != kind:
        raise ValueError(f"{path}: expected a {kind!r} store, found kind={group.attrs.get('kind')!r}")
    integrity = group.attrs.get("integrity")
    if integrity is None:
        raise StoreIntegrityError(f"{path}: not sealed: the job that wrote it did not finish (or an older version of "
                                  "latent-interp wrote it); rerun the rule that writes this store")
    root = Path(path)
    missing = [key for array, count in integrity["chunks"].items() for key in _missing_chunks(root, array, count)]
    if missing:
        raise StoreIntegrityError(f"{path}: {len(missing)} chunk(s) missing, first {', '.join(missing[:5])} (a partial "
                                  "copy or a lost file?); rerun the rule that writes this store")
    return zarr.open_group(store=_CheckedStore(root, read_only=True), mode="r")


def names(group: zarr.Group) -> list[str]:
    values = group[TRIPLETS][:] if group[TRIPLETS].shape[0] else []
    return [str(v) for v in values]


def origins(group: zarr.Group) -> list[str]:
    values = group[ORIGINS][:] if group[ORIGINS].shape[0] else []
    return [str(v) for v in values]


def require_same_triplets(first: zarr.Group, second: zarr.Group, first_path, second_path) -> list[str]:
    """Stages pair stores by triplet name, never by position: refuse stores whose names differ."""
    first_names, second_names = names(first), names(second)
    if first_names != second_names:
        only_first = sorted(set(first_names) - set(second_names))[:5]
        only_second = sorted(set(second_names) - set(first_names))[:5]
        detail = (f"only in the first: {only_first}, only in the second: {only_second}" if only_first or only_second
                  else "same names in a different order")
        raise ValueError(f"{first_path} and {second_path} hold different triplets ({detail})")
    return first_names


def rows_per_read(chunk_rows: int, min_rows: int = 1) -> int:
    """Whole chunks, enough of them for ``min_rows`` rows: a GPU stage reads as many triplets as fill its batch."""
    return chunk_rows * max(1, -(-min_rows // chunk_rows))


def chunk_ranges(array: zarr.Array, min_rows: int = 1):
    """(start, stop) along axis 0, whole chunks at a time, at least ``min_rows`` rows each (the last may be
    fewer): stream a store with memory bounded by a few chunks."""
    step = rows_per_read(array.chunks[0], min_rows)
    for start in range(0, array.shape[0], step):
        yield start, min(start + step, array.shape[0])


def read_ahead(array: zarr.Array, spans: list[tuple[int, int]], offset: int = 0, overlap: bool = True):
    """((start, stop), array[offset + start:offset + stop]) for each span; with ``overlap``, the next span is read in
    a thread while the caller works on this one, so a GPU never waits for decompression."""
    if not overlap:
        for start, stop in spans:
            yield (start, stop), array[offset + start:offset + stop]
        return
    with ThreadPoolExecutor(1) as pool:
        def read(index):
            start, stop = spans[index]
            return pool.submit(array.__getitem__, slice(offset + start, offset + stop))

        upcoming = read(0) if spans else None
        for index, span in enumerate(spans):
            rows = upcoming.result()
            if index + 1 < len(spans):
                upcoming = read(index + 1)
            yield span, rows


class WriteBehind:
    """Writes (array, rows, values) in a thread while the caller computes the next chunk (with ``overlap``; else at
    once); at most one chunk's writes wait, so memory stays at two chunks. Leaving the block waits for the last
    write (and raises its error)."""

    def __init__(self, overlap: bool = True):
        self.pool, self.pending, self.overlap = ThreadPoolExecutor(1), None, overlap

    def write(self, *writes) -> None:
        self.wait()
        if not self.overlap:
            for array, rows, values in writes:
                array[rows] = values
            return
        self.pending = self.pool.submit(lambda: [array.__setitem__(rows, values) for array, rows, values in writes])

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self.pool.shutdown(wait=True)


def shard_rows(total: int, index: int, count: int, align: int) -> tuple[int, int]:
    """Rows [start, stop) of shard ``index`` of ``count``: about total / count rows each, starting on multiples of
    ``align`` (the whole store's chunk rows). Trailing shards are empty when alignment leaves nothing for them."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist")
    per_shard = -(-max(total, 1) // count)
    per_shard = -(-per_shard // align) * align
    return min(index * per_shard, total), min((index + 1) * per_shard, total)


def shard_attrs(index: int, count: int, rows: tuple[int, int]) -> dict:
    return {"shard": {"index": index, "count": count, "rows": list(rows)}}


PER_SHARD_ATTRS = ("integrity", "non_finite")


def gather(*, shards: list[str | Path], store: str | Path) -> zarr.Group:
    """Rule gather_store: concatenate the shard stores ``shards`` of one split, in order, into ``store``, the store an
    unsharded run writes: the same attrs (less ``shard``), names, arrays and chunking, copied one chunk at a time."""
    shard_paths, out_path = shards, store
    shards = [open_store(path) for path in shard_paths]
    first = dict(shards[0].attrs)
    expected_start = 0
    for index, (path, shard) in enumerate(zip(shard_paths, shards)):
        attrs = dict(shard.attrs)
        record = attrs.pop("shard", None)
        if record is None or (record["index"], record["count"], record["rows"][0]) != (index, len(shards),
                                                                                       expected_start):
            raise ValueError(f"{path}: expected shard {index} of {len(shards)} from row {expected_start}, found "
                             f"{record}")
        # each shard's own chunk counts (the gathered store is sealed anew) and non-finite counts (summed below)
        attrs = {k: v for k, v in attrs.items() if k not in PER_SHARD_ATTRS}
        if attrs != {k: v for k, v in first.items() if k not in ("shard", *PER_SHARD_ATTRS)}:
            raise ValueError(f"{path}: attrs differ from {shard_paths[0]}'s; the shards were made differently")
        expected_start = record["rows"][1]
    attrs = {k: v for k, v in first.items() if k not in ("shard", "kind", "split", *PER_SHARD_ATTRS)}
    if "non_finite" in first:
        attrs["non_finite"] = {key: sum(shard.attrs["non_finite"][key] for shard in shards)
                               for key in first["non_finite"]}
    group = create(out_path, first["kind"], first["split"], attrs, [n for shard in shards for n in names(shard)],
                   [o for shard in shards for o in origins(shard)])
    for name in shards[0].array_keys():
        if name in (TRIPLETS, ORIGINS):
            continue
        template = shards[0][name]
        target = add_array(group, name, template.shape[1:], template.dtype)
        offset = 0
        for shard in shards:
            source = shard[name]
            for start, stop in chunk_ranges(source):
                target[offset + start:offset + stop] = source[start:stop]
            offset += source.shape[0]
    seal(group)
    return group
