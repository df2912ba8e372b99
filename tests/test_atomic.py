"""Outputs appear whole or not at all, and the fault hook kills or pauses a job at a named point."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from latent_interp import atomic


def test_outputs_appear_only_when_the_stage_succeeds(tmp_path):
    table, store_dir = tmp_path / "t.csv", tmp_path / "s.zarr"
    outputs = [str(table), str(store_dir)]
    with atomic.staged(outputs) as staged:
        assert staged[0] == str(tmp_path / ".t.partial.csv")
        open(staged[0], "w").write("a\n1\n")
        os.mkdir(staged[1])
        assert not table.exists() and not store_dir.exists()
    assert table.read_text() == "a\n1\n" and store_dir.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr", "t.csv"]


def test_a_failing_stage_leaves_neither_output_nor_partial(tmp_path):
    with pytest.raises(RuntimeError), atomic.staged([str(tmp_path / "t.csv")]) as staged:
        open(staged[0], "w").write("half")
        raise RuntimeError("the stage broke")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_attempts_partial_is_removed_and_names_are_kept(tmp_path):
    stale = tmp_path / ".t.partial.csv"
    stale.write_text("from a killed job")

    class Output(list):  # what snakemake.output offers: order and names
        def items(self):
            return [("table", self[0])]

    with atomic.staged(Output([str(tmp_path / "t.csv")])) as staged:
        assert not stale.exists()
        open(staged.table, "w").write("whole")
        assert staged.items() == [("table", str(stale))]
    assert (tmp_path / "t.csv").read_text() == "whole"
    with pytest.raises(FileNotFoundError, match="the stage wrote nothing"), atomic.staged([str(tmp_path / "u")]):
        pass


def test_a_table_written_in_halves_has_the_bytes_of_one_write(tmp_path):
    table = pd.DataFrame({"name": list("abcde"), "value": [0.1, 2.0, 1 / 3, float("nan"), 5.0]})
    atomic.write_csv(table, tmp_path / "halves.csv", "metrics", float_format="%.8g")
    table.to_csv(tmp_path / "once.csv", index=False, float_format="%.8g")
    assert (tmp_path / "halves.csv").read_bytes() == (tmp_path / "once.csv").read_bytes()
    atomic.write_csv(table.iloc[:0], tmp_path / "empty.csv", "metrics")
    assert (tmp_path / "empty.csv").read_text() == "name,value\n"


def _run_point(env, tmp_path):
    code = "from latent_interp import atomic; atomic.fault_point('encode', 'mid-store'); print('went on')"
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)


def test_the_fault_hook_kills_only_at_its_point(tmp_path):
    assert _run_point({atomic.FAULT_VARIABLE: "encode:mid-store:kill"}, tmp_path).wait() == -signal.SIGKILL
    other = _run_point({atomic.FAULT_VARIABLE: "metrics:mid-table:kill"}, tmp_path)
    assert other.wait() == 0 and other.stdout.read().strip() == "went on"


def test_the_fault_hook_pauses_and_says_where(tmp_path):
    marker = tmp_path / "paused"
    process = _run_point({atomic.FAULT_VARIABLE: "encode:mid-store:pause",
                          atomic.FAULT_MARKER_VARIABLE: str(marker)}, tmp_path)
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert marker.read_text().startswith("encode:mid-store") and process.poll() is None
    finally:
        process.kill()
        process.wait()


def test_a_pause_happens_once_per_marker(tmp_path):
    marker = tmp_path / "paused"
    marker.write_text("an earlier attempt paused here\n")
    process = _run_point({atomic.FAULT_VARIABLE: "encode:mid-store:pause",
                          atomic.FAULT_MARKER_VARIABLE: str(marker)}, tmp_path)
    assert process.wait(timeout=60) == 0 and process.stdout.read().strip() == "went on"


def test_staged_tree_moves_every_file_into_the_folder(tmp_path):
    with atomic.staged_tree(tmp_path / "split") as partial:
        (partial / "a").mkdir()
        (partial / "a" / "frame1.jpg").write_bytes(b"x")
        assert not (tmp_path / "split").exists()
    assert (tmp_path / "split" / "a" / "frame1.jpg").read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split"]



def test_pool_workers_die_with_a_killed_job():
    """A job SIGKILLed mid-stage (a fault point, Slurm, a user) leaves no pool worker behind to hold its pipes."""
    code = ("from latent_interp import atomic; import os, time\n"
            "pool = atomic.worker_pool(2)\n"
            "print(*[p.pid for p in pool._processes.values()], flush=True)\n"
            "time.sleep(60)\n")
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in job.stdout.readline().split()]
    assert len(workers) == 2
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_running, workers))


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
