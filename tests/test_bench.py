"""The benchmarks (bench/): their code runs at tiny sizes (the figures are not checked here: no timed tests), and
P8's count of work done twice is 0 on the tiny workflow run and finds twins where there are some."""

import json
import shutil
import subprocess
import sys

import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import rows  # noqa: E402  (bench/rows.py)

QUICK_ROWS = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P10"]  # P8 and P9 run the demo: tested below on the tiny run


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
        assert row["value"] > 0 and isinstance(row["met"], bool) and row["figure"], row
    assert "| P5 | encode peak RSS" in result.stdout  # the table is printed


def test_work_done_twice_is_none_in_the_workflow_run(workflow_run):
    """The decoder-only fine-tune is never encoded: no latents, predictors, geometry or embedding of its own, and
    nothing else it makes equals what its base made; the two VAEs of the demo each encode once."""
    row = rows.p8_twice(workflow_run)
    assert row.value == 0 and row.met, row.details
    assert {path.split("/")[2] for path in row.details["latents_stores"]} == {"tiny-kl", "tiny-taesd"}


def test_work_done_twice_is_found_when_it_is_there(workflow_run, tmp_path):
    copy = tmp_path / "run"
    results = copy / "results"
    shutil.copytree(workflow_run / "results" / "latents", results / "latents")
    shutil.copytree(results / "latents" / "tiny-kl", results / "latents" / "tiny-kl-finetuned")  # encoded twice
    shutil.copytree(workflow_run / "results" / "metrics", results / "metrics")
    row = rows.p8_twice(copy)
    assert row.value == 3 and not row.met  # one store per split
    assert sorted(sorted(pair) for pair in row.details["equal_outputs"]) == [
        [f"results/latents/tiny-kl-finetuned/{split}.zarr", f"results/latents/tiny-kl/{split}.zarr"]
        for split in ("test", "train", "val")]



def test_the_gpu_row_runs_its_code_on_the_cpu(tmp_path):
    """P7 measures only on a GPU; here its code runs on the CPU with the tiny VAE at tiny sizes, its study through the
    real workflow (the figures mean nothing here)."""
    row = rows.p7_gpu(True, tmp_path, device=torch.device("cpu"), model_dir=rows.TINY_VAE)
    assert row.details["metric_max_difference_to_skimage"] <= 1e-5
    assert set(row.details["bare_encode_img_s_by_layout"]) == {"contiguous_format", "channels_last"}
    study = row.details["study"]
    assert {"encode", "reconstruct", "metrics", "interp", "embed", "report"} <= set(study["rule_seconds"])
    assert "finetune" not in study["rule_seconds"] and study["projected_wall_seconds"] > study["wall_seconds"]
    assert row.details["finetune"]["steps_timed"] >= 1
