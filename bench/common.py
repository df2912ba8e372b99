"""What the benchmark rows share: the result record, timers, peak memory of a child process, and data builders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TINY_VAE = REPO / "models" / "tiny-vae"


def demo_vaes(config: dict) -> dict:
    """The demo config's vaes with their paths made absolute, for a workdir outside the repository."""
    from latent_interp import runconfig

    return {name: {**entry, "source": str(REPO / entry["source"])}
            for name, entry in runconfig.resolve(config).vaes.items()}


@dataclass
class Row:
    """One row of the table: the figure measured, its target, and whether it is met (None: not measured here)."""

    id: str
    measures: str
    value: float | None
    target: str
    met: bool | None
    figure: str
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def cores() -> int:
    """The CPUs this process may run on (Slurm's and taskset's limits included)."""
    return len(os.sched_getaffinity(0))


class Timer:
    """Wall time of a block, in seconds (``.seconds``)."""

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started


def child_peak_rss_mb(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh Python and return its peak resident memory in MiB (its own, measured by itself)
    and what it printed: every row that compares memory compares two such children. The peak is VmHWM, not
    getrusage's ru_maxrss, which Linux keeps across exec: a child of a big parent would report the parent's size."""
    wrapped = code + ("\nimport re\nstatus = open('/proc/self/status').read()\n"
                      "print('PEAK_RSS_KB', re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n")
    result = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    peak = next(line for line in result.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    return int(peak.split()[1]) / 1024, result.stdout


def cartoon_triplets(count: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 [count, 3, size, size, 3] of the demo's drawn triplets (32 distinct ones, repeated: drawing costs more
    than any stage measured here)."""
    from latent_interp import synthetic

    specs = synthetic.triplet_specs(seed, "bench", min(count, 32))
    drawn = np.stack([np.stack(synthetic.render_triplet(spec, size, size)) for spec in specs])
    return drawn[np.arange(count) % len(drawn)]


def frames_store(path: Path, triplets: np.ndarray, split: str = "bench") -> Path:
    """A frames store (latent_interp.store's schema) holding ``triplets``, written chunk by chunk."""
    from latent_interp import store

    names = [f"bench_{index:06d}" for index in range(len(triplets))]
    origins = ["Disney" if index % 2 else "Japan" for index in range(len(triplets))]
    group = store.create(path, "frames", split, {"preprocess": {"size": int(triplets.shape[2]), "resample": "none",
                                                                "source": "bench"}}, names, origins)
    frames = store.add_array(group, store.FRAMES, triplets.shape[1:], np.uint8)
    for start, stop in store.chunk_ranges(frames):
        frames[start:stop] = triplets[start:stop]
    store.seal(group)
    return path


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
