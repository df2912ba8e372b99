"""What the benchmark rows share: the result record, timers, peak memory of a child process, and data builders."""

from __future__ import annotations

import json
import os
import re
import shutil
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


def report_peak() -> None:
    """What a benchmark child prints last: its peak resident memory (``child_peak_rss_mb`` reads it). VmHWM, not
    getrusage's ru_maxrss, which Linux keeps across exec: a child of a big parent would report the parent's size."""
    status = Path("/proc/self/status").read_text()
    print("PEAK_RSS_KB", re.search(r"VmHWM:\s+(\d+)", status).group(1), flush=True)


def child_peak_rss_mb(child: str, *arguments) -> tuple[float, str]:
    """Run the benchmark child ``bench/<child>`` with ``arguments`` in a fresh Python and return its peak resident
    memory in MiB (its own, measured by itself, ``report_peak``) and what it printed: every row that compares memory
    compares two such children."""
    command = [sys.executable, str(Path(__file__).parent / child), *map(str, arguments)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
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


def pick_device():
    from latent_interp import vae

    return vae.pick_device("auto")


def gpu_vae(tmp: Path) -> Path:
    """kl-f8's architecture (latent_interp/configs/kl-f8) with random weights: its speed is the real VAE's."""
    import torch

    from latent_interp import vae

    folder = tmp / "kl-f8-random"
    if not folder.exists():
        torch.manual_seed(0)
        autoencoder = vae.autoencoder_class()
        autoencoder.from_config(autoencoder.load_config(vae.KL_F8_CONFIG)).save_pretrained(folder)
    return folder


def batch_rate(step, batches, repeats: int = 1) -> float:
    """Batches per second of ``step`` over already prepared batches, after one warm-up batch."""
    import torch

    step(batches[0])
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    with Timer() as timer:
        for _ in range(repeats):
            for batch in batches:
                step(batch)
        torch.cuda.synchronize() if torch.cuda.is_available() else None
    return repeats * len(batches) / timer.seconds


def demo_workdir(tmp: Path, name: str, triplets: dict, edit=None) -> Path:
    """A workdir with the demo config, ``triplets`` per split, the shipped tiny VAEs, ``edit(config)`` applied."""
    import yaml

    workdir = tmp / name
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if triplets is not None:
        config["data"]["synthetic"]["triplets"] = triplets
    config["vaes"] = demo_vaes(config)
    if edit:
        edit(config)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def cleanup(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
