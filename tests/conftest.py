"""Shared fixtures: tiny models built from a config and tiny data drawn by the package's own generator."""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latent_interp import browser
from latent_interp import data, synthetic, vae
from latent_interp.settings import Preprocess

REPO = Path(__file__).resolve().parents[1]
# Narrower than the shipped tiny VAE, same geometry (8x, 4 latent channels): fast enough for unit tests.
MICRO_VAE = dict(block_out_channels=(8, 16, 16, 16), norm_num_groups=4, sample_size=32)


@pytest.fixture(scope="session")
def micro_vae_dir(tmp_path_factory) -> Path:
    """A randomly initialised kl-f8-shaped AutoencoderKL saved as a diffusers folder."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("micro-vae")
    vae.build_vae(**MICRO_VAE).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def frame_tree(tmp_path_factory) -> Path:
    """An ATD-12K-shaped tree ``<root>/<split>/<triplet>/frame{1,2,3}.jpg`` of synthetic triplets."""
    root = tmp_path_factory.mktemp("frames")
    for split, count in (("train", 4), ("val", 3)):
        synthetic.write_split(root / split, seed=7, split=split, count=count, width=64, height=36)
    return root


def random_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def ingest_folder(folder: Path, out: Path, split: str, size: int, resample: str = "bilinear", fit: str = "squash",
                  **options) -> dict:
    """Ingest every triplet folder under ``folder`` (the ``folders`` layout), skipped list next to the store."""
    return data.ingest_split(source=data.SplitSource(Path(folder)), frames=out,
                             skipped=Path(out).with_suffix(".skipped.csv"), split=split,
                             preprocess=Preprocess(size, resample, fit), **options)


def file_digests(root: Path, *parts: str) -> dict[str, str]:
    """sha256 of every file under ``root`` (or under its ``parts``, folders or files), keyed by the path relative to
    ``root``: what "the same bytes" means for stores, tables and folders. Snakemake's timestamps and PNG plots (whose
    metadata may differ) are left out."""
    files = [p for part in (parts or (".",)) for p in ([root / part] if (root / part).is_file() else
                                                       sorted((root / part).rglob("*")))
             if p.is_file() and p.name != ".snakemake_timestamp" and p.suffix != ".png"]
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Jobs a Snakemake dry run would run, from its 'Job stats' table ({} when there is nothing to do)."""
    if "Nothing to be done" in dry_run_output:
        return {}
    table = dry_run_output.split("Job stats:")[1].split("total")[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


# The workflow on a tiny copy of the demo config: the integration tests (test_workflow.py) and the browser tests
# (test_report_browser.py) share one run. Its models are the demo's: the two shipped VAEs of different families side
# by side, and the two fine-tunes of the first (decoder only, and equivariant: a latent space of its own).
TRIPLETS = {"train": 4, "val": 2, "test": 2}
SIZE = 32
BASE, SECOND = "tiny-kl", "tiny-taesd"   # AutoencoderKL (fine-tuned too) and AutoencoderTiny
FINETUNED = f"{BASE}-finetuned"   # recipe default: decoder only, tiny-kl's latents
EQUIVARIANT = f"{BASE}-equivariant"   # recipe equivariant: encoder and decoder
ANTIALIAS = f"{BASE}-antialias"   # recipe antialias: filtered encoder (not in the tiny runs: see tiny_config)
SHIPPED = {BASE: REPO / "models" / "tiny-vae", SECOND: REPO / "models" / "tiny-taesd"}


def tiny_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data"]["synthetic"].update(triplets=dict(TRIPLETS), raw_size=[64, 36])
    config["preprocess"]["size"] = SIZE
    assert set(config["vaes"]) == set(SHIPPED), "the demo's VAEs changed: update conftest.SHIPPED"
    config["vaes"] = {name: str(path) for name, path in SHIPPED.items()}
    # A third fine-tune adds some 20 jobs to every run of this config for nothing the equivariant one does not
    # exercise (a latent space of its own, trained encoder): the entry as written trains in test_antialias.py, and
    # the recipe's chain runs end to end in test_atd12k.py's real study
    assert config["finetunes"].pop(ANTIALIAS)["recipe"] == "antialias", "the demo's fine-tunes changed"
    config["vae"]["device"] = "cpu"
    config["metrics"]["bootstrap_resamples"] = 50
    config["compare"]["bootstrap_resamples"] = 50
    config["report"]["grid_triplets_per_origin"] = 1
    config["geometry"]["equivariance_frames"] = 4
    return config


# The suite's tiers (pyproject.toml's markers): tests that run Snakemake are marked workflow, those that need the Slurm
# test cluster slurm, those that drive Chromium browser. `python -m pytest -m "not workflow and not slurm and not
# browser"` is the fast tier. Each helper that starts one of these checks that the test calling it carries its
# marker, so a test cannot land in the fast tier by forgetting it.
_current_test: list = []


# The workers share the cores (pyproject.toml's -n auto), and torch's default of a thread a core in each would
# oversubscribe them: its OpenMP threads spin while they wait (a tiny U-Net's fit took 214 s beside a workflow run, 3 s
# alone). One thread a worker, set again before each test, since a stage called in-process sets its own.
IN_A_WORKER = "PYTEST_XDIST_WORKER" in os.environ


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if IN_A_WORKER:
        torch.set_num_threads(1)
    # set before any fixture of the test is set up, so a session fixture's first setup knows whom it serves
    _current_test.append(item)
    try:
        return (yield)
    finally:
        _current_test.pop()


def require_tier(marker: str, what: str) -> None:
    """Fail unless the running test is marked ``marker`` (a fixture's setup counts as the test that asked for it)."""
    if _current_test and _current_test[-1].get_closest_marker(marker) is None:
        raise AssertionError(f"{_current_test[-1].nodeid} runs {what} but is not marked @pytest.mark.{marker}")


def _checked_open_browser(*args, **kwargs):
    require_tier("browser", "Chromium")
    return _open_browser(*args, **kwargs)


_open_browser, browser.open_browser = browser.open_browser, _checked_open_browser


# The suite runs in one worker a core (pyproject.toml: -n auto), each taking whole groups of tests: the modules whose
# tests read the shared run (``workflow_run``) are one group, in file order, so that the run is made once, in one
# worker, and the tests that edit it (test_workflow.py, last) come after those that only read it; every other module
# is a group of its own, so that its module fixtures are set up once. test_slurm.py is among them: the cluster's run
# starts with the shared run and its test compares the two.
SHARED_RUN_MODULES = {"test_bench.py", "test_interruptions.py", "test_report_browser.py", "test_reruns.py",
                      "test_slurm.py", "test_workflow.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        """pytest-xdist's scheduling by scope, the scope being the group above. (Its --dist loadgroup would read
        xdist_group marks, but from node ids that pytest 9 no longer lets a plugin rename.)"""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shared tiny run" if Path(module).name in SHARED_RUN_MODULES else module

    return SuiteScheduling(config, log)


def pytest_collection_modifyitems(items):
    """A test that reads the finished tiny run (``workflow_run``) runs Snakemake through it: its tier follows; and
    its module must be one of SHARED_RUN_MODULES, or a second worker would make the run again."""
    for item in items:
        if "workflow_run" in getattr(item, "fixturenames", ()):
            if not item.get_closest_marker("workflow"):
                item.add_marker(pytest.mark.workflow)
            if Path(str(item.fspath)).name not in SHARED_RUN_MODULES:
                raise pytest.UsageError(f"{item.nodeid} reads workflow_run: add its module to "
                                        "tests/conftest.py's SHARED_RUN_MODULES")


def snakemake_command(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile",
                      configfiles: list[Path] | None = None, for_the_session: bool = False) -> list[str]:
    """Targets go first in ``args``: an option that takes several words (--forcerun, --resources, --configfile)
    takes every word up to the next option, a target included. The workdir's config.yaml is the Snakefile's
    configfile; ``configfiles`` go over it key by key (default: none but itself). ``for_the_session``: started by
    the session for test_slurm.py (``slurm_run``), in the setup of whichever test first reads the shared run, so no
    test's tier."""
    if not for_the_session:
        require_tier("workflow", "Snakemake")
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir), "--cores",
            "2", *args, "--configfile", *map(str, configfiles or [workdir / "config.yaml"])]


def snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None,
              snakefile: Path = REPO / "Snakefile", configfiles: list[Path] | None = None
              ) -> subprocess.CompletedProcess:
    # Run from the workdir, as a user would: "python -m" puts the current folder first on sys.path.
    result = subprocess.run(snakemake_command(workdir, *args, snakefile=snakefile, configfiles=configfiles),
                            capture_output=True, text=True, cwd=workdir,
                            env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir: Path) -> dict[str, int]:
    return job_counts(snakemake(workdir, "-n").stdout)


def new_workdir(tmp_path_factory, name: str, config: dict) -> Path:
    workdir = tmp_path_factory.mktemp(name)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory, slurm_run) -> Path:
    """The whole workflow run once on the tiny config; tests that edit its inputs run last (test_workflow.py). The
    cluster's run (``slurm_run``), when the session has its test, starts first and goes on beside it."""
    workdir = new_workdir(tmp_path_factory, "run", tiny_config())
    snakemake(workdir)
    return workdir


@pytest.fixture(scope="session")
def slurm_run(request, tmp_path_factory):
    """The workflow on the Slurm test cluster, started with the shared tiny run (``workflow_run``, in the worker of
    their group) when test_slurm.py is selected, so that it runs beside the other tests (tests/slurm_run.py); None
    otherwise."""
    if not any(Path(str(item.fspath)).name == "test_slurm.py" for item in request.session.items):
        yield None
        return
    from slurm_run import SlurmRun

    config = tiny_config()
    # UMAP and t-SNE add nothing to scheduling, nor does a second VAE or a second fine-tune: the local run has all of
    # them. The cluster run stays lean because it shares the session's two cores with every other test.
    config["embed"]["methods"] = ["pca"]
    del config["vaes"][SECOND], config["finetunes"][EQUIVARIANT]
    # auto, as a cluster user leaves it: each GPU job asks Slurm for a GPU (with cpu it would ask for none); torch sees
    # no CUDA behind the stand-in GPUs and runs on the CPU, as the local run does
    config["vae"]["device"] = "auto"
    workdir = tmp_path_factory.mktemp("slurm")
    command = snakemake_command(workdir, "results/report.html", "--profile", str(REPO / "profiles" / "slurm"),
                                "--profile", str(REPO / "tests" / "profiles" / "slurm-test"), for_the_session=True)
    run = SlurmRun(workdir, config, command)
    yield run
    run.stop()
