"""The report's size and load time at ATD-12K scale, against the issue's targets (under 60 MB, open in under 10 s).

    python bench/report_scale.py [--workdir DIR] [--triplets 9000 1000 2000] [--size 64] [--loads 3]
    python bench/report_scale.py --report results/report.html      # measure an existing report only

Runs the real workflow on a synthetic study of ATD-12K's size (train 9,000, val 1,000, test 2,000 triplets: 36,000
frames, like train_10k split by hash plus test_2k) with the shipped tiny VAE, frames squashed to --size px and short
trainings (the report's size depends on how many triplets there are, not on how well the models are trained). Then
it prints the report's size split by what fills it, and the time from navigation until every embedding is drawn in
headless Chromium with the network off (median of --loads), each as a ratio to its target, all measured in this
run. A rerun with the same --workdir only rebuilds what changed.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
from latent_interp import browser  # noqa: E402  (Chromium with the network off)
from common import demo_vaes  # noqa: E402  (bench/common.py)
from latent_interp.report.page import read_payload  # noqa: E402

SIZE_TARGET_MB, LOAD_TARGET_S = 60, 10


def scale_config(triplets: list[int], size: int) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data"]["synthetic"].update(triplets=dict(zip(("train", "val", "test"), triplets)),
                                       raw_size=[2 * size, 2 * size * 9 // 16])
    config["preprocess"]["size"] = size
    config["vaes"] = demo_vaes(config)
    config["vae"].update(device="cpu", batch_size=256)
    for entry in config["finetunes"].values():
        entry["epochs"] = 1
    config["metrics"]["bootstrap_resamples"] = 200
    config["interp"]["mlp"]["epochs"] = config["interp"]["unet"]["epochs"] = 5
    return config


def run_workflow(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                    str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", str(os.cpu_count()),
                    "--rerun-incomplete", "results/report.html"], check=True)
    return workdir / "results" / "report.html"


def size_breakdown(page: Path) -> dict[str, float]:
    """MB of the page by what fills it: plotly.js, the payload's fields, embedded PNG figures, the rest."""
    from plotly.offline import get_plotlyjs

    html = page.read_text()
    payload = read_payload(html)
    parts = {"plotly.js": len(get_plotlyjs())}
    parts.update({f"payload.{name}": len(json.dumps(value, separators=(",", ":")))
                  for name, value in payload.items()})
    parts["PNG figures"] = sum(len(m) for m in re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]+", html))
    parts["the rest (markup, CSS, page script)"] = len(html) - sum(parts.values())
    return {name: size / 1e6 for name, size in parts.items()}


def load_seconds(page: Path, loads: int) -> list[float]:
    times = []
    for _ in range(loads):
        driver = browser.open_browser()
        try:
            times.append(browser.load(driver, page))
            errors = browser.console_errors(driver)
            if errors:
                raise RuntimeError(f"console errors: {errors}")
        finally:
            driver.quit()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "bench-report-scale")
    parser.add_argument("--triplets", type=int, nargs=3, default=[9000, 1000, 2000], metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--report", type=Path, help="measure this report instead of building one")
    args = parser.parse_args()

    page = args.report or run_workflow(args.workdir, scale_config(args.triplets, args.size))
    payload = read_payload(page.read_text())
    megabytes = page.stat().st_size / 1e6
    print(f"report: {page}")
    print(f"triplets: {len(payload['triplets'])}, with panel images: {len(payload['images'])}, hover thumbnails: "
          f"{len(payload['thumbs'])}, points per embedding: {[len(e['x']) for e in payload['embeddings']]}")
    for name, size in size_breakdown(page).items():
        print(f"  {name:40s} {size:8.2f} MB")
    times = load_seconds(page, args.loads)
    median = statistics.median(times)
    print(f"size {megabytes:.1f} MB = {megabytes / SIZE_TARGET_MB:.2f} x the {SIZE_TARGET_MB} MB target")
    print(f"load until every embedding is drawn: median {median:.2f} s of {[round(t, 2) for t in times]} = "
          f"{median / LOAD_TARGET_S:.2f} x the {LOAD_TARGET_S} s target")


if __name__ == "__main__":
    main()
