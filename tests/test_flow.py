"""The flow stage and the warps the motion methods share (latent_interp.flow, latent_interp.warp): known answers."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from latent_interp import data, flow, interp, store, synthetic, warp
from conftest import ingest_folder


def textured(size=96, seed=0, feature=12) -> np.ndarray:
    """A smooth random texture (uint8 grey) with features of about ``feature`` px, what DIS locks onto everywhere
    (finer texture makes a motion of more than a feature ambiguous)."""
    noise = np.random.default_rng(seed).random((size // feature, size // feature))
    return np.asarray(Image.fromarray((noise * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC))


@pytest.mark.parametrize("dx, dy", [(3, 0), (0, -2), (4, 5)])
def test_dis_flow_of_a_translated_texture_is_the_translation(dx, dy):
    """Tolerance: the median end-point error inside (8 px from the borders, where content leaves) is below 0.1 px,
    and 95% of the pixels are within 0.5 px."""
    image = textured()
    moved = np.roll(image, (dy, dx), axis=(0, 1))  # content at p is at p + (dx, dy) in the second image
    found = flow.estimator({"method": "dis", "preset": "medium"})(image, moved)[8:-8, 8:-8]
    error = np.hypot(found[..., 0] - dx, found[..., 1] - dy)
    assert np.median(error) < 0.1 and np.quantile(error, 0.95) < 0.5


def test_farneback_is_selectable_and_finds_the_same_motion():
    image = textured()
    found = flow.estimator({"method": "farneback"})(image, np.roll(image, 2, axis=1))[12:-12, 12:-12]
    assert np.median(found[..., 0]) == pytest.approx(2, abs=0.1) and np.median(np.abs(found[..., 1])) < 0.1


def test_unknown_flow_settings_name_their_key():
    with pytest.raises(ValueError, match="flow.method"):
        flow.estimator({"method": "raft"})
    with pytest.raises(ValueError, match="flow.preset"):
        flow.estimator({"preset": "slow"})


def test_zero_flow_leaves_frames_and_latents_unchanged():
    generator = torch.Generator().manual_seed(0)
    for tensor in (torch.rand(2, 3, 16, 16, generator=generator), torch.randn(2, 4, 5, 7, generator=generator)):
        zero = torch.zeros(len(tensor), 2, *tensor.shape[2:])
        torch.testing.assert_close(warp.backward_warp(tensor, zero), tensor, rtol=0, atol=1e-6)
        half = torch.full_like(tensor[:, :1], 0.5)
        torch.testing.assert_close(warp.warp_blend(tensor, tensor, zero, zero, half), tensor, rtol=0, atol=1e-6)


def test_a_latent_moved_by_a_whole_cell_is_a_roll():
    latents = torch.randn(2, 4, 6, 8, generator=torch.Generator().manual_seed(1))
    right = torch.zeros(2, 2, 6, 8)
    right[:, 0] = -1  # out(p) = z(p - 1 cell): the content moves one cell right
    moved = warp.backward_warp(latents, right)
    torch.testing.assert_close(moved[..., 1:], torch.roll(latents, 1, dims=-1)[..., 1:], rtol=0, atol=1e-6)
    torch.testing.assert_close(moved[..., 0], latents[..., 0])  # border padding: the edge column repeats


def test_intermediate_flows_at_the_middle_are_a_quarter_of_the_end_flows():
    flow_13, flow_31 = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    to_1, to_3 = warp.intermediate_flows(flow_13, flow_31)
    torch.testing.assert_close(to_1, 0.25 * (flow_31 - flow_13))
    torch.testing.assert_close(to_3, 0.25 * (flow_13 - flow_31))


def test_the_consistency_check_flags_an_occluded_region():
    flow_ab = np.zeros((8, 8, 2), np.float32)
    flow_ba = np.zeros((8, 8, 2), np.float32)
    flow_ba[2:4, 2:4] = 5.0  # b's flow disagrees there: a's pixels there do not come back
    consistent = flow.consistency(flow_ab, flow_ba)
    assert (consistent[2:4, 2:4] == 0).all() and consistent.sum() == 64 - 4


def test_the_flow_stage_warps_as_the_methods_do():
    """flow.remap (OpenCV, for the stage's masks) and warp.backward_warp (torch, for the methods) sample the same
    points: equal within what OpenCV's 1/32 px rounding of the position makes of a smooth image."""
    image = textured(64).astype(np.float32) / 255
    moved = np.random.default_rng(0).normal(0, 3, size=(64, 64, 2)).astype(np.float32)
    opencv = flow.remap(image, moved)
    torch_warp = warp.backward_warp(torch.from_numpy(image)[None, None], torch.from_numpy(moved).permute(2, 0, 1)[None])
    assert np.abs(opencv - torch_warp[0, 0].numpy()).max() < 0.01


def test_pixel_flow_lands_a_translated_square_at_the_midpoint():
    """A textured square moves 8 px right between frames 1 and 3 over a still textured background: the in-between
    holds it 4 px on, where frame 2 has it, and the blend of the two (two ghosts) is far worse."""
    background, patch = textured(96, seed=1), textured(96, seed=2)[:32, :32]

    def frame(x):
        image = background.copy()
        image[30:62, x:x + 32] = patch
        return np.repeat(image[..., None], 3, axis=-1)

    triplet = np.stack([frame(20), frame(24), frame(28)])[None]
    record = flow.triplet_record(triplet[0], flow.estimator({}), flow.settings_with_defaults({}))
    rows = {name: record[name][None] for name in flow.ARRAYS}
    chunk = interp.Chunk(triplet, triplet, np.zeros((1, 3, 4, 8, 8), np.float32), rows, {}, torch.device("cpu"),
                         flow.settings_with_defaults({}))
    middle = interp.REGISTRY["pixel_flow"].predict(chunk)[0].astype(float)
    truth, blend = triplet[0, 1].astype(float), interp.pixel_blend(triplet[:, 0], triplet[:, 2])[0].astype(float)
    assert np.abs(middle - truth).mean() < 0.35 * np.abs(blend - truth).mean()
    inside = np.abs(middle - truth)[34:58, 28:52].mean()  # the square's inside, away from its edges
    assert inside < 1  # grey levels: the square is where frame 2 has it


def test_the_flow_stage_writes_its_store_and_table_and_reruns_to_the_same_bytes(frame_tree, tmp_path):
    from conftest import file_digests

    ingest_folder(frame_tree / "val", tmp_path / "frames.zarr", "val", size=32)
    for name in ("a", "b"):
        table = flow.compute_split_flow(frames=tmp_path / "frames.zarr", flow=tmp_path / f"{name}.zarr",
                                        table=tmp_path / f"{name}.csv", split="val")
    assert file_digests(tmp_path, "a.zarr") == {k.replace("b.zarr", "a.zarr"): v
                                                for k, v in file_digests(tmp_path, "b.zarr").items()}
    group = store.open_store(tmp_path / "a.zarr", "flow")
    assert store.names(group) == table["triplet"].tolist() and (table["status"] == "ok").all()
    assert table["motion_px"].gt(0).all() and table["consistent_share"].between(0, 1).all()
    np.testing.assert_allclose(group["motion_px"][:], table["motion_px"], rtol=1e-5)
    assert group.attrs["flow"] == flow.settings_with_defaults({}) and "versions" in group.attrs["provenance"]


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_a_flow_that_is_not_finite_is_named_or_listed_never_scored_as_still(frame_tree, tmp_path, monkeypatch,
                                                                            on_error):
    ingest_folder(frame_tree / "val", tmp_path / "frames.zarr", "val", size=32)
    names = store.names(store.open_store(tmp_path / "frames.zarr"))
    calls = {"count": 0}
    real = flow.estimator

    def broken(settings):
        estimate = real(settings)

        def first_triplet_fails(a, b):
            calls["count"] += 1
            found = estimate(a, b)
            return found * np.nan if calls["count"] <= len(flow.PAIRS) * 2 else found  # the first triplet's flows
        return first_triplet_fails

    monkeypatch.setattr(flow, "estimator", broken)
    if on_error == "fail":
        with pytest.raises(flow.FlowFailed, match=names[0]):
            flow.compute_split_flow(frames=tmp_path / "frames.zarr", flow=tmp_path / "f.zarr",
                                    table=tmp_path / "f.csv", split="val", on_error="fail")
        return
    table = flow.compute_split_flow(frames=tmp_path / "frames.zarr", flow=tmp_path / "f.zarr",
                                    table=tmp_path / "f.csv", split="val")
    group = store.open_store(tmp_path / "f.zarr", "flow")
    assert table["status"].iloc[0].startswith("skipped") and (table["status"].iloc[1:] == "ok").all()
    assert not group["ok"][0] and np.isnan(group["motion_px"][0]) and np.isnan(table["motion_px"].iloc[0])
    assert pd.read_csv(tmp_path / "f.csv")["status"].iloc[0].startswith("skipped")


def test_the_demo_flow_matches_the_drawings_true_motion():
    """End-point error of DIS (medium) inside the drawn shapes, against the motion the generator knows, on demo
    test triplets at the demo's 128 px: a median of at most 2 px where shapes translate (the flow may smear at
    their edges and on flat colour, which is why the methods keep a still mask and occlusion weights)."""
    specs = synthetic.triplet_specs(0, "test", 8)
    estimate = flow.estimator({})
    errors = {}
    for spec in specs:
        frames = [data.preprocess_frame(Image.fromarray(f), 128) for f in synthetic.render_triplet(spec, 256, 144)]
        truth, known = synthetic.true_motion(spec, 256, 144, 128)
        found = estimate(flow.grey(frames[0]), flow.grey(frames[2]))
        errors.setdefault(spec.motion, []).append(np.hypot(*(found - truth)[known].T))
    translation = np.concatenate(errors["translation"])
    assert np.median(translation) < 2.0 and len(translation) > 500


def test_true_motion_moves_each_shape_rigidly():
    spec = next(s for s in synthetic.triplet_specs(0, "test", 8) if s.motion == "translation")
    truth, known = synthetic.true_motion(spec, 256, 144, 64)
    assert known.any() and not known.all()  # inside the shapes only
    shifts = {tuple(np.round(v, 3)) for v in truth[known]}
    assert len(shifts) <= 4  # one translation per shape (2 to 4 shapes)
    # and it is the drawing's motion: frame 3 sampled where the flow points holds frame 1's colours
    frames = [data.preprocess_frame(Image.fromarray(f), 64).astype(np.float32)
              for f in synthetic.render_triplet(spec, 256, 144)]
    moved = np.abs(flow.remap(frames[2], truth) - frames[0]).mean(-1)[known]
    still = np.abs(frames[2] - frames[0]).mean(-1)[known]
    assert np.median(moved) < 8 and np.median(moved) < 0.25 * np.median(still)  # measured 2.9 against 85


def test_the_reports_data_section_lists_the_motion_and_every_failed_flow(tmp_path):
    from latent_interp.report import context, data as data_section
    from latent_interp.report.context import ReportInputs

    pd.DataFrame({"split": "test", "triplet": ["a", "b", "c"], "origin": "Disney", "motion_px": [1.0, 2.0, np.nan],
                  "motion_max_px": [3.0, 4.0, np.nan], "consistent_share": [0.5, 0.7, np.nan],
                  "warp_error": [0.1, 0.2, np.nan],
                  "status": ["ok", "ok", "skipped: a flow was not finite"]}).to_csv(tmp_path / "test.csv", index=False)
    inputs = ReportInputs(config={}, models=[], splits=["test"], frames={}, skipped={}, recon={}, latents={},
                          metric_tables={}, metrics_summary="", metrics_spec="", collapse={},
                          flow_tables={"test": tmp_path / "test.csv"})
    ctx = context.Context(inputs, tmp_path / "figures", tmp_path / "report.html")
    try:
        found = data_section.motion_tables(ctx)
    finally:
        ctx.figures.close()
    (row,) = found["motion"].rows
    assert [cell.text for cell in row] == ["test", "3", "1.50", "1.90", "0.600", "1"] and row[-1].tone == "bad"
    assert [cell.text for cell in found["flow_failed"].rows[0]] == ["test", "c", "skipped: a flow was not finite"]
