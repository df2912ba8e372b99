import json

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from latent_interp import collapse, metrics, store, synthetic
from conftest import random_images


def _jpeg_degraded(frame: np.ndarray, quality: int) -> np.ndarray:
    import io

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def _reference(truth, rec):
    """The seed's formulas, written out: float images in [0, 1], skimage's own calls."""
    a, b = truth / 255.0, rec / 255.0
    return (((a - b) ** 2).mean(), peak_signal_noise_ratio(a, b, data_range=1.0),
            structural_similarity(a, b, win_size=7, channel_axis=-1, data_range=1.0))


def _mse_psnr_by_hand(truth, rec):
    mse = ((truth.astype(np.float64) - rec) ** 2).mean() / 255.0**2
    return mse, 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("kind", ["random", "cartoon"])
def test_image_metrics_match_the_seed_settings(kind):
    if kind == "random":
        truth, rec = random_images(2, 48, seed=3)
    else:  # real-looking: a synthetic cartoon frame against its JPEG-degraded copy
        truth = synthetic.render_triplet(synthetic.triplet_specs(0, "val", 1)[0], 64, 64)[0]
        rec = _jpeg_degraded(truth, 20)
    mse, psnr, ssim = metrics.image_metrics(truth, rec)
    ref_mse, ref_psnr, ref_ssim = _reference(truth, rec)
    assert abs(mse - ref_mse) < 1e-9 and abs(psnr - ref_psnr) < 1e-5 and abs(ssim - ref_ssim) < 1e-5
    hand_mse, hand_psnr = _mse_psnr_by_hand(truth, rec)
    assert mse == pytest.approx(hand_mse, rel=1e-12) and psnr == pytest.approx(hand_psnr, rel=1e-9)
    assert 0 < ssim < 1


def test_identical_images_have_infinite_psnr_and_unit_ssim():
    image = random_images(1, 16)[0]
    mse, psnr, ssim = metrics.image_metrics(image, image)
    assert mse == 0 and psnr == np.inf and ssim == pytest.approx(1.0)


def _pair_of_stores(tmp_path, names, recon_names=None, seed=0):
    truth = random_images(len(names) * 3, 16, seed).reshape(len(names), 3, 16, 16, 3)
    noisy = np.clip(truth.astype(int) + np.random.default_rng(seed + 1).integers(-20, 21, truth.shape), 0, 255)
    paths = []
    for kind, values, store_names in (("frames", truth, names), ("recon", noisy.astype(np.uint8),
                                                                  recon_names or names)):
        path = tmp_path / f"{kind}.zarr"
        group = store.create(path, kind, "val", {}, store_names, ["Disney", "Japan"] * (len(names) // 2))
        store.add_array(group, store.FRAMES, (3, 16, 16, 3), np.uint8)[:] = values
        store.seal(group)
        paths.append(path)
    return paths, truth, noisy


def test_split_table_rows_columns_and_spec(tmp_path):
    (frames, recon), truth, noisy = _pair_of_stores(tmp_path, ["a", "b", "c", "d"])
    table = metrics.compute_split_metrics(frames=frames, recon=recon, model="pretrained", split="val",
                                          outputs=metrics.MetricsOutputs(tmp_path / "t.csv", tmp_path / "t.json"))
    assert list(table.columns) == metrics.TABLE_COLUMNS and len(table) == 12
    row = table.query("triplet == 'c' and frame == 2").iloc[0]
    assert row.origin == "Disney"
    assert row.psnr == pytest.approx(_reference(truth[2, 1], noisy[2, 1])[1], abs=1e-5)
    assert pd.read_csv(tmp_path / "t.csv").shape == (12, 8)
    spec = json.loads((tmp_path / "t.json").read_text())
    assert "win_size=7" in spec["ssim"] and "scikit-image" in spec["versions"]


def test_stores_with_different_names_are_refused(tmp_path):
    (frames, recon), _, _ = _pair_of_stores(tmp_path, ["a", "b"], recon_names=["a", "z"])
    with pytest.raises(ValueError, match="hold different triplets"):
        metrics.compute_split_metrics(frames=frames, recon=recon, model="m", split="val",
                                      outputs=metrics.MetricsOutputs(tmp_path / "t.csv", tmp_path / "t.json"))


@pytest.mark.parametrize("kind", ["random", "cartoon", "identical"])
def test_torch_metrics_equal_skimage_to_1e_5(kind):
    """The GPU engine's formulas, run here on the CPU in float64: the same numbers as skimage's per-image calls."""
    import torch

    if kind == "cartoon":
        truth = np.stack(synthetic.render_triplet(synthetic.triplet_specs(0, "val", 1)[0], 64, 48))
        rec = np.stack([_jpeg_degraded(frame, 20) for frame in truth])
    else:
        truth, rec = random_images(3, 40, seed=5)[:2], random_images(3, 40, seed=6)[:2]
        rec = truth.copy() if kind == "identical" else rec
    values = metrics.torch_image_metrics(truth, rec, torch.device("cpu"))
    for index in range(len(truth)):
        expected = metrics.image_metrics(truth[index], rec[index])
        np.testing.assert_allclose(values[index], expected, rtol=0, atol=1e-5)
        assert (values[index][1] == np.inf) == (kind == "identical")


@pytest.mark.parametrize("workers, device", [(2, "cpu"), (1, "torch-on-cpu")])
def test_every_engine_writes_the_same_table(tmp_path, monkeypatch, workers, device):
    """A process pool (2 workers, chunks of 1 triplet so that many are in flight) and the torch engine, forced onto
    the CPU here, give the single-process rows, in the same order, RoI columns included."""
    (frames, recon), _, _ = _pair_of_stores(tmp_path, ["a", "b", "c", "d", "e", "f"])
    group = zarr.open_group(str(frames), mode="r+")
    store.write_annotations(group, [{"level": 0, "general_motion_type": "rotation", "behavior": "walking",
                                     "motion_roi": [8, 4, 24, 12], "image_size": [64, 32]}] * 6)
    reference = metrics.compute_split_metrics(frames=frames, recon=recon, model="m", split="test", outputs=(
        metrics.MetricsOutputs(tmp_path / "one.csv", tmp_path / "one.json")))
    monkeypatch.setattr(store, "CHUNK_BYTES", 1)
    if device == "torch-on-cpu":  # the GPU engine's code path, with its device resolved to the CPU
        import torch

        monkeypatch.setattr(metrics, "torch_engine_device", lambda device: torch.device("cpu"))
    table = metrics.compute_split_metrics(frames=frames, recon=recon, model="m", split="test", threads=workers,
                                          outputs=metrics.MetricsOutputs(tmp_path / "t.csv", tmp_path / "t.json"),
                                          device="cpu")
    numeric = ["mse", "psnr", "ssim", *metrics.ROI_COLUMNS]
    assert table.drop(columns=numeric).equals(reference.drop(columns=numeric))
    np.testing.assert_allclose(table[numeric].to_numpy(), reference[numeric].to_numpy(), rtol=0, atol=1e-5)


def _table(psnr_values, model="m"):
    rows = []
    for i, psnr in enumerate(psnr_values):
        mse = 10 ** (-psnr / 10)
        rows.append(dict(model=model, split="val", triplet=f"t{i // 3}", origin=["Disney", "Japan"][(i // 3) % 2],
                         frame=i % 3 + 1, mse=mse, psnr=psnr, ssim=0.5 + i / 100))
    return pd.DataFrame(rows)


def test_summary_means_pooled_psnr_and_intervals():
    psnrs = list(np.random.default_rng(0).uniform(20, 35, size=30))
    table = _table(psnrs)
    summary = metrics.summarize([table], resamples=500, seed=0)
    overall = summary.query("split == 'all' and origin == 'all'").iloc[0]
    assert overall.n_images == 30 and overall.n_triplets == 10
    assert overall.psnr == pytest.approx(np.mean(psnrs))
    assert overall.psnr_pooled == pytest.approx(10 * np.log10(1 / table["mse"].mean()))
    assert overall.psnr_pooled < overall.psnr  # Jensen: the pooled figure is the lower one
    for name in ("psnr", "psnr_pooled", "ssim"):
        assert getattr(overall, f"{name}_ci_low") < getattr(overall, name) < getattr(overall, f"{name}_ci_high")
    assert set(summary["origin"]) == {"Disney", "Japan", "all"}
    again = metrics.summarize([table], resamples=500, seed=0)
    pd.testing.assert_frame_equal(summary, again)


def test_interval_narrows_with_more_triplets():
    rng = np.random.default_rng(1)
    small = metrics.summarize_group(_table(rng.normal(30, 3, 30)), resamples=400)
    large = metrics.summarize_group(_table(rng.normal(30, 3, 600)), resamples=400)
    assert large["psnr_ci_high"] - large["psnr_ci_low"] < small["psnr_ci_high"] - small["psnr_ci_low"]


def test_infinite_psnr_is_left_out_of_the_mean_not_the_pool():
    table = _table([30.0, 40.0, 50.0])
    table.loc[0, ["psnr", "mse"]] = [np.inf, 0.0]
    row = metrics.summarize_group(table, resamples=10)
    assert row["psnr"] == pytest.approx(45.0)
    assert row["psnr_pooled"] == pytest.approx(10 * np.log10(3 / (1e-4 + 1e-5)))


def test_roi_box_rescales_and_grows_to_the_ssim_window():
    annotation = pd.Series({"roi_x": 480, "roi_y": 270, "roi_w": 240, "roi_h": 135, "image_width": 960,
                            "image_height": 540})
    assert metrics.roi_box(annotation, (32, 32)) == ((16, 24), (16, 24))
    tiny = annotation.copy()
    tiny[["roi_x", "roi_y", "roi_w", "roi_h"]] = [950, 530, 5, 5]  # a corner speck
    (top, bottom), (left, right) = metrics.roi_box(tiny, (32, 32))
    assert bottom - top == 7 and right - left == 7 and bottom == 32 and right == 32


def test_annotated_split_gets_roi_metrics_and_levels(tmp_path):
    (frames, recon), truth, noisy = _pair_of_stores(tmp_path, ["a", "b", "c", "d"])
    group = zarr.open_group(str(frames), mode="r+")
    store.write_annotations(group, [{"level": level, "general_motion_type": "rotation", "behavior": "walking",
                                     "motion_roi": [8, 4, 24, 12], "image_size": [64, 32]}
                                    for level in (0, 1, 2, 2)])
    table = metrics.compute_split_metrics(frames=frames, recon=recon, model="m", split="test",
                                          outputs=metrics.MetricsOutputs(tmp_path / "t.csv", tmp_path / "t.json"))
    assert list(table.columns) == metrics.TABLE_COLUMNS + metrics.ROI_COLUMNS + metrics.ANNOTATION_COLUMNS
    row = table.query("triplet == 'b' and frame == 3").iloc[0]
    assert row.level == 1 and row.behavior == "walking"
    # RoI x 8..32, y 4..16 of a 64x32 original is columns 2..8 and rows 2..8 of the 16x16 frame.
    (top, bottom), (left, right) = metrics.roi_box(store.read_annotations(store.open_store(frames)).iloc[1], (16, 16))
    assert (top, bottom, left, right) == (1, 9, 1, 9)  # 6 px, grown a pixel each side to reach SSIM's 7
    expected = metrics.image_metrics(truth[1, 2, top:bottom, left:right],
                                     noisy[1, 2, top:bottom, left:right].astype(np.uint8))
    assert (row.roi_mse, row.roi_psnr, row.roi_ssim) == pytest.approx(expected)
    summary = metrics.summarize([table], resamples=20)
    levels = summary[summary.level != "all"]
    assert sorted(levels.level) == ["0", "1", "2"] and levels.set_index("level").loc["2", "n_triplets"] == 2
    assert summary.query("split == 'all'").roi_psnr.notna().all()


def _recon_store(path, frames_path, values):
    source = store.open_store(frames_path)
    group = store.create(path, "recon", "val", {}, store.names(source), store.origins(source))
    store.add_array(group, store.FRAMES, values.shape[1:], np.uint8)[:] = values
    store.seal(group)


def test_collapse_check_flags_a_constant_model_and_passes_a_good_one(tmp_path):
    (frames, recon), truth, noisy = _pair_of_stores(tmp_path, ["a", "b", "c", "d", "e", "f"])
    good = collapse.collapse_check(frames=frames, recon=recon, figures=tmp_path / "good.json")
    assert not good["collapsed"] and good["variance_ratio"] > 0.5 and good["psnr_gain_db"] > 3
    assert json.loads((tmp_path / "good.json").read_text())["collapsed"] is False
    # A decoder fed a constant: every reconstruction is the average image.
    average = np.broadcast_to(np.rint(truth.mean(axis=(0, 1))).astype(np.uint8), truth.shape)
    _recon_store(tmp_path / "collapsed.zarr", frames, average)
    collapsed = collapse.collapse_check(frames=frames, recon=tmp_path / "collapsed.zarr")
    assert collapsed["collapsed"] and collapsed["variance_ratio"] < 1e-6
    assert abs(collapsed["psnr_gain_db"]) < 0.1  # no better than predicting the mean image
    # The baseline is exactly the PSNR of the mean image as prediction.
    flat = truth.reshape(-1, 16, 16, 3) / 255.0
    expected = 10 * np.log10(1 / ((flat - flat.mean(axis=0)) ** 2).mean())
    assert good["mean_image_psnr"] == pytest.approx(expected)


def test_comparison_pairs_images_and_bounds_the_difference():
    rng = np.random.default_rng(2)
    base_psnr = rng.uniform(20, 35, size=60)
    gain = rng.normal(0.5, 0.2, size=60)  # most images a little better
    tables = pd.concat([_table(base_psnr, "pretrained"), _table(base_psnr + gain, "finetuned")])
    other = _table(base_psnr - 1.0, "other")
    comparison = metrics.compare_models(pd.concat([tables, other]), [("finetuned", "pretrained"),
                                                                     ("other", "finetuned")], resamples=500)
    assert list(comparison.columns) == metrics.COMPARISON_COLUMNS
    assert list(comparison.query("split == 'all'")["baseline"]) == ["pretrained", "finetuned"]  # one row a pair
    assert comparison.query("model == 'other' and split == 'all'")["psnr_diff"].iloc[0] == pytest.approx(
        -1.0 - gain.mean())
    row = comparison.query("split == 'all'").iloc[0]
    assert (row.model, row.baseline, row.n_images) == ("finetuned", "pretrained", 60)
    assert row.psnr_diff == pytest.approx(gain.mean()) and row.psnr == pytest.approx((base_psnr + gain).mean())
    assert 0 < row.psnr_diff_ci_low < row.psnr_diff < row.psnr_diff_ci_high
    assert row.psnr_improved_share == pytest.approx((gain > 0).mean())
    # Pairing: the spread of the images' PSNR (std ~4 dB) does not widen the interval of a ~0.5 dB gain.
    assert row.psnr_diff_ci_high - row.psnr_diff_ci_low < 0.3
    assert metrics.compare_models(_table(base_psnr, "pretrained"), []).empty  # nothing to compare with


def test_shard_tables_gather_into_the_bytes_of_one_table(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "CHUNK_BYTES", 2 * 3 * 16 * 16 * 3)  # two triplets a chunk
    (frames, recon), _, _ = _pair_of_stores(tmp_path, [f"t{i}" for i in range(6)])
    metrics.compute_split_metrics(frames=frames, recon=recon, model="m", split="val",
                                  outputs=metrics.MetricsOutputs(tmp_path / "whole.csv", tmp_path / "whole.json"))
    tables, specs = [], []
    for index in range(3):
        tables.append(tmp_path / f"shard{index}.csv")
        specs.append(tmp_path / f"shard{index}.json")
        metrics.compute_split_metrics(frames=frames, recon=recon, outputs=metrics.MetricsOutputs(tables[-1], specs[-1]),
                                      model="m", split="val", shard=(index, 3))
    assert [len(pd.read_csv(table)) for table in tables] == [6, 6, 6]  # 2 triplets x 3 frames each
    metrics.gather_tables(tables=tables, specs=specs, table=tmp_path / "gathered.csv",
                          spec=tmp_path / "gathered.json")
    assert (tmp_path / "gathered.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "gathered.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


def _direct_ssim(a: np.ndarray, b: np.ndarray, data_range: float, win: int = 7) -> float:
    """SSIM written out window by window: every win x win window inside the image (sample variances and covariance,
    ddof 1), per channel, then the mean over windows and channels (Wang et al. 2004; skimage's uniform-window SSIM)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    per_channel = []
    for channel in range(a.shape[2]):
        x = np.lib.stride_tricks.sliding_window_view(a[..., channel].astype(np.float64), (win, win))
        y = np.lib.stride_tricks.sliding_window_view(b[..., channel].astype(np.float64), (win, win))
        x, y = x.reshape(*x.shape[:2], -1), y.reshape(*y.shape[:2], -1)
        mx, my = x.mean(-1), y.mean(-1)
        vx, vy = x.var(-1, ddof=1), y.var(-1, ddof=1)
        cxy = ((x - mx[..., None]) * (y - my[..., None])).sum(-1) / (win * win - 1)
        ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
        per_channel.append(ssim.mean())
    return float(np.mean(per_channel))


def test_animeinterp_ssim_is_a_uniform_7x7_window_with_data_range_2_and_not_the_standard_one():
    rng = np.random.default_rng(3)
    truth = np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((10, 12, 1))).astype(np.uint8)  # flat cels, as drawn
    predicted = np.clip(truth + rng.normal(0, 8, truth.shape), 0, 255).astype(np.uint8)
    psnr, ssim = metrics.animeinterp_metrics(truth, predicted)
    as_floats = [image.astype(np.float32) / 255 for image in (predicted, truth)]
    assert ssim == pytest.approx(_direct_ssim(*as_floats, data_range=2.0), abs=1e-6)
    standard = metrics.image_metrics(truth, predicted)
    assert standard[2] == pytest.approx(_direct_ssim(*as_floats, data_range=1.0), abs=1e-6)
    assert ssim > standard[2] + 0.01  # the larger range loosens both constants: the field's SSIM reads higher
    mse = float(np.mean((as_floats[0].astype(np.float64) - as_floats[1]) ** 2))
    assert psnr == pytest.approx(10 * np.log10(1 / mse), abs=1e-4)  # compare_psnr's range 1 for [0, 1] floats


def test_animeinterp_roi_is_cut_as_its_script_cuts_it():
    annotation = pd.Series({"roi_x": 301, "roi_y": 95, "roi_w": 651, "roi_h": 403, "image_width": 1920,
                            "image_height": 1080})
    (top, bottom), (left, right) = metrics.animeinterp_roi_box(annotation, (540, 960))
    scale_w, scale_h = 1920 / 960, 1080 / 540  # the script: RoI_x = int(x // scaleW), and so on
    assert (left, top) == (int(301 // scale_w), int(95 // scale_h)) == (150, 47)
    assert (right - left, bottom - top) == (int(651 // scale_w), int(403 // scale_h)) == (325, 201)
    assert metrics.roi_box(annotation, (540, 960)) != ((top, bottom), (left, right))  # the standard RoI rounds out
    small = annotation.copy()
    small["roi_w"] = 10  # 5 px wide at 960: no SSIM (the script's compare_ssim would fail), PSNR still
    (top, bottom), (left, right) = metrics.animeinterp_roi_box(small, (540, 960))
    truth, predicted = np.random.default_rng(4).integers(0, 256, (2, 540, 960, 3), dtype=np.uint8)
    psnr, ssim = metrics.animeinterp_metrics(truth[top:bottom, left:right], predicted[top:bottom, left:right])
    assert np.isfinite(psnr) and np.isnan(ssim)
