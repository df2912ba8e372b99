"""Ingest throughput on ATD-12K-sized frames: 960x540 PNGs (test_2k_540p) and 1280x720 JPEGs (train_10k-like).

    python bench/ingest.py [--triplets 40] [--threads 2]

Prints frames/s for each format with 1 thread and with --threads, and the speed-up ratio, all measured in one run.
"""

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from latent_interp import data, synthetic
from latent_interp.settings import Preprocess

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--triplets", type=int, default=40)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--size", type=int, default=256)
args = parser.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    for ext, (width, height) in (("png", (960, 540)), ("jpg", (1280, 720))):
        split_dir = Path(tmp) / ext
        for spec in synthetic.triplet_specs(0, ext, args.triplets):
            (split_dir / spec.name).mkdir(parents=True)
            for k, frame in enumerate(synthetic.render_triplet(spec, width, height), start=1):
                Image.fromarray(frame).save(split_dir / spec.name / f"frame{k}.{ext}", quality=95)
        rates = {}
        for threads in (1, args.threads):
            started = time.perf_counter()
            data.ingest_split(source=data.SplitSource(split_dir), frames=Path(tmp) / f"{ext}{threads}.zarr",
                              skipped=Path(tmp) / f"{ext}{threads}.csv", split=ext, preprocess=Preprocess(args.size),
                              threads=threads)
            rates[threads] = 3 * args.triplets / (time.perf_counter() - started)
        print(f"{width}x{height} {ext}: {rates[1]:.1f} frames/s with 1 thread, {rates[args.threads]:.1f} with "
              f"{args.threads}; ratio {rates[args.threads] / rates[1]:.2f}")
