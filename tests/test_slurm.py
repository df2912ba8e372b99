"""The workflow on a real Slurm: the single-node cluster of tools/slurm_test_cluster.sh (two stand-in GPUs), through
profiles/slurm plus the overlay tests/profiles/slurm-test. Every rule but the local ones runs as a Slurm job, GPU
jobs run side by side (the local one-GPU limit does not cap the cluster), the fine-tune survives Slurm's time limit
(its retry resumes from its checkpoint), and the results equal a local run's.

Skipped only where the cluster cannot start (not root, no Slurm packages) and LATENT_INTERP_REQUIRE_SLURM is unset;
CI sets it, so there a cluster that does not start fails the test.
"""

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from latent_interp.atomic import FAULT_MARKER_VARIABLE, FAULT_VARIABLE
from conftest import REPO, job_counts, new_workdir, snakemake_command, tiny_config

CLUSTER = REPO / "tools" / "slurm_test_cluster.sh"
LOCAL_RULES = {"all", "metrics_summary", "interp_summary"}  # the Snakefile's localrules


@pytest.fixture(scope="module")
def cluster():
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        message = f"the Slurm test cluster did not start:\n{started.stdout}\n{started.stderr}"
        if os.environ.get("LATENT_INTERP_REQUIRE_SLURM"):
            pytest.fail(message)
        pytest.skip(message)
    yield
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True)


class QueueWatch(threading.Thread):
    """Polls Slurm's job list: which rules were submitted, and how many GPU jobs were queued or running at once."""

    def __init__(self, before: set[str]):
        super().__init__(daemon=True)
        self.before, self.done = before, threading.Event()
        self.rules: dict[str, str] = {}  # Slurm job id -> rule
        self.states: dict[str, str] = {}  # Slurm job id -> the last state seen
        self.peak_queued_gpu = self.peak_running_gpu = 0

    def run(self):
        while not self.done.is_set():
            queued = running = 0
            for job in _slurm_jobs():
                if job["JobId"] in self.before:
                    continue
                self.rules[job["JobId"]] = re.sub(r"^rule_(\w+?)_wildcards.*$|^rule_(\w+)$", r"\1\2", job["Comment"])
                self.states[job["JobId"]] = job["JobState"]
                if "gpu" in job.get("TresPerJob", "") and job["JobState"] in ("PENDING", "RUNNING"):
                    queued += 1
                    running += job["JobState"] == "RUNNING"
            self.peak_queued_gpu = max(self.peak_queued_gpu, queued)
            self.peak_running_gpu = max(self.peak_running_gpu, running)
            time.sleep(0.5)


def _slurm_jobs() -> list[dict]:
    listing = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True).stdout
    return [dict(field.split("=", 1) for field in line.split() if "=" in field)
            for line in listing.splitlines() if line.startswith("JobId=")]


def _digests(root: Path) -> dict[str, str]:
    files = [p for sub in ("frames", "latents", "recon", "metrics", "interp", "predictors", "geometry", "embeddings")
             for p in (root / sub).rglob("*") if p.is_file() and not p.name.endswith(".png")]
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_the_workflow_runs_on_slurm_with_gpu_jobs_side_by_side_and_matches_a_local_run(cluster, workflow_run,
                                                                                         tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "slurm", tiny_config())
    command = snakemake_command(workdir, "results/report.html", "--profile", str(REPO / "profiles" / "slurm"),
                                "--profile", str(REPO / "tests" / "profiles" / "slurm-test"))
    watch = QueueWatch({job["JobId"] for job in _slurm_jobs()})
    watch.start()
    started = time.time()
    # The fine-tune's first attempt waits after its first checkpoint until Slurm kills it at its one-minute limit.
    fault = {FAULT_VARIABLE: "finetune:checkpointed:pause", FAULT_MARKER_VARIABLE: str(workdir / "paused")}
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "0", **fault})
    seconds = time.time() - started
    watch.done.set()
    watch.join()
    output = result.stdout + result.stderr
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    (REPO / "test-artifacts" / "slurm-run.log").write_text(output)
    assert result.returncode == 0, output[-6000:]

    # Every job of a non-local rule went to Slurm (the fine-tune twice), and Slurm saw each of those rules.
    planned = job_counts(output)  # the first "Job stats" is the main process's; the output also holds job logs
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", output)
    local = sum(count for rule, count in planned.items() if rule in LOCAL_RULES)
    assert len(submitted) == len({job for job, _ in submitted}) == sum(planned.values()) - local + 1
    expected = set(planned) - LOCAL_RULES
    assert {rule for _, rule in submitted} == set(watch.rules.values()) == expected and "finetune" in expected
    # More than one GPU job at once: profiles/default's gpu=1 is scoped to each job, not to the cluster run.
    assert watch.peak_queued_gpu > 1 and watch.peak_running_gpu == 2
    # The fine-tune hit its time limit once; the retry resumed from the checkpoint the first attempt left.
    finetune_jobs = sorted((job for job, rule in watch.rules.items() if rule == "finetune"), key=int)
    assert [watch.states[job] for job in finetune_jobs] == ["TIMEOUT", "COMPLETED"]
    record = json.loads((workdir / "results" / "models" / "finetuned" / "finetune.json").read_text())
    assert len(record["resumed_at_steps"]) == 1 and record["resumed_at_steps"][0] > 0
    assert "resumed from" in (workdir / "results" / "logs" / "finetune.log").read_text()
    # The same stores, tables and embeddings as the local run of the same config, the resumed fine-tune included.
    assert _digests(workdir / "results") == _digests(workflow_run / "results")
    summary = (f"slurm run: {len(submitted)} Slurm jobs (the fine-tune twice) + 2 local, peak GPU jobs "
               f"queued {watch.peak_queued_gpu} / running {watch.peak_running_gpu}, fine-tune resumed at step "
               f"{record['resumed_at_steps'][0]}, {seconds:.0f} s\n")
    (REPO / "test-artifacts" / "slurm-summary.txt").write_text(summary)
    print(summary)
