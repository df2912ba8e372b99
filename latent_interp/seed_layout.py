"""Interoperability with the seed study's latent files: ``<split>/<triplet>/latent{1,2,3}.npy``, each float32
(4, 32, 32), the posterior mean not multiplied by the scaling factor (the convention our latents stores share).

``export_latents`` writes a latents store in that layout; ``import_latents`` turns such a tree into a latents store, so
existing seed results can enter the analysis. The seed kept no log-variance: imported stores hold NaN there and say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from latent_interp import data, store

LATENT_FILES = ("latent1.npy", "latent2.npy", "latent3.npy")


def export_latents(latents_path, out_root) -> int:
    """Write ``<out_root>/<split>/<triplet>/latent{1,2,3}.npy`` from a latents store; returns the triplet count."""
    group = store.open_store(latents_path, "latents")
    split_dir = Path(out_root) / group.attrs["split"]
    names, mean = store.names(group), group[store.MEAN]
    for start, stop in store.chunk_ranges(mean):
        chunk = mean[start:stop]
        for offset, name in enumerate(names[start:stop]):
            (split_dir / name).mkdir(parents=True, exist_ok=True)
            for frame, filename in enumerate(LATENT_FILES):
                np.save(split_dir / name / filename, chunk[offset, frame].astype(np.float32))
    return len(names)


def import_latents(split_dir, out_path, split: str, vae_source: str) -> int:
    """A latents store from a seed-layout split folder; ``vae_source`` says which VAE made the files."""
    split_dir = Path(split_dir)
    triplets = sorted(p for p in split_dir.iterdir() if p.is_dir())
    incomplete = [str(p / f) for p in triplets for f in LATENT_FILES if not (p / f).is_file()]
    if incomplete:
        raise FileNotFoundError(f"{split_dir}: missing latent files, e.g. {incomplete[:3]}")
    names = [p.name for p in triplets]
    first = np.load(triplets[0] / LATENT_FILES[0]) if triplets else np.zeros((4, 32, 32), np.float32)
    record = {"source": vae_source, "format": "seed latent files", "sha256": None, "scaling_factor": 0.18215,
              "config": {}}
    settings = {"imported_from": str(split_dir), "logvar": "unknown: the seed layout has no log-variance (NaN)"}
    group = store.create(out_path, "latents", split, {"vae": record, "preprocess": {"size": first.shape[-1] * 8},
                                                      "provenance": store.provenance("import", settings)},
                         names, [data.origin_of(n) for n in names])
    mean = store.add_array(group, store.MEAN, (3, *first.shape), np.float32)
    logvar = store.add_array(group, store.LOGVAR, (3, *first.shape), np.float32)
    for start, stop in tqdm(list(store.chunk_ranges(mean)), desc=f"import {split}", unit="chunk"):
        block = np.stack([[np.load(triplets[i] / f) for f in LATENT_FILES] for i in range(start, stop)])
        if block.shape[2:] != first.shape:
            raise ValueError(f"{split_dir}: latents of shape {block.shape[2:]} beside {first.shape}")
        mean[start:stop] = block.astype(np.float32)
        logvar[start:stop] = np.full(block.shape, np.nan, np.float32)
    store.seal(group)
    return len(names)
