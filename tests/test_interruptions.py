"""Nothing half-written: SIGKILL a job, or the whole Snakemake process group, at the named points of
latent_interp.atomic; the documented recovery (--unlock, then the same command: profiles/default sets
--rerun-incomplete) reruns only what was interrupted and gives the bytes of an uninterrupted run. A second run on a
directory in use is refused and changes nothing."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from latent_interp.atomic import FAULT_MARKER_VARIABLE, FAULT_VARIABLE
from conftest import file_digests, job_counts, new_workdir, snakemake, snakemake_command, tiny_config

pytestmark = pytest.mark.workflow

VAL_METRICS = "results/metrics/tiny-kl/val.csv"


def _kill_job_at(workdir: Path, target: str, point: str) -> None:
    """The job SIGKILLs itself at ``point``; Snakemake reports the failure and stops."""
    result = snakemake(workdir, target, check=False, env={FAULT_VARIABLE: f"{point}:kill"})
    assert result.returncode != 0 and f"fault hook: kill at {point}" in _logs(workdir)


def _paused_at(workdir: Path, target: str, point: str) -> subprocess.Popen:
    """Snakemake in a session of its own, its job paused at ``point``."""
    marker = workdir / "paused"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONHASHSEED": "0", FAULT_VARIABLE: f"{point}:pause", FAULT_MARKER_VARIABLE: str(marker)}
    process = subprocess.Popen(snakemake_command(workdir, target), cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), f"the run never reached {point}"
    return process


def _kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _logs(workdir: Path) -> str:
    return "".join(p.read_text() for p in (workdir / "results" / "logs").rglob("*.log"))


def _plan(workdir: Path, target: str) -> dict:
    return job_counts(snakemake(workdir, "-n", target).stdout)


def _partials(workdir: Path) -> list[str]:
    return sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*.partial*"))


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.mark.readme("snakemake --unlock", "snakemake --cores 8")
def test_kills_mid_store_and_mid_table_recover_to_the_uninterrupted_bytes(workflow_run, tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "killed", tiny_config())
    latents = workdir / "results" / "latents" / "tiny-kl"
    chain = {"encode": 1, "reconstruct": 1, "metrics": 1}

    # 1. The encode job dies after its first chunk: no store, a partial one, and the planned rerun is that chain.
    _kill_job_at(workdir, VAL_METRICS, "encode:mid-store")
    assert not (latents / "val.zarr").exists() and (latents / ".val.partial.zarr").is_dir()
    assert _plan(workdir, VAL_METRICS) == chain

    # 2. Again, now killing the whole Snakemake process group. Meanwhile a second run is refused, changing nothing.
    process = _paused_at(workdir, VAL_METRICS, "encode:mid-store")
    try:
        before = _snapshot(workdir / "results")
        second = snakemake(workdir, VAL_METRICS, check=False)
        assert second.returncode != 0 and "cannot be locked" in second.stdout + second.stderr
        assert _snapshot(workdir / "results") == before
    finally:
        _kill_group(process)
    locked = snakemake(workdir, VAL_METRICS, check=False)  # the killed run's lock stays until --unlock
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    snakemake(workdir, "--unlock")
    assert _plan(workdir, VAL_METRICS) == chain

    # 3. The metrics job dies with half of its table written: only that job reruns.
    _kill_job_at(workdir, VAL_METRICS, "metrics:mid-table")
    partial_table = workdir / "results" / "metrics" / "tiny-kl" / ".val.partial.csv"
    assert not (workdir / VAL_METRICS).exists() and 1 < len(partial_table.read_text().splitlines()) < 7
    assert _plan(workdir, VAL_METRICS) == {"metrics": 1}

    # 4. The same with the process group killed: the job is incomplete, and reruns.
    _kill_group(_paused_at(workdir, VAL_METRICS, "metrics:mid-table"))
    snakemake(workdir, "--unlock")
    assert _plan(workdir, VAL_METRICS) == {"metrics": 1}

    # 5. Recovery: the bytes of the uninterrupted run, and no partial file anywhere.
    snakemake(workdir, VAL_METRICS)
    for path in ("results/frames/val.zarr", "results/latents/tiny-kl/val.zarr", "results/recon/tiny-kl/val.zarr",
                 VAL_METRICS, "results/metrics/tiny-kl/val.spec.json"):
        assert file_digests(workdir, path) == file_digests(workflow_run, path), path
    assert _partials(workdir) == [] and _plan(workdir, VAL_METRICS) == {}


def test_a_killed_fine_tune_starts_over_or_resumes_and_ends_with_the_uninterrupted_model(workflow_run,
                                                                                        tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "killed-finetune", tiny_config())
    model, checkpoints = "results/models/tiny-kl-finetuned", workdir / "results" / "checkpoints"

    _kill_job_at(workdir, model, "finetune:checkpoint")
    # the first checkpoint was written but never renamed: no checkpoint to resume, and no model
    assert [p.name for p in checkpoints.iterdir()] == [".tiny-kl-finetuned.partial.pt"]
    assert not (workdir / model).exists() and _plan(workdir, model) == {"finetune": 1}

    # Now Snakemake's whole process group dies once the first checkpoint is in place: the rerun resumes from it.
    _kill_group(_paused_at(workdir, model, "finetune:checkpointed"))
    assert not (workdir / model).exists() and [p.name for p in checkpoints.iterdir()] == ["tiny-kl-finetuned.pt"]
    snakemake(workdir, "--unlock")
    assert _plan(workdir, model) == {"finetune": 1}

    snakemake(workdir, model)
    record = json.loads((workdir / model / "finetune.json").read_text())
    assert len(record["resumed_at_steps"]) == 1 and record["resumed_at_steps"][0] > 0
    assert "resumed from" in (workdir / "results" / "logs" / "finetune" / "tiny-kl-finetuned.log").read_text()
    # resumed or not, the same weights: the data order and the RNG states come back with the checkpoint
    for name in ("diffusion_pytorch_model.safetensors", "config.json"):
        assert (workdir / model / name).read_bytes() == (workflow_run / model / name).read_bytes(), name
    assert [p.name for p in checkpoints.iterdir()] == ["tiny-kl-finetuned.pt"] and _partials(workdir) == []
