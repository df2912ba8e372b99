"""A real Slurm, run in the background of the test session: the single-node cluster of tools/slurm_test_cluster.sh
(two stand-in GPUs) runs the tiny config through profiles/slurm plus the overlay tests/profiles/slurm-test, while
the other tests run (the cluster run mostly waits on Slurm, so it costs the session little time). test_slurm.py
checks what it did.

It starts with the shared tiny run when the session holds a test of test_slurm.py (conftest.py's ``slurm_run``), and
records, instead of raising, a cluster that does not start: the test then skips, or fails under
LATENT_INTERP_REQUIRE_SLURM=1 (CI).
"""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import yaml

from latent_interp.atomic import FAULT_MARKER_VARIABLE, FAULT_VARIABLE

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tools" / "slurm_test_cluster.sh"


class QueueWatch(threading.Thread):
    """Polls Slurm's job list: which rules were submitted, and how many GPU jobs were queued or running at once."""

    def __init__(self, before: set[str], process: subprocess.Popen):
        super().__init__(daemon=True)
        self.before, self.process, self.done = before, process, threading.Event()
        self.rules: dict[str, str] = {}  # Slurm job id -> rule
        self.states: dict[str, str] = {}  # Slurm job id -> the last state seen
        self.peak_queued_gpu = self.peak_running_gpu = 0

    def run(self):
        while not self.done.is_set():
            if self.process.poll() is not None:
                self.done.set()  # one last look below, then stop
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


class SlurmRun:
    """Starts the cluster and the workflow run on it; ``finish()`` waits for the run and stops the cluster."""

    def __init__(self, workdir: Path, config: dict, command: list[str]):
        self.workdir, self.error, self.process, self.watch = workdir, None, None, None
        started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True)
        if started.returncode != 0:
            self.error = f"the Slurm test cluster did not start:\n{started.stdout}\n{started.stderr}"
            return
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        # The fine-tune's first attempt waits after its first checkpoint until Slurm kills it at its one-minute
        # limit (the overlay's set-resources); the retry resumes from that checkpoint.
        fault = {FAULT_VARIABLE: "finetune:checkpointed:pause", FAULT_MARKER_VARIABLE: str(workdir / "paused")}
        before = {job["JobId"] for job in _slurm_jobs()}
        self.started = time.time()
        self.log = open(workdir / "snakemake.log", "w")
        self.process = subprocess.Popen(command, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONHASHSEED": "0", **fault})
        self.watch = QueueWatch(before, self.process)
        self.watch.start()

    def finish(self, timeout: float = 1200) -> tuple[int, str, float]:
        """(return code, Snakemake's output, seconds) once the run is over."""
        try:
            returncode = self.process.wait(timeout=max(1.0, self.started + timeout - time.time()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            returncode = self.process.wait()
        seconds = time.time() - self.started
        self.watch.join()
        self.log.close()
        return returncode, (self.workdir / "snakemake.log").read_text(), seconds

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.error is None:
            subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True)
