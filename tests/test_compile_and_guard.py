"""The GPU paths on the CPU: torch.compile of the VAE (vae.compile), and the non-finite guard of every
stage that runs a VAE, with a model made to overflow in float16 (CPU autocast runs half precision too)."""

import numpy as np
import pytest
import torch

from latent_interp import encode, finetune, interp, store, vae
from latent_interp.settings import VaeRun
from conftest import MICRO_VAE, ingest_folder


@pytest.fixture(scope="module")
def frames_store(frame_tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("guard") / "frames.zarr"
    ingest_folder(frame_tree / "train", path, "train", size=32)
    return path


def _overflowing_vae(folder, part: str = "encoder", scale: float = 1e6):
    """The micro VAE with the first convolution of ``part`` scaled by ``scale``: its outputs pass 65,504 (float16's
    largest) and turn to inf, then NaN in the GroupNorm after it; in float32 the GroupNorm takes the scale out again,
    so the model is finite there (a NaN ``scale`` makes it non-finite in float32 too)."""
    torch.manual_seed(0)
    model = vae.build_vae(**MICRO_VAE)
    with torch.no_grad():
        getattr(model, part).conv_in.weight.mul_(scale)
    model.save_pretrained(folder)
    return folder


def test_a_compiled_vae_gives_the_eager_results_and_keeps_its_weights_names(frames_store, micro_vae_dir, tmp_path):
    """vae.compile: true on the CPU (auto compiles on CUDA only): encode and reconstruct through torch.compile'd
    encoder and decoder equal the eager run within float32's rounding, compiled once for batches of 5 and 2."""
    results = {}
    for setting in (False, True):
        latents, recon = tmp_path / f"latents-{setting}.zarr", tmp_path / f"recon-{setting}.zarr"
        encode.encode_split(frames=frames_store, latents=latents, split="train",
                            vae_run=VaeRun(micro_vae_dir, batch_size=5, device="cpu", compile=setting))
        encode.reconstruct_split(latents=latents, recon=recon, split="train",
                                 vae_run=VaeRun(micro_vae_dir, batch_size=5, device="cpu", compile=setting))
        results[setting] = (store.open_store(latents, "latents"), store.open_store(recon, "recon"))
    (eager_latents, eager_recon), (compiled_latents, compiled_recon) = results[False], results[True]
    np.testing.assert_allclose(compiled_latents[store.MEAN][:], eager_latents[store.MEAN][:], rtol=1e-4, atol=1e-5)
    difference = np.abs(compiled_recon[store.FRAMES][:].astype(int) - eager_recon[store.FRAMES][:].astype(int))
    assert difference.max() <= 1  # uint8 rounding of float32 values equal to 1e-5
    # each job compiles the one module it runs, and records the frames (megapixels) it ran through it
    assert compiled_latents.attrs["provenance"]["settings"]["compile"]["modules"] == ["encoder"]
    assert compiled_recon.attrs["provenance"]["settings"]["compile"]["modules"] == ["decoder"]
    assert eager_latents.attrs["provenance"]["settings"]["compile"] == {
        "compiled": False, "setting": False, "modules": [], "megapixels": {"encoder": 0.0}}  # 12 frames of 32 px
    # compiled in place: the state dict keeps its names, so the encoder digest (the latent space's identity) holds
    assert compiled_latents.attrs["vae"]["encoder_sha256"] == eager_latents.attrs["vae"]["encoder_sha256"]


def test_vae_compile_auto_compiles_on_cuda_where_the_job_pays_for_the_compile():
    """auto: never on the CPU; on CUDA where the frames saved time (bench P7's figures) exceeds the compile's."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not vae.compiles("auto", cpu, "decoder", 10**6) and vae.compiles(True, cpu) and not vae.compiles(False, cuda)
    assert vae.compiles("auto", cuda)  # frames unknown
    # ATD-12K at 256 px: the train split's 27,000 frames are 1,769 megapixels
    assert vae.compiles("auto", cuda, "decoder", 1769) and not vae.compiles("auto", cuda, "encoder", 1769)
    assert not vae.compiles("auto", cuda, "decoder", 3 * 2000 * 0.0655)  # the test split's 6,000 frames
    assert encode.memory_format(cpu) == torch.channels_last == encode.memory_format(cuda, compiled=True)
    assert encode.memory_format(cuda) == torch.contiguous_format


def test_a_batch_that_overflows_in_float16_is_recomputed_in_float32_and_counted(frames_store, tmp_path):
    model_dir = _overflowing_vae(tmp_path / "overflowing")
    half, full = tmp_path / "half.zarr", tmp_path / "full.zarr"
    encode.encode_split(frames=frames_store, latents=half, split="train",
                        vae_run=VaeRun(model_dir, options={"dtype": "float16"}, batch_size=5, device="cpu"))
    encode.encode_split(frames=frames_store, latents=full, split="train",
                        vae_run=VaeRun(model_dir, options={"dtype": "float32"}, batch_size=5, device="cpu"))
    half_group, full_group = store.open_store(half, "latents"), store.open_store(full, "latents")
    assert np.isfinite(half_group[store.MEAN][:]).all()
    np.testing.assert_array_equal(half_group[store.MEAN][:], full_group[store.MEAN][:])  # the float32 results
    # 4 triplets = 12 frames in batches of at most 5: 3 batches, all of them overflowed
    assert half_group.attrs["non_finite"] == {"batches_recomputed_float32": 3, "frames_recomputed_float32": 12}
    assert full_group.attrs["non_finite"] == {"batches_recomputed_float32": 0, "frames_recomputed_float32": 0}
    # the model really is non-finite in float16: the guard is what kept the store clean
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        model = vae.load_vae(model_dir)[0]
        assert not torch.isfinite(model.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mean).all()


def test_the_decoder_and_the_fine_tunes_validation_are_guarded_too(frames_store, tmp_path):
    model_dir = _overflowing_vae(tmp_path / "overflowing-decoder", part="decoder")
    latents = tmp_path / "latents.zarr"
    encode.encode_split(frames=frames_store, latents=latents, split="train",
                        vae_run=VaeRun(model_dir, batch_size=5, device="cpu"))
    recon = tmp_path / "recon.zarr"
    encode.reconstruct_split(latents=latents, recon=recon, split="train",
                             vae_run=VaeRun(model_dir, options={"dtype": "float16"}, batch_size=6, device="cpu"))
    assert store.open_store(recon).attrs["non_finite"] == {"batches_recomputed_float32": 2,
                                                           "frames_recomputed_float32": 12}
    model = vae.load_vae(model_dir, dtype="float16")[0]
    frames = store.open_store(frames_store)[store.FRAMES][:].reshape(-1, 32, 32, 3)
    guard = encode.NonFiniteGuard()
    figures = finetune.validate(model, frames, torch.device("cpu"), 4, dtype="float16", guard=guard)
    assert np.isfinite(figures["val_psnr"]) and guard.record() == {"batches_recomputed_float32": 3,
                                                                    "frames_recomputed_float32": 12}


def test_interp_decodes_its_predictions_under_the_guard(frames_store, tmp_path):
    """What rule interp decodes (every latent method's frame 2) goes through the same guard, and a failure names
    the triplet and the method."""
    model = vae.load_vae(_overflowing_vae(tmp_path / "overflowing-decoder", part="decoder"))[0]
    latents = np.zeros((2, 3, 4, 4, 4), np.float32)
    chunk = interp.Chunk(np.zeros((2, 3, 32, 32, 3), np.uint8), np.zeros((2, 3, 32, 32, 3), np.uint8), latents,
                         None, {}, torch.device("cpu"), {}, 8)
    guard = encode.NonFiniteGuard()
    images, _, _ = interp._predict_chunk(chunk, ["latent_lerp", "latent_slerp"], model, 16, "float16", guard,
                                         ["a", "b"])
    assert guard.frames == 4 and all(value.dtype == np.uint8 for value in images.values())
    broken = vae.load_vae(_overflowing_vae(tmp_path / "nan-decoder", part="decoder", scale=float("nan")))[0]
    with pytest.raises(encode.NonFiniteError, match=r"b \(latent_slerp\)"):
        interp._predict_chunk(chunk, ["latent_lerp", "latent_slerp"], broken, 16, "float16", guard, ["a", "b"])


def test_a_model_that_is_not_finite_in_float32_fails_the_job_naming_the_triplets(frames_store, tmp_path):
    model_dir = _overflowing_vae(tmp_path / "nan-encoder", scale=float("nan"))
    with pytest.raises(encode.NonFiniteError, match=r"encoding .*frames\.zarr: .*12 of 12 frames.* even in float32: "
                                                    r"\w+ \(frame 1\), \w+ \(frame 2\)"):
        encode.encode_split(frames=frames_store, latents=tmp_path / "bad.zarr", split="train",
                            vae_run=VaeRun(model_dir, options={"dtype": "float16"}, batch_size=16, device="cpu"))
