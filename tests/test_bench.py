"""The benchmarks that read the shared tiny run: P8's count of work done twice is 0 on it and finds twins where there
are some, and bench/report_scale.py measures its report (the other rows: tests/test_bench_rows.py)."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, job_counts, snakemake

import rows  # bench/rows/: pyproject.toml puts bench/ on the tests' path, as running bench/run.py does


def test_work_done_twice_is_none_in_the_workflow_run(workflow_run):
    """The decoder-only fine-tune is never encoded: no latents, predictors, geometry or embedding of its own, and
    nothing else it makes equals what its base made; the two VAEs of the demo and the equivariant fine-tune (an
    encoder of its own) each encode once."""
    row = rows.p8_twice(workflow_run)
    # On 8 triplets two latent spaces may cut the frames into the same k-means clusters: equal partitions reached from
    # different latents, not work done twice (the demo's 64 triplets have none: bench P8, 0 of 109)
    partitions = [pair for pair in row.details["equal_outputs"] if all(p.endswith("/clusters.csv") for p in pair)]
    assert row.value == len(partitions), row.details
    assert {path.split("/")[2] for path in row.details["latents_stores"]} == {"tiny-kl", "tiny-taesd",
                                                                               "tiny-kl-equivariant"}


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



@pytest.mark.readme("python bench/report_scale.py", "python bench/report_scale.py --report results/report.html")
@pytest.mark.browser
def test_the_report_scale_benchmark_measures_a_report_and_plans_its_study(workflow_run, tmp_path):
    """The benchmark's two halves: measuring a built report (here the tiny demo's, in Chromium), and the study it
    builds at ATD-12K scale, planned by Snakemake as a dry run (running it takes an hour)."""
    from latent_interp import browser
    import report_scale  # bench/report_scale.py

    # A tenth of the triplets: the same DAG without the shards, planned in seconds rather than minutes (bench P4)
    config = report_scale.scale_config([900, 100, 200], 64)
    workdir = tmp_path / "scale"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    planned = job_counts(snakemake(workdir, "-n", "results/report.html").stdout)
    # both shipped VAEs, the equivariant and the anti-aliased fine-tunes (encoders of their own), every split
    assert planned["report"] == 1 and planned["encode"] == 4 * 3
    if not browser.available():  # as the browser tests: CI requires the browser, elsewhere its half is skipped
        if os.environ.get("LATENT_INTERP_REQUIRE_BROWSER"):
            pytest.fail("LATENT_INTERP_REQUIRE_BROWSER is set but chromium or chromedriver is not installed")
        pytest.skip("chromium and chromedriver are not installed")
    result = subprocess.run([sys.executable, str(REPO / "bench" / "report_scale.py"), "--report",
                             str(workflow_run / "results" / "report.html"), "--loads", "1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "x the 60 MB target" in result.stdout and "x the 10 s target" in result.stdout
