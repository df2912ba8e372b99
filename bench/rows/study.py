"""The study at ATD-12K size through Snakemake, the fine-tune aside (P14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


from common import REPO, TINY_VAE, Row, Timer, cores, demo_workdir, gpu_vae

ATD12K_TRIPLETS = {"train": 9000, "val": 1000, "test": 2000}  # train_10k split by name hash, plus test_2k


STUDY_LIMIT_SECONDS = 480  # P14 stops the study there, so that bench/run.py --rows P14 fits one 10-minute command
STUDY_FRACTION = 1.0  # P14's share of ATD-12K's size (bench/run.py --study-fraction); below 1 it projects to 12,000


def p14_study(quick: bool, tmp: Path) -> Row:
    """The whole study but the fine-tune at ATD-12K's size (12,000 synthetic triplets at 256 px, kl-f8's
    architecture with random weights) on a GPU, through Snakemake, with the time per stage and where it goes. With no
    GPU it runs small on the CPU (120 triplets, the tiny VAE at 128 px; --quick: 24 at 32 px, one predictor and PCA),
    which checks the code and gives the breakdown, not the figure."""
    from latent_interp import vae

    gpu = vae.pick_device("auto").type == "cuda"
    if gpu and not quick:
        fraction, model_dir, size = STUDY_FRACTION, None, 256
    else:
        fraction, model_dir, size = (0.002 if quick else 0.01), TINY_VAE, (32 if quick else 128)
    study = gpu_study(tmp, fraction, model_dir, size, STUDY_LIMIT_SECONDS if gpu else None, lean=quick)
    count = sum(study["triplets"].values())
    finished = study["finished"]
    minutes = study["wall_seconds"] / 60
    parts = ", ".join(f"{rule} {seconds:.0f} s" for rule, seconds in sorted(study["rule_seconds"].items(),
                                                                            key=lambda item: -item[1])[:6])
    projected = ""
    if finished and count < sum(ATD12K_TRIPLETS.values()):
        projected = f", projected to 12,000: {study['projected_wall_seconds'] / 60:.1f} min"
    figure = (f"{minutes:.1f} min for {count:,} triplets{projected}" if finished else
              f"not finished in {STUDY_LIMIT_SECONDS / 60:.0f} min ({len(study['rule_seconds'])} rules done)") + \
        f"; start-up {study['startup_seconds']:.1f} s a job x {study['jobs']} jobs; longest: {parts}"
    if not gpu or quick:
        figure = "CPU, small (" + figure + "): the GPU figure is python bench/run.py --rows P14 on a GPU"
    wall = study["projected_wall_seconds"] if count < sum(ATD12K_TRIPLETS.values()) else study["wall_seconds"]
    return Row("P14", "the study but the fine-tune at ATD-12K size (12,000 triplets, 256 px, kl-f8), one GPU",
               wall, "< 15 min", (finished and wall < 15 * 60) if gpu and not quick else None, figure, study)


def gpu_study(tmp: Path, fraction: float, model_dir: Path | None = None, size: int = 256,
              limit_seconds: float | None = None, lean: bool = False) -> dict:
    """The whole study but the fine-tune, through Snakemake, on a synthetic set of ATD-12K's size times
    ``fraction``, with kl-f8's architecture (or ``model_dir``) on the GPU, stopped after ``limit_seconds``. Returns
    the wall time, each rule's seconds (its benchmark files), the encode and reconstruct jobs' own breakdown (their
    logs' timing lines: setup, first batch with the compile, model, waits for reads and writes), a job's start-up
    (a fresh Python importing the stage and starting CUDA), and the jobs run. ``lean``: the linear predictor and PCA
    only."""
    triplets = {split: max(8, round(count * fraction)) for split, count in ATD12K_TRIPLETS.items()}
    model_dir = model_dir or gpu_vae(tmp)

    def edit(config):
        config["vaes"] = {"kl-f8": str(model_dir)}  # the study of one VAE, as measured before the comparison
        config["compare"]["baseline"] = "kl-f8"
        config["vae"].update(device="auto", batch_size="auto", compile="auto")
        config["preprocess"]["size"] = size
        config["finetunes"] = None
        config["metrics"]["device"] = "auto"
        if lean:  # --quick checks this row's code: one predictor and one embedding run every stage
            config["interp"]["predictors"], config["embed"]["methods"] = ["linear"], ["pca"]

    workdir = demo_workdir(tmp, "gpu-study", triplets, edit)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", str(cores()),
               "--workflow-profile", str(REPO / "profiles" / "default")]
    with Timer() as timer:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=limit_seconds)
            finished = result.returncode == 0
            if not finished:
                raise RuntimeError(f"the study failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        except subprocess.TimeoutExpired:
            finished = False
    by_rule = {}
    for path in (workdir / "results" / "benchmarks").rglob("*.tsv"):
        rule = path.relative_to(workdir / "results" / "benchmarks").parts[0].removesuffix(".tsv")
        by_rule[rule] = by_rule.get(rule, 0) + float(path.read_text().splitlines()[1].split("\t")[0])
    breakdown = {}
    for log in (workdir / "results" / "logs").rglob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("timing "):
                what, _, parts = line.removeprefix("timing ").partition(": ")
                breakdown[what] = {part.rsplit(" ", 2)[0]: float(part.rsplit(" ", 2)[1]) for part in parts.split(", ")}
    startup = _job_startup_seconds()
    jobs = sum(1 for _ in (workdir / "results" / "benchmarks").rglob("*.tsv"))
    # Projected to the whole size: rules whose work grows with the triplets scale by 1 / fraction; embed and
    # report sample at most embed.max_points and report.embedding_points frames, so they count as measured.
    fixed, scale = {"embed", "report"}, sum(ATD12K_TRIPLETS.values()) / sum(triplets.values())
    growing_share = sum(s for r, s in by_rule.items() if r not in fixed) / max(sum(by_rule.values()), 1e-9)
    return {"triplets": triplets, "size": size, "finished": finished, "wall_seconds": timer.seconds,
            "rule_seconds": by_rule, "gpu_stage_breakdown": breakdown, "startup_seconds": startup, "jobs": jobs,
            "startup_share": startup * jobs / max(sum(by_rule.values()), 1e-9), "scale": scale,
            "projected_wall_seconds": timer.seconds * (growing_share * scale + (1 - growing_share)),
            "counted_as_measured": sorted(fixed)}


def _job_startup_seconds() -> float:
    """What every GPU job pays before its work: a fresh Python importing the stage module (torch, diffusers, zarr)
    and starting CUDA where there is one."""
    code = ("import torch; from latent_interp import encode, vae; vae.autoencoder_class(); "
            "torch.cuda.is_available() and torch.zeros(1, device='cuda')")
    with Timer() as timer:
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    return timer.seconds
