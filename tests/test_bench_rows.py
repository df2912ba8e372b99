"""The benchmarks (bench/): their code runs at tiny sizes (the figures are not checked here: no timed tests); the rows
that read the shared tiny run are in tests/test_bench.py."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO

import rows  # bench/rows/: pyproject.toml puts bench/ on the tests' path, as running bench/run.py does

# every row (bench/run.py's ORDER)
QUICK_ROWS = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12", "P13", "P14", "P15"]


# The full sizes take about 25 minutes (docs/performance.md's figures); --quick runs the same code at tiny sizes.
@pytest.mark.readme("python bench/run.py", "python bench/run.py --rows P1 P4", "python bench/run.py --quick",
                    "python bench/run.py --rows P12", "python bench/run.py --rows P13",
                    "python bench/run.py --rows P7", "python bench/run.py --rows P14",
                    "python bench/run.py --rows P15", "python bench/run.py --rows P9")
@pytest.mark.workflow  # P4, P8 and P9 run Snakemake
def test_every_row_measures_something_at_tiny_sizes(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--rows", *QUICK_ROWS,
                             "--json", str(out)], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    payload = json.loads(out.read_text())
    measured = {row["id"]: row for row in payload["rows"]}
    assert list(measured) == QUICK_ROWS and payload["quick"] and payload["machine"]["cpu_cores"] >= 1
    for row_id, row in measured.items():
        if row_id == "P7" and not torch.cuda.is_available():
            assert row["met"] is None and "no GPU" in row["figure"]
            continue
        if row_id == "P14":  # the study, small on the CPU: no verdict, but every stage timed
            study = row["details"]
            assert row["met"] is None and study["finished"] and row["value"] > 0
            assert {"encode", "reconstruct", "metrics", "interp", "embed", "report"} <= set(study["rule_seconds"])
            assert "finetune" not in study["rule_seconds"] and study["startup_seconds"] > 0
            assert set(study["gpu_stage_breakdown"]) >= {"encode train", "reconstruct test"}
            encode_train = study["gpu_stage_breakdown"]["encode train"]  # one read here: all of it the first batch
            assert encode_train["first batch"] + encode_train["model"] > 0
            continue
        assert (row["value"] > 0 or row_id == "P8") and isinstance(row["met"], bool) and row["figure"], row  # P8: 0
    assert "| P5 | encode peak RSS" in result.stdout  # the table is printed
    # P9 ran a (smallest) demo clean and P8 counted what it computed twice: nothing, with its decoder-only fine-tune
    assert measured["P9"]["details"]["job_seconds_by_rule"]["finetune"] > 0 and measured["P8"]["value"] == 0


def test_the_gpu_row_runs_its_code_on_the_cpu(tmp_path):
    """P7 measures only on a GPU; here its code runs on the CPU with the tiny VAE at tiny sizes, eager in both
    layouts (the figures mean nothing here; the compiled path has its own test, tests/test_compile_and_guard.py)."""
    row = rows.p7_gpu(True, tmp_path, device=torch.device("cpu"), model_dir=rows.TINY_VAE)
    assert row.details["metric_max_difference_to_skimage"] <= 1e-5
    assert set(row.details["stage_rates_by_variant"]) == {"eager", "eager channels_last"}
    assert row.details["chosen"] == "eager channels_last" and row.details["batch_auto"]["batch_size"] == 16
    assert row.details["finetune"]["steps_timed"] >= 1


@pytest.mark.readme("python bench/ingest.py")
def test_the_ingest_benchmark_prints_both_formats():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "ingest.py"), "--triplets", "2", "--size", "32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rates = [line for line in result.stdout.splitlines() if "frames/s" in line]
    assert [line.split(":")[0] for line in rates] == ["960x540 png", "1280x720 jpg"]
    assert all("; ratio " in line for line in rates)


@pytest.mark.readme("python bench/run.py --markdown")
def test_the_performance_page_holds_the_table_of_the_recorded_results():
    """docs/performance.md's table is bench/run.py's rendering of bench/results.json and results-gpu.json, with each
    row's "what made it": running the command changes nothing on a page that is current."""
    page = REPO / "docs" / "performance.md"
    before = page.read_text()
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--markdown"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert page.read_text() == before, "docs/performance.md was stale: python bench/run.py --markdown rewrote it"
    recorded = json.loads((REPO / "bench" / "results.json").read_text())["rows"]
    assert all(f"| {row['id']} | {row['measures']} |" in before for row in recorded)
    assert set(rows.WHAT_MADE_IT) == set(rows.ORDER)
