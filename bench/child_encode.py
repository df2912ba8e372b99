"""A benchmark child (bench P5): the encode stage on a frames store of COUNT drawn triplets of SIZE px, in a Python
of its own, so that its peak memory is the stage's.

    python bench/child_encode.py TMP COUNT SIZE VAE
"""

import gc
import sys
from pathlib import Path

from common import cartoon_triplets, frames_store, report_peak
from latent_interp import encode
from latent_interp.settings import VaeRun

tmp, count, size, model = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
triplets = cartoon_triplets(count, size)
path = frames_store(tmp / f"frames-{count}.zarr", triplets)
del triplets
gc.collect()  # the drawing's memory is not the stage's
encode.encode_split(frames=path, latents=tmp / f"latents-{count}.zarr", split="bench",
                    vae_run=VaeRun(model, batch_size=16, device="cpu"), threads=1)
report_peak()
