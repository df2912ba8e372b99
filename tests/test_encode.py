import numpy as np
import pytest
import torch

from latent_interp import data, encode, store, vae
from latent_interp.settings import VaeRun
from conftest import file_digests, ingest_folder


@pytest.fixture
def frames_store(frame_tree, tmp_path):
    path = tmp_path / "frames.zarr"
    ingest_folder(frame_tree / "train", path, "train", size=32)
    return path


def test_encode_writes_unscaled_posterior_mean_and_logvar(frames_store, micro_vae_dir, tmp_path):
    out = tmp_path / "latents.zarr"
    encode.encode_split(frames=frames_store, latents=out, split="train",
                        vae_run=VaeRun(micro_vae_dir, batch_size=5, device="cpu"))
    group = store.open_store(out, "latents")
    mean, logvar = group[store.MEAN], group[store.LOGVAR]
    assert mean.shape == logvar.shape == (4, 3, 4, 4, 4) and mean.dtype == np.float32
    assert store.names(group) == store.names(store.open_store(frames_store))
    assert group.attrs["vae"]["sha256"] == vae.folder_digest(micro_vae_dir)
    assert group.attrs["preprocess"]["size"] == [32, 32]
    # The same numbers as calling the model directly, with no scaling factor applied.
    model, _ = vae.load_vae(micro_vae_dir)
    frames = store.open_store(frames_store)[store.FRAMES][1]
    with torch.no_grad():
        posterior = model.encode(torch.from_numpy(data.to_model_range(frames))).latent_dist
    np.testing.assert_allclose(mean[1], posterior.mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar[1], posterior.logvar.numpy(), rtol=1e-5, atol=1e-5)


def test_encode_is_the_same_streamed_in_small_chunks(frames_store, micro_vae_dir, tmp_path, monkeypatch):
    encode.encode_split(frames=frames_store, latents=tmp_path / "whole.zarr", split="train",
                        vae_run=VaeRun(micro_vae_dir, batch_size=16))
    monkeypatch.setattr(store, "CHUNK_BYTES", 3 * 4 * 4 * 4 * 4)  # one triplet a chunk
    encode.encode_split(frames=frames_store, latents=tmp_path / "chunked.zarr", split="train",
                        vae_run=VaeRun(micro_vae_dir, batch_size=2))
    whole = store.open_store(tmp_path / "whole.zarr")[store.MEAN][:]
    # Equal to float32 rounding, not bit for bit: oneDNN picks its convolution kernels by batch size, and sums in
    # another order (seen here: 1.2e-6 apart on a value of 0.0058 with batches of 2 and 12 frames).
    np.testing.assert_allclose(store.open_store(tmp_path / "chunked.zarr")[store.MEAN][:], whole, rtol=1e-4,
                               atol=1e-5)


def test_reconstruct_decodes_the_mean(frames_store, micro_vae_dir, tmp_path):
    latents = tmp_path / "latents.zarr"
    encode.encode_split(frames=frames_store, latents=latents, split="train", vae_run=VaeRun(micro_vae_dir))
    out = tmp_path / "recon.zarr"
    encode.reconstruct_split(latents=latents, recon=out, split="train", vae_run=VaeRun(micro_vae_dir, batch_size=4))
    group = store.open_store(out, "recon")
    assert group[store.FRAMES].shape == (4, 3, 32, 32, 3) and group[store.FRAMES].dtype == np.uint8
    assert store.names(group) == store.names(store.open_store(latents))
    model, _ = vae.load_vae(micro_vae_dir)
    mean = store.open_store(latents)[store.MEAN][0]
    with torch.no_grad():
        expected = data.to_uint8(model.decode(torch.from_numpy(mean)).sample.numpy())
    assert np.abs(group[store.FRAMES][0].astype(int) - expected).max() <= 1


def test_reconstruct_refuses_a_different_vae(frames_store, micro_vae_dir, tmp_path):
    latents = tmp_path / "latents.zarr"
    encode.encode_split(frames=frames_store, latents=latents, split="train", vae_run=VaeRun(micro_vae_dir))
    other = tmp_path / "other-vae"
    vae.build_vae(block_out_channels=(8, 16, 16, 16), norm_num_groups=4).save_pretrained(other)
    with pytest.raises(ValueError, match="not in the same latent space: encoder_sha256"):
        encode.reconstruct_split(latents=latents, recon=tmp_path / "recon.zarr", split="train", vae_run=VaeRun(other))


def _with_changed(part: str, base_dir, out_dir):
    """A copy of the model at ``base_dir`` with the weights of ``part`` (encoder or decoder) nudged."""
    model, _ = vae.load_vae(base_dir)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.startswith(part + "."):
                tensor.add_(0.01)
    model.save_pretrained(out_dir)
    return out_dir


def test_a_decoder_only_change_decodes_the_base_models_latents(frames_store, micro_vae_dir, tmp_path):
    """Equal encoders, equal latents: a decoder-only fine-tune reconstructs from its base's store (bench P8)."""
    latents = tmp_path / "latents.zarr"
    encode.encode_split(frames=frames_store, latents=latents, split="train", vae_run=VaeRun(micro_vae_dir))
    tuned = _with_changed("decoder", micro_vae_dir, tmp_path / "tuned")
    encode.reconstruct_split(latents=latents, recon=tmp_path / "recon.zarr", split="train", vae_run=VaeRun(tuned))
    recon = store.open_store(tmp_path / "recon.zarr", "recon")
    assert recon.attrs["vae"]["sha256"] != store.open_store(latents).attrs["vae"]["sha256"]
    assert recon.attrs["provenance"]["settings"]["decoded"] == f"the stored latents of {latents}"
    assert recon.attrs["vae"]["encoder_sha256"] == store.open_store(latents).attrs["vae"]["encoder_sha256"]


def test_an_encoder_change_is_refused(frames_store, micro_vae_dir, tmp_path):
    latents = tmp_path / "latents.zarr"
    encode.encode_split(frames=frames_store, latents=latents, split="train", vae_run=VaeRun(micro_vae_dir))
    tuned = _with_changed("encoder", micro_vae_dir, tmp_path / "tuned")
    with pytest.raises(ValueError, match="not in the same latent space: encoder_sha256"):
        encode.reconstruct_split(latents=latents, recon=tmp_path / "recon.zarr", split="train", vae_run=VaeRun(tuned))


@pytest.mark.parametrize("count", [2, 3])
def test_shards_gather_into_the_bytes_of_an_unsharded_run(frames_store, micro_vae_dir, tmp_path, monkeypatch, count):
    """Shards start on the whole store's chunk grid, so each micro-batch holds the same frames as unsharded."""
    monkeypatch.setattr(store, "CHUNK_BYTES", 3 * 4 * 4 * 4 * 4)  # one latent triplet a chunk: 4 chunks in train
    encode.encode_split(frames=frames_store, latents=tmp_path / "whole.zarr", split="train",
                        vae_run=VaeRun(micro_vae_dir, batch_size=2))
    encode.reconstruct_split(latents=tmp_path / "whole.zarr", recon=tmp_path / "whole-recon.zarr", split="train",
                             vae_run=VaeRun(micro_vae_dir, batch_size=2))
    latent_shards = [tmp_path / f"latents{i}.zarr" for i in range(count)]
    recon_shards = [tmp_path / f"recon{i}.zarr" for i in range(count)]
    for index, (latents, recon) in enumerate(zip(latent_shards, recon_shards)):
        encode.encode_split(frames=frames_store, latents=latents, split="train",
                            vae_run=VaeRun(micro_vae_dir, batch_size=2), shard=(index, count))
        encode.reconstruct_split(latents=tmp_path / "whole.zarr", recon=recon, split="train",
                                 vae_run=VaeRun(micro_vae_dir, batch_size=2), shard=(index, count))
    sizes = [store.open_store(path)[store.MEAN].shape[0] for path in latent_shards]
    assert sum(sizes) == 4 and sizes[0] < 4  # a real split of the rows
    store.gather(shards=latent_shards, store=tmp_path / "gathered.zarr")
    store.gather(shards=recon_shards, store=tmp_path / "gathered-recon.zarr")
    assert file_digests(tmp_path / "gathered.zarr") == file_digests(tmp_path / "whole.zarr")
    assert file_digests(tmp_path / "gathered-recon.zarr") == file_digests(tmp_path / "whole-recon.zarr")


def test_gather_refuses_missing_or_foreign_shards(frames_store, micro_vae_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(store, "CHUNK_BYTES", 3 * 4 * 4 * 4 * 4)
    shards = [tmp_path / f"latents{i}.zarr" for i in range(3)]
    for index, path in enumerate(shards):
        encode.encode_split(frames=frames_store, latents=path, split="train",
                            vae_run=VaeRun(micro_vae_dir, batch_size=2), shard=(index, 3))
    with pytest.raises(ValueError, match="latents0.zarr: expected shard 0 of 2 from row 0"):
        store.gather(shards=[shards[0], shards[2]], store=tmp_path / "gathered.zarr")
    encode.encode_split(frames=frames_store, latents=tmp_path / "other.zarr", split="train",
                        vae_run=VaeRun(micro_vae_dir, batch_size=4), shard=(1, 3))
    with pytest.raises(ValueError, match="other.zarr: attrs differ"):
        store.gather(shards=[shards[0], tmp_path / "other.zarr", shards[2]], store=tmp_path / "gathered.zarr")


@pytest.mark.parametrize("count, batch_size", [(84, 16), (16, 16), (17, 16), (1, 16), (0, 16), (100, 7)])
def test_batches_cover_every_frame_once_in_equal_sizes(count, batch_size):
    slices = encode.batch_slices(count, batch_size)
    covered = [i for batch in slices for i in range(count)[batch]]
    sizes = [batch.stop - batch.start for batch in slices]
    assert covered == list(range(count)) and len(slices) == -(-count // batch_size)
    assert all(0 < size <= batch_size for size in sizes) and (not sizes or max(sizes) - min(sizes) <= 1)


def test_pad_then_crop_is_exact_and_pads_by_reflection():
    x = torch.rand(2, 3, 54, 60)
    padded = encode.pad_to_multiple(x, 8)
    assert padded.shape == (2, 3, 56, 64)
    torch.testing.assert_close(padded[..., :54, :60], x, rtol=0, atol=0)  # the crop gives back every value
    torch.testing.assert_close(padded[..., 54, :60], x[..., 52, :])  # reflect: row 54 mirrors row 52
    assert encode.pad_to_multiple(x[..., :48, :56], 8).shape == (2, 3, 48, 56)  # multiples are left alone
    with pytest.raises(ValueError, match="preprocess.size"):
        encode.pad_to_multiple(torch.rand(1, 3, 6, 64), 8)


def test_a_960x540_frame_comes_back_960x540(micro_vae_dir):
    model, record = vae.load_vae(micro_vae_dir)
    frame = np.random.default_rng(0).integers(0, 256, (1, 540, 960, 3), dtype=np.uint8)
    means, _ = encode.encode_frames(model, frame, torch.device("cpu"), batch_size=1)
    assert means.shape == (1, record["latent_channels"], 68, 120)  # 544 / 8 rows: the pad is encoded
    decoded = encode.decode_latents(model, means, torch.device("cpu"), 1, frame_size=(540, 960))
    assert decoded.shape == (1, 540, 960, 3)


def test_a_non_square_store_is_encoded_padded_and_reconstructed_at_its_size(frame_tree, micro_vae_dir, tmp_path):
    frames_path = tmp_path / "frames.zarr"
    ingest_folder(frame_tree / "train", frames_path, "train", size=[40, 20])
    encode.encode_split(frames=frames_path, latents=tmp_path / "latents.zarr", split="train",
                        vae_run=VaeRun(micro_vae_dir, batch_size=4, device="cpu"))
    latents = store.open_store(tmp_path / "latents.zarr", "latents")
    assert latents[store.MEAN].shape[-2:] == (3, 5)  # 20 -> 24 rows, 40 columns, over 8
    assert latents.attrs["vae_pad"]["frame_size"] == [20, 40] and latents.attrs["vae_pad"]["padded_size"] == [24, 40]
    encode.reconstruct_split(latents=tmp_path / "latents.zarr", recon=tmp_path / "recon.zarr", split="train",
                             vae_run=VaeRun(micro_vae_dir, batch_size=4, device="cpu"))
    recon = store.open_store(tmp_path / "recon.zarr", "recon")[store.FRAMES]
    assert recon.shape == (4, 3, 20, 40, 3)
