"""The workflow as a whole: a no-op dry run of the DAG as it grows (P4), the demo run clean (P9), and outputs
computed twice in it (P8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import REPO, Row, Timer, cores, demo_workdir, run_snakemake
from latent_interp import runconfig  # torch-free


def _pretend_done(workdir: Path) -> None:
    """Every output of the whole DAG in place and up to date, without running a job: empty files and folders (a
    ``.zarr`` or a name without suffix is a folder) for what the dry run plans, then ``--touch`` in DAG order."""
    planned = run_snakemake(workdir, "-n", "--cores", "1").stdout
    for line in planned.splitlines():
        if line.strip().startswith("output:"):
            for name in line.split(":", 1)[1].split(","):
                path = workdir / name.strip()
                if path.suffix in ("", ".zarr"):
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
    run_snakemake(workdir, "--cores", "1", "--touch", "--quiet")


def _as_frame_files(workdir: Path) -> None:
    """Switch a pretended run to its frames as data (data.source: files, what a real study uses): an empty file for
    every frame the demo would draw, so that every frame is an input of its own, then everything marked done."""
    import yaml

    from latent_interp import synthetic

    path = workdir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for split, count in config["data"]["synthetic"]["triplets"].items():
        for spec in synthetic.triplet_specs(config["data"]["synthetic"]["seed"], split, count):
            folder = workdir / config["data"]["root"] / split / spec.name
            folder.mkdir(parents=True, exist_ok=True)
            for k in (1, 2, 3):
                (folder / f"frame{k}.jpg").touch()
    config["data"]["source"] = "files"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(workdir, "--cores", "1", "--touch", "--quiet")


def _no_op_dry_run(workdir: Path, repeats: int) -> float:
    """Median seconds of ``snakemake -n`` (``repeats`` runs) in ``workdir``, where every output is up to date."""
    timings = []
    for _ in range(repeats):
        with Timer() as timer:
            result = run_snakemake(workdir, "-n", "--cores", "1")
        timings.append(timer.seconds)
    if "Nothing to be done" not in result.stdout + result.stderr:
        raise RuntimeError(f"{workdir}: the dry run after --touch still plans jobs:\n{result.stdout[-2000:]}")
    return float(np.median(timings))


def p4_dry_run(quick: bool, tmp: Path) -> Row:
    """A no-op ``snakemake -n`` of the whole DAG at 100 triplets, and at 10,000 against 100 (--quick: 10 and 20, the
    row's code at a tenth of its Snakemake runs' time)."""
    small = {"train": 6, "val": 2, "test": 2} if quick else {"train": 60, "val": 20, "test": 20}
    large = {"train": 12, "val": 4, "test": 4} if quick else {"train": 6000, "val": 2000, "test": 2000}
    base, count = sum(small.values()), sum(large.values())
    seconds = {}
    repeats = 1 if quick else 3
    for size, triplets in ((base, small), (count, large)):
        # one pretended run a size, its frames drawn by the workflow (one folder per split), then read as data
        # (every frame an input)
        workdir = demo_workdir(tmp, f"p4-{size}", triplets)
        _pretend_done(workdir)
        seconds[f"synthetic_{size}"] = _no_op_dry_run(workdir, repeats)
        _as_frame_files(workdir)
        seconds[f"files_{size}"] = _no_op_dry_run(workdir, repeats)
    ratios = {source: seconds[f"{source}_{count}"] / seconds[f"{source}_{base}"] for source in ("synthetic", "files")}
    worst_small, worst_ratio = max(seconds[f"synthetic_{base}"], seconds[f"files_{base}"]), max(ratios.values())
    return Row("P4", f"no-op snakemake -n: at {base} triplets, and at {count:,} / at {base} (drawn frames; frames as "
               "files)", worst_ratio, f"<= 3 s at {base}; <= 2x", worst_small <= 3 and worst_ratio <= 2,
               "; ".join(f"{source}: {seconds[f'{source}_{base}']:.1f} s at {base}, {seconds[f'{source}_{count}']:.1f}"
                         f" s at {count:,} ({ratios[source]:.2f}x)" for source in ("synthetic", "files")),
               {"seconds": seconds, "median_of": repeats})


def p9_demo(quick: bool, tmp: Path) -> tuple[Row, Path]:
    """The demo, clean, as a user runs it: ``snakemake --cores <all>`` with the shipped config and profile."""

    def smallest(config):  # --quick: the smallest study the schema allows, to check this row's code (and P8's)
        config["data"]["synthetic"]["triplets"] = {"train": 4, "val": 4, "test": 4}
        config["vaes"] = dict(list(runconfig.resolve(config).vaes.items())[:1])  # one VAE and its fine-tunes
        # the decoder-only one: it is what P8 checks for work done twice (it shares its base's latents)
        config["finetunes"] = {name: {**entry, "epochs": 1} for name, entry in config["finetunes"].items()
                               if entry and entry.get("recipe", "default") == "default"}
        config["interp"]["predictors"] = ["linear"]
        config["embed"]["methods"] = ["pca"]
        config["preprocess"]["size"] = 32

    workdir = demo_workdir(tmp, "p9-demo", None, smallest if quick else None)
    # --quick stops at the metric summary: the row's code (and P8's, the fine-tune included) runs in half the jobs
    targets = ["results/metrics/summary.csv"] if quick else []
    with Timer() as timer:
        run_snakemake(workdir, "--cores", str(cores()), "--workflow-profile", str(REPO / "profiles" / "default"),
                      *targets)
    minutes = timer.seconds / 60
    jobs = {}
    for path in (workdir / "results" / "benchmarks").rglob("*.tsv"):
        rule = path.relative_to(workdir / "results" / "benchmarks").parts[0].removesuffix(".tsv")
        seconds = float(path.read_text().splitlines()[1].split("\t")[0])
        jobs[rule] = round(jobs.get(rule, 0) + seconds, 1)
    return Row("P9", f"the demo, clean, on this machine ({cores()} cores)", minutes, "<= 6.5 min wall", minutes <= 6.5,
               f"{minutes:.1f} min", {"job_seconds_by_rule": dict(sorted(jobs.items(), key=lambda kv: -kv[1]))}), \
        workdir


def _data_digest(path: Path) -> str | None:
    """The digest of what an output holds, leaving out what names its maker: a store's arrays (not its attrs), a
    table without its ``model`` column. None for files that are records rather than results."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256()
    if path.suffix == ".zarr":
        for item in sorted(path.rglob("*")):
            if item.is_file() and item.name != "zarr.json":
                digest.update(item.relative_to(path).as_posix().encode() + item.read_bytes())
    elif path.suffix == ".csv":
        table = pd.read_csv(path)
        digest.update(table.drop(columns=[c for c in ("model",) if c in table]).to_csv(index=False).encode())
    elif path.suffix in (".safetensors", ".png"):
        digest.update(path.read_bytes())
    else:
        return None
    return digest.hexdigest()


def p8_twice(demo: Path) -> Row:
    """Outputs of two jobs that hold the same data (a decoder-only fine-tune's latents and what follows from them)."""
    results = demo / "results"
    by_digest: dict[str, list[str]] = {}
    for stage in ("latents", "recon", "metrics", "interp", "predictors", "geometry", "embeddings"):
        for path in sorted((results / stage).rglob("*")):
            if path.suffix in (".zarr", ".csv", ".safetensors", ".png") and ".zarr/" not in path.as_posix():
                digest = _data_digest(path)
                if digest:
                    by_digest.setdefault(digest, []).append(path.relative_to(demo).as_posix())
    twice = {digest: paths for digest, paths in by_digest.items() if len(paths) > 1}
    count = sum(len(paths) - 1 for paths in twice.values())
    return Row("P8", "outputs equal to another job's output (the demo's results)", count, "0", count == 0,
               f"{count} of {sum(len(p) for p in by_digest.values())} outputs",
               {"equal_outputs": list(twice.values()),
                "latents_stores": sorted(p.relative_to(demo).as_posix()
                                         for p in (results / "latents").glob("*/*.zarr"))})
