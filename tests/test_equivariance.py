"""Equivariance of a latent space to shifts (latent_interp.equivariance)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from latent_interp import encode, equivariance, flow, store
from latent_interp.settings import VaeRun
from conftest import ingest_folder


def test_the_shifts_cover_sub_cell_whole_cell_and_beyond():
    assert equivariance.shifts_for(8) == [1, 2, 4, 8, 16]
    assert equivariance.shifts_for(16) == [1, 2, 4, 8, 16, 32]
    assert equivariance.margin_cells(8, 32) == 4 and equivariance.margin_cells(8, 4) == 1  # a tiny grid keeps a core


def test_shifting_frames_moves_their_content_right_and_down():
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    frames[0, 2, 3] = 255
    assert equivariance.shift_frames(frames, 2, "x")[0, 2, 5].all()
    assert equivariance.shift_frames(frames, 1, "y")[0, 3, 3].all()


@pytest.mark.parametrize("downsampling", [4, 8])
def test_a_convolutional_encoder_without_padding_effects_is_exactly_equivariant_to_shifts_by_f(downsampling):
    """A patchify encoder (a convolution of kernel and stride f, circular images): a shift by f pixels is a shift by
    one cell of its latent, as the moved latent says; half a cell is not."""
    torch.manual_seed(0)
    encoder = torch.nn.Conv2d(3, 4, downsampling, stride=downsampling)
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 8 * downsampling, 8 * downsampling, 3), dtype=np.uint8)

    def encode_frames(images):
        with torch.no_grad():
            return encoder(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).numpy()

    base = encode_frames(frames)
    margin = equivariance.margin_cells(downsampling, base.shape[-1])
    for direction in ("x", "y"):
        whole = encode_frames(equivariance.shift_frames(frames, downsampling, direction))
        moved = equivariance.move_latents(base, 1.0, direction)
        np.testing.assert_allclose(equivariance._interior(moved, margin), equivariance._interior(whole, margin),
                                   atol=1e-5)
        half = encode_frames(equivariance.shift_frames(frames, downsampling // 2, direction))
        error = equivariance.relative_error(equivariance._interior(equivariance.move_latents(base, 0.5, direction),
                                                                   margin),
                                            equivariance._interior(half, margin), float(base.var()))
        assert (error > 0.05).all()  # random texture: half a cell is no bilinear mix of two cells


def test_the_stage_writes_its_curve_triplets_and_summary(frame_tree, micro_vae_dir, tmp_path):
    ingest_folder(frame_tree / "val", tmp_path / "frames.zarr", "val", size=32)
    encode.encode_split(frames=tmp_path / "frames.zarr", latents=tmp_path / "latents.zarr", split="val",
                        vae_run=VaeRun(micro_vae_dir, device="cpu"))
    flow.compute_split_flow(frames=tmp_path / "frames.zarr", flow=tmp_path / "flow.zarr", table=tmp_path / "flow.csv",
                            split="val")
    outputs = {name: tmp_path / file for name, file in (("curve", "e.csv"), ("frames", "f.csv"),
                                                         ("triplets", "t.csv"), ("summary", "e.json"),
                                                         ("layers", "l.csv"))}
    stores = dict(frames=tmp_path / "frames.zarr", latents=tmp_path / "latents.zarr", flow=tmp_path / "flow.zarr")
    written = equivariance.EquivarianceOutputs(curve=outputs["curve"], per_frame=outputs["frames"],
                                               triplets=outputs["triplets"], summary=outputs["summary"],
                                               layers=outputs["layers"])
    result = equivariance.analyse_equivariance(**stores, outputs=written, model="micro", shifted_frames=2,
                                               vae_run=VaeRun(micro_vae_dir, device="cpu"))
    curve = pd.read_csv(outputs["curve"])
    assert list(curve.columns) == equivariance.SHIFT_COLUMNS and len(curve) == 2 * 5
    assert curve["whole_cells"].tolist() == [False, False, False, True, True] * 2 and (curve["frames"] == 2).all()
    assert np.isfinite(curve[["latent_error", "moved_psnr", "reencoded_psnr"]].to_numpy()).all()
    per_frame = pd.read_csv(outputs["frames"])
    assert list(per_frame.columns) == equivariance.FRAME_COLUMNS and len(per_frame) == 2 * len(curve)
    means = per_frame.groupby(["shift_px", "direction"], sort=False)["latent_error"].mean().to_numpy()
    np.testing.assert_allclose(means, curve["latent_error"], rtol=1e-4)  # the curve is the frames' mean
    triplets = pd.read_csv(outputs["triplets"])
    names = store.names(store.open_store(tmp_path / "frames.zarr"))
    assert list(triplets.columns) == equivariance.TRIPLET_COLUMNS and triplets["triplet"].tolist() == names
    assert (triplets["warped_error"] >= 0).all() and (triplets["unwarped_error"] > 0).all()
    assert json.loads(outputs["summary"].read_text())["subcell"] == result["subcell"]
    assert result["settings"]["margin_cells"] == 1 and result["vae"]["downsampling"] == 8
    layers = pd.read_csv(outputs["layers"])  # 4 encoder and 4 decoder levels, 4 shifts, 2 directions
    assert list(layers.columns) == equivariance.LAYER_COLUMNS and len(layers) == 8 * 4 * 2
    assert layers.groupby("part")["stride"].unique().map(list).to_dict() == {"encoder": [1, 2, 4, 8],
                                                                               "decoder": [8, 4, 2, 1]}
    assert (layers["error"] >= 0).all() and sorted(layers["depth"].unique()) == list(range(8))
    assert layers["whole_cells"].equals(layers["shift_px"] % layers["stride"] == 0)
    assert set(result["layers"]) == {"1px", "2px", "4px"} and result["settings"]["layer_shifts_px"] == [1, 2, 4, 8]
    assert result["layers"]["1px"]["largest_rise_at"].startswith(("encoder ", "decoder "))
    assert result["layers"]["1px"]["first_lost_at"] is None or result["layers"]["1px"]["first_lost_at"].startswith(
        ("encoder ", "decoder "))
    with pytest.raises(ValueError, match="equivariance_frames"):
        equivariance.analyse_equivariance(**stores, outputs=written, model="micro", shifted_frames=0,
                                          vae_run=VaeRun(micro_vae_dir, device="cpu"))
