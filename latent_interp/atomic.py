"""Outputs that exist are whole, and the fault hook that lets tests kill a job where it hurts.

Every rule writes its outputs under temporary names, hidden siblings of the outputs (``results/latents/m/val.zarr``
is written as ``results/latents/m/.val.partial.zarr``), and renames them into place once all are complete
(``staged``). A job killed at any point leaves no output, only a ``.partial`` that its rerun removes before it starts.
The rename of a folder or a file within one file system is atomic; Snakemake marks a job incomplete until it
ends, so a kill between two renames is rerun too (``--rerun-incomplete``, set in profiles/default).

Fault hook: ``LATENT_INTERP_FAULT=<stage>:<point>:<action>`` makes ``fault_point(stage, point)`` act there:
``kill`` sends SIGKILL to the job's own process; ``pause`` writes ``$LATENT_INTERP_FAULT_MARKER`` and sleeps until
the process is killed, so that a test can kill the whole Snakemake process group, start a second run meanwhile, or
let Slurm's time limit strike. A pause happens once: where the marker already exists the point passes, so the
rerun (or Slurm's retry) goes through. The points (docs/cluster.md "Interrupted runs"):

    encode:mid-store, reconstruct:mid-store   after the first chunk of the store is written (encode-shard1: shard 1)
    finetune:checkpoint                       after the checkpoint's temporary file is written, before its rename
    finetune:checkpointed                     after the first checkpoint is in place
    metrics:mid-table                         after half of the table's rows are written
    extract:mid-video                         after a video's first triplet is written
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

FAULT_VARIABLE = "LATENT_INTERP_FAULT"
FAULT_MARKER_VARIABLE = "LATENT_INTERP_FAULT_MARKER"
PARTIAL = ".partial"


def fault_point(stage: str, point: str) -> None:
    """Act on ``LATENT_INTERP_FAULT`` when it names this stage and point; nothing otherwise."""
    wanted = os.environ.get(FAULT_VARIABLE)
    if not wanted:
        return
    wanted_stage, wanted_point, action = wanted.split(":")
    if (wanted_stage, wanted_point) != (stage, point):
        return
    if action == "kill":
        print(f"fault hook: kill at {stage}:{point}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        marker = Path(os.environ[FAULT_MARKER_VARIABLE])
        if marker.exists():
            return
        print(f"fault hook: pause at {stage}:{point}", flush=True)
        marker.write_text(f"{stage}:{point} {os.getpid()}\n")
        while True:
            time.sleep(5)
    else:
        raise ValueError(f"{FAULT_VARIABLE}={wanted!r}: the action must be kill or pause")


def partial_path(path: str | Path) -> Path:
    """Where ``path`` is written before it is complete: a hidden sibling on the same file system, with the same
    extension (matplotlib and others choose the format by it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}{PARTIAL}{path.suffix}")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class StagedOutputs(list):
    """The temporary paths of a rule's outputs, in its order and by its names (``staged.table``)."""

    def __init__(self, paths: list[str], names: dict[str, int]):
        super().__init__(paths)
        self._names = names

    def __getattr__(self, name: str) -> str:
        try:
            return self[self._names[name]]
        except KeyError:
            raise AttributeError(f"the rule has no output named {name!r}") from None

    def items(self):
        return [(name, self[index]) for name, index in self._names.items()]


def worker_pool(workers: int):
    """A pool of ``workers`` forked processes, started now, that die with this process.

    Forked, not spawned: a spawned worker would run the Snakemake script again as its main module. Started now: the
    caller does this before opening a store, so no zarr I/O thread is copied into them half-way. Dying with this
    process: a job killed at a fault point, by Slurm or by hand must not leave workers behind, which would hold
    its log and pipes open and hang whoever waits for the job."""
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                                  initializer=_die_with_parent, initargs=(os.getpid(),))
    pool.submit(int).result()  # with fork, the first task starts every worker at once
    return pool


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        pr_set_pdeathsig = 1  # <sys/prctl.h>
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still ends the workers
        return
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


@contextmanager
def staged(outputs):
    """Temporary paths for ``outputs`` (``snakemake.output`` or a list of paths); on success each is renamed into
    place. Stale temporaries of an earlier, killed attempt are removed first; on an exception the new ones are."""
    finals = [Path(p) for p in outputs]
    names = {name: finals.index(Path(value)) for name, value in outputs.items()} if hasattr(outputs, "items") else {}
    temporaries = [partial_path(p) for p in finals]
    for temporary in temporaries:
        remove(temporary)
        temporary.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield StagedOutputs([str(t) for t in temporaries], names)
    except BaseException:
        for temporary in temporaries:
            remove(temporary)
        raise
    for temporary, final in zip(temporaries, finals):
        if not temporary.exists():
            raise FileNotFoundError(f"{final}: the stage wrote nothing to {temporary}")
    for temporary, final in zip(temporaries, finals):
        remove(final)
        os.replace(temporary, final)


@contextmanager
def staged_tree(folder: str | Path):
    """A temporary folder whose files are moved into ``folder`` once complete: for rules whose outputs are many
    files under one folder (the demo's frames)."""
    folder = Path(folder)
    temporary = partial_path(folder)
    remove(temporary)
    temporary.mkdir(parents=True)
    try:
        yield temporary
    except BaseException:
        remove(temporary)
        raise
    for source in sorted(p for p in temporary.rglob("*") if p.is_file()):
        target = folder / source.relative_to(temporary)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    remove(temporary)


def write_csv(table: pd.DataFrame, path: str | Path, stage: str, **options) -> None:
    """``table.to_csv(path, index=False)`` in two halves, with the ``<stage>:mid-table`` fault point between them:
    the same bytes as one call."""
    half = len(table) // 2
    with open(path, "w", newline="") as handle:
        table.iloc[:half].to_csv(handle, index=False, **options)
        handle.flush()
        fault_point(stage, "mid-table")
        table.iloc[half:].to_csv(handle, index=False, header=False, **options)
