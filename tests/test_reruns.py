"""Reruns are exact: a changed triplet reruns its split's chain and what reads it, a changed module the stages that
run it, and a sharded split gives the bytes of an unsharded one, one failed shard rerunning alone."""

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, file_digests, job_counts, new_workdir, planned_jobs, snakemake, tiny_config

pytestmark = pytest.mark.workflow

# What every change to one split's frames reruns beyond that split's own jobs: the aggregates over all splits, for
# each of the two latent spaces (tiny-kl, which its decoder-only fine-tune shares, and tiny-taesd).
AGGREGATES = {"geometry": 3, "embed": 3 * 3, "metrics_summary": 1, "interp_summary": 1, "compare_vaes": 1,
              "report": 1, "all": 1}


def _as_files(run: Path):
    """The run's config, reading the drawn frames as data (data.source files): triplet folders can come and go."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["source"] = "files"
    return config


def _plan_with(run: Path, change) -> dict:
    """The dry run's job counts after ``change(frames_root)``, then the frames as they were."""
    undo = change(run / "results" / "synthetic")
    try:
        return planned_jobs(run)
    finally:
        if undo:
            undo()


def _add_triplet(split: str):
    def change(root: Path):
        source = sorted((root / split).iterdir())[0]
        added = source.with_name(source.name + "_added")
        shutil.copytree(source, added)
        return lambda: shutil.rmtree(added)
    return change


def _remove_triplet(split: str):
    def change(root: Path):
        source = sorted((root / split).iterdir())[-1]
        kept = root.parent / f"removed-{source.name}"
        shutil.move(source, kept)
        return lambda: shutil.move(kept, source)
    return change


def test_triplets_added_or_removed_rerun_their_split_and_what_reads_it(workflow_run):
    run = workflow_run
    path, original = run / "config.yaml", (run / "config.yaml").read_text()
    path.write_text(yaml.safe_dump(_as_files(run), sort_keys=False))
    try:
        # The drawn splits are read by their manifests (one file, bench P4); as data, every frame is an input, so
        # the switch itself reruns ingest (and the report, whose params hold the config). Accepting the drawn frames
        # as they are (--touch) leaves nothing to do, and from there each change below is planned alone.
        assert planned_jobs(run)["ingest"] == 3
        snakemake(run, "--touch", "--quiet")
        assert planned_jobs(run) == {}
        # A test triplet reaches no training: the test chain of the four models (three encodes: the decoder-only
        # fine-tune decodes tiny-kl's latents), the split's flow, each latent space's equivariance (it reads test)
        # and the aggregates.
        assert _plan_with(run, _add_triplet("test")) == {
            "ingest": 1, "flow": 1, "encode": 3, "reconstruct": 4, "metrics": 4, "interp": 4, "equivariance": 3,
            **AGGREGATES}
        # A val triplet: the fine-tunes validate on val and the predictors choose their settings there, so both
        # fine-tuned models are new (all their splits rerun: the equivariant one's encodes too) and so are the three
        # spaces' predictors (every interpolation).
        assert _plan_with(run, _remove_triplet("val")) == {
            "ingest": 1, "flow": 1, "encode": 2 + 3, "reconstruct": 2 + 2 * 3, "metrics": 2 + 2 * 3, "finetune": 2,
            "collapse_check": 4, "interp_train": 3, "interp": 4 * 2, "equivariance": 1, **AGGREGATES}
        # A train triplet: the same, except that the two listed VAEs' val scores and collapse checks stand.
        assert _plan_with(run, _add_triplet("train")) == {
            "ingest": 1, "flow": 1, "encode": 2 + 3, "reconstruct": 2 + 2 * 3, "metrics": 2 + 2 * 3, "finetune": 2,
            "collapse_check": 2, "interp_train": 3, "interp": 4 * 2, "equivariance": 1, **AGGREGATES}
    finally:
        path.write_text(original)
        snakemake(run, "--touch", "--quiet")  # back to the drawn frames' manifests, for the tests after this one
    assert planned_jobs(run) == {}  # everything as it was


def _copy_of_repository(destination: Path) -> Path:
    """The Snakefile, rules, scripts, profiles and package: a change to the copy's modules is a code change."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, destination / name)
    for name in ("workflow", "profiles", "envs", "latent_interp", "models"):
        shutil.copytree(REPO / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
    return destination / "Snakefile"


def test_a_module_change_reruns_the_stages_that_run_it(tmp_path_factory):
    copy = tmp_path_factory.mktemp("repository")
    snakefile = _copy_of_repository(copy)
    env = {"PYTHONPATH": str(copy)}  # the scripts and the Snakefile import the copy's package
    workdir = new_workdir(tmp_path_factory, "code", tiny_config())
    target = "results/metrics/tiny-kl/val.csv"
    snakemake(workdir, target, snakefile=snakefile, env=env)

    def plan_after(module: str, edit: str = "\n# a change\n") -> dict:
        path = copy / "latent_interp" / module
        original = path.read_text()
        path.write_text(original + edit)
        try:
            return job_counts(snakemake(workdir, "-n", target, snakefile=snakefile, env=env).stdout)
        finally:
            path.write_text(original)

    assert plan_after("metrics.py") == {"metrics": 1}
    # encode.py holds both GPU stages; store.py is read by every stage but the drawing of the demo frames
    assert plan_after("encode.py") == {"encode": 1, "reconstruct": 1, "metrics": 1}
    assert plan_after("store.py") == {"ingest": 1, "encode": 1, "reconstruct": 1, "metrics": 1}
    assert plan_after("geometry.py") == {} and plan_after("report/page.py") == {}
    (copy / "latent_interp" / "metrics.py").touch()  # a touch is no change: inputs this small compare by checksum
    assert job_counts(snakemake(workdir, "-n", target, snakefile=snakefile, env=env).stdout) == {}


SHARDED_TARGETS = ("results/metrics/tiny-kl/test.csv", "results/metrics/tiny-kl/test.spec.json",
                   "results/recon/tiny-kl/test.zarr", "results/latents/tiny-kl/test.zarr")


def _sharded_config(shard_size):
    """256 px frames, so that a recon chunk is 7 triplets and 9 test triplets make real shards of the chunk grid."""
    config = tiny_config()
    config["preprocess"]["size"] = 256
    config["data"]["synthetic"]["triplets"]["test"] = 9
    config["data"]["shard_size"] = shard_size
    return config


def test_a_sharded_split_gives_the_bytes_of_an_unsharded_run_and_a_failed_shard_reruns_alone(tmp_path_factory):
    whole = new_workdir(tmp_path_factory, "unsharded", _sharded_config(None))
    snakemake(whole, *SHARDED_TARGETS)
    sharded = new_workdir(tmp_path_factory, "sharded", _sharded_config(4))
    planned = planned_jobs_for(sharded)
    assert planned["encode_shard"] == planned["reconstruct_shard"] == planned["metrics_shard"] == 3
    assert planned["gather_store"] == 2 and planned["gather_metrics"] == 1 and "reconstruct" not in planned
    # Shard 1 of the reconstruction dies mid-store; --keep-going lets every other job that can run finish.
    failed = snakemake(sharded, "--keep-going", *SHARDED_TARGETS, check=False,
                       env={"LATENT_INTERP_FAULT": "reconstruct-shard1:mid-store:kill"})
    assert failed.returncode != 0
    assert planned_jobs_for(sharded) == {"reconstruct_shard": 1, "gather_store": 1, "metrics_shard": 3,
                                         "gather_metrics": 1}
    snakemake(sharded, *SHARDED_TARGETS)
    for target in SHARDED_TARGETS:
        assert file_digests(sharded, target) == file_digests(whole, target), target
    assert not (sharded / "results" / "shards").exists()  # shard outputs are temporary
    assert not list(sharded.rglob("*.partial*"))
    logs = sharded / "results" / "logs"
    assert (logs / "reconstruct" / "tiny-kl" / "test" / "shard1.log").exists()
    assert (logs / "gather_store" / "recon" / "tiny-kl" / "test.log").exists()


def planned_jobs_for(workdir: Path) -> dict:
    return job_counts(snakemake(workdir, "-n", *SHARDED_TARGETS).stdout)
