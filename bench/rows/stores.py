"""Reading latents: one latents store against the seed's latent{1,2,3}.npy files (P3)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from common import Row, Timer


def p3_latent_reads(quick: bool, tmp: Path) -> Row:
    """Reading every latent of a split: one latents store against the seed's latent{1,2,3}.npy per triplet."""
    from latent_interp import seed_layout, store

    count = 200 if quick else 10_000
    rng = np.random.default_rng(0)
    group = store.create(tmp / "p3.zarr", "latents", "bench", {"vae": {"source": "bench"}},
                         [f"bench_{i:06d}" for i in range(count)], ["Disney"] * count)
    mean = store.add_array(group, store.MEAN, (3, 4, 32, 32), np.float32)
    for start, stop in store.chunk_ranges(mean):
        # smooth in space and close between frames, like real latents (white noise would not compress at all)
        base = rng.standard_normal((stop - start, 1, 4, 8, 8)).astype(np.float32)
        mean[start:stop] = np.repeat(np.repeat(base, 4, axis=3), 4, axis=4).repeat(3, axis=1) + \
            0.1 * rng.standard_normal((stop - start, 3, 4, 32, 32)).astype(np.float32)
    store.seal(group)
    seed_layout.export_latents(tmp / "p3.zarr", tmp / "p3-seed")
    # the same latents as zarr alone writes them: no CRC32C per chunk, no seal, read with no checks (what the
    # integrity checks cost)
    import zarr

    plain = zarr.open_group(str(tmp / "p3-plain.zarr"), mode="w").create_array(
        store.MEAN, shape=mean.shape, dtype=np.float32, chunks=mean.chunks,
        compressors=store.compressors_for(np.float32))
    plain[:] = mean[:]

    def read_seed():
        files = sorted((tmp / "p3-seed" / "bench").iterdir())
        return np.stack([np.stack([np.load(folder / name) for name in seed_layout.LATENT_FILES]) for folder in files])

    def read_store():
        return store.open_store(tmp / "p3.zarr", "latents")[store.MEAN][:]

    def read_unchecked():
        return zarr.open_group(str(tmp / "p3-plain.zarr"), mode="r")[store.MEAN][:]

    expected, seconds = mean[:], {}
    for cache in ("cold", "warm") if not quick else ("warm",):  # --quick leaves the machine's page cache alone
        for name, read in (("seed", read_seed), ("store", read_store), ("unchecked", read_unchecked)):
            if cache == "cold" and not _drop_page_cache():
                break
            timings = []
            for _ in range(2):  # the faster of two reads, each from the same state of the cache
                if cache == "cold":
                    _drop_page_cache()
                with Timer() as timer:
                    values = read()
                timings.append(timer.seconds)
                assert np.array_equal(values, expected)
            seconds[f"{name}_{cache}"] = min(timings)
    seed_bytes = _bytes_on_disk((tmp / "p3-seed").rglob("*.npy"))
    store_bytes = _bytes_on_disk(path for path in (tmp / "p3.zarr" / store.MEAN).rglob("*") if path.is_file())
    # Judged on a cold page cache where this machine lets the benchmark empty it (a new session reading a split);
    # the warm figure (files just read) is reported beside it.
    cache = "cold" if "store_cold" in seconds else "warm"
    speedup = seconds[f"seed_{cache}"] / seconds[f"store_{cache}"]
    warm = seconds["seed_warm"] / seconds["store_warm"]
    checks = seconds[f"store_{cache}"] / seconds[f"unchecked_{cache}"]
    checks_warm = seconds["store_warm"] / seconds["unchecked_warm"]
    return Row("P3", f"reading every latent of a {count:,}-triplet split: store vs the seed's npy files", speedup,
               ">= 10x faster, no larger on disk", speedup >= 10 and store_bytes <= seed_bytes,
               f"{speedup:.1f}x {cache} ({seconds[f'store_{cache}']:.2f} s vs {seconds[f'seed_{cache}']:.2f} s), "
               f"{warm:.1f}x warm; {store_bytes / 2**20:.0f} MiB vs {seed_bytes / 2**20:.0f} MiB on disk; the "
               f"integrity checks (CRC32C per chunk, seal) cost {checks:.2f}x {cache}, {checks_warm:.2f}x warm",
               {"triplets": count, "seed_files": 3 * count, "seconds": seconds, "store_bytes": store_bytes,
                "integrity_cost": {cache: checks, "warm": checks_warm},
                "seed_bytes": seed_bytes, "judged_on": cache,
                "bytes": "allocated on disk (st_blocks), what the files take; one npy file holds 16 KiB of floats"})


def _drop_page_cache() -> bool:
    """Empty the kernel's page cache (root on Linux only), so that the next read comes from the disk."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def _bytes_on_disk(paths) -> int:
    return sum(path.stat().st_blocks * 512 for path in paths)
