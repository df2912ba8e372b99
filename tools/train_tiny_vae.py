"""Retrain the tiny demo VAEs shipped in models/ (an hour or so on 2 CPU cores; minutes on a GPU).

    python tools/train_tiny_vae.py --out models/tiny-vae --checkpoint scratch/tiny-vae.pt [--steps N ...]
    python tools/train_tiny_vae.py --family tiny --teacher models/tiny-vae --out models/tiny-taesd \
        --checkpoint scratch/tiny-taesd.pt --steps 6000 --batch-size 8 --lr 0.001 --threads 1

Rerunning with the same checkpoint path resumes where a killed run stopped. Every TrainConfig field is a flag.
"""

import argparse
import dataclasses

from latent_interp.tinyvae import TrainConfig, train

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", default="models/tiny-vae")
parser.add_argument("--checkpoint", default="scratch/tiny-vae.pt")
for field in dataclasses.fields(TrainConfig):
    parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
args = vars(parser.parse_args())
out, checkpoint = args.pop("out"), args.pop("checkpoint")
train(out, checkpoint, TrainConfig(**args))
