"""The rows of bench/run.py, one function each, grouped by theme: stages (P1, P2, P5), stores (P3), the DAG (P4, P8,
P9), embeddings (P6), the GPU path (P7), training (P10 and the fine-tune step), flow (P11), the field's geometry (P12),
video (P13), the study at ATD-12K size (P14) and the warps inside the decoder (P15). Every figure is a ratio of two
things measured side by side in one run, so a busy or slow machine moves both sides alike. ``quick`` shrinks every
size to seconds: a smoke test of this code (tests/test_bench_rows.py), not figures. Shared helpers are in
bench/common.py; child programs are bench/child_*.py.
"""

from common import TINY_VAE, Row  # noqa: F401 (what callers of the rows use)
from rows import dag, depth, embeddings, field, flow, gpu, stages, stores, study, training, video

ORDER = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12", "P13", "P14", "P15")
# id -> the row's function; P8 and P9 share the demo run (bench/run.py runs P9 first when both are asked for)
ROWS = {"P1": stages.p1_encode, "P2": stages.p2_metrics, "P3": stores.p3_latent_reads, "P4": dag.p4_dry_run,
        "P5": stages.p5_encode_memory, "P6": embeddings.p6_embeddings, "P7": gpu.p7_gpu,
        "P10": training.p10_interp_training, "P11": flow.p11_flow, "P12": field.p12_field_geometry,
        "P13": video.p13_video, "P14": study.p14_study, "P15": depth.p15_decoder_warps}
p8_twice, p9_demo, p7_gpu = dag.p8_twice, dag.p9_demo, gpu.p7_gpu

# What made each row's figure, one line each: docs/performance.md's last column (python bench/run.py --markdown).
WHAT_MADE_IT = {
    "P1": "channels_last on the CPU; on CUDA, reads ahead and writes behind in threads; equal micro-batches per read",
    "P2": "skimage per image in a process per thread of the rule; metrics.device cuda: the same formulas in torch",
    "P3": "Blosc LZ4 over byte-shuffled floats; a CRC32C per chunk checked on a view of its bytes",
    "P4": "no torch in the Snakefile; a drawn split is one manifest, not a file per frame, to match against",
    "P5": "outputs allocated once per read, so memory does not grow with the split",
    "P6": "the libraries' own PCA, UMAP and t-SNE on whole triplets, subsampled above embed.max_points",
    "P7": "vae.compile of the module a job runs, channels_last when compiled, only where the job's frames pay for it",
    "P8": "a decoder-only fine-tune decodes its base's latents; interp keeps the in-betweens it scores for the gallery",
    "P9": "128 px and short fine-tunes, started first; without a GPU two half-core jobs overlap; galleries drawn as "
          "one image; the report's figures drawn by two processes",
    "P10": "batches prepared once on the device; what is left is the per-epoch val check",
    "P11": "a pool of threads each with its own DIS; OpenCV's remap for the masks; the store written behind; the "
           "flows at t computed where used, not stored",
    "P12": "every stage about linear in the pixels it sees",
    "P13": "the decode in a thread of its own, the PNGs written by another, the sha256 beside the decode",
    "P14": "each GPU job's log breaks its time down (set-up, first batch, model, waits), which P14 reports",
    "P15": "the ends decoded once, as one batch, and every level and both flows read on the way",
}
