"""A benchmark child (bench P12): one frame of WIDTH x HEIGHT through the VAE (encode, decode, crop) in a Python of
its own, so that its peak memory is the VAE stages' at that geometry.

    python bench/child_vae_frame.py THREADS MODEL WIDTH HEIGHT
"""

import sys

import numpy as np
import torch

from common import report_peak
from latent_interp import encode, synthetic, vae

threads, model_dir, width, height = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
vae.prepare_torch(threads)
device = vae.pick_device("auto")
model, _ = vae.load_vae(model_dir, device)
model = encode.prepare_model(model, device)
frame = np.stack(synthetic.render_triplet(synthetic.triplet_specs(0, "bench", 1)[0], width, height))[:1]
means, _ = encode.encode_frames(model, frame, device, 1)
decoded = encode.decode_latents(model, means, device, 1, frame_size=(height, width))
assert decoded.shape == (1, height, width, 3)
if device.type == "cuda":
    print("CUDA_PEAK_MIB", torch.cuda.max_memory_allocated() / 2**20)
report_peak()
