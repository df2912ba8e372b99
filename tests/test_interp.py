import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from latent_interp import encode, flow, interp, metrics, predictors, store
from latent_interp.settings import InterpSettings, VaeRun
from conftest import ingest_folder
from test_perceptual import write_lpips_weights


def test_slerp_of_identical_vectors_is_that_vector():
    a = np.random.default_rng(0).normal(size=(3, 4, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(interp.slerp(a, a.copy()), a, rtol=1e-6)


def test_slerp_of_orthogonal_equal_norm_vectors_keeps_the_norm():
    a, b = np.zeros((1, 4, 2, 2)), np.zeros((1, 4, 2, 2))
    a[0, 0, 0, 0], b[0, 1, 1, 1] = 3.0, 3.0
    middle = interp.slerp(a, b)
    assert np.linalg.norm(middle) == pytest.approx(3.0)
    np.testing.assert_allclose(middle, (a + b) / np.sqrt(2))  # on the arc, not the chord (whose norm is 3 / sqrt 2)


@pytest.mark.parametrize("scale", [2.0, -1.0, 0.0])
def test_slerp_of_parallel_opposite_or_zero_vectors_falls_back_to_lerp(scale):
    a = np.random.default_rng(1).normal(size=(2, 8)).astype(np.float32)
    b = a * scale
    np.testing.assert_allclose(interp.slerp(a, b), interp.lerp(a, b), rtol=1e-6, atol=1e-7)


def _tensors(count=16, shape=(4, 8, 8), seed=0):
    generator = torch.Generator().manual_seed(seed)
    first, third = torch.randn(count, *shape, generator=generator), torch.randn(count, *shape, generator=generator)
    return first, third


def test_ridge_recovers_a_known_linear_map():
    first, third = _tensors()
    torch.manual_seed(5)
    weight, bias = torch.randn(4, 8, 3, 3) * 0.1, torch.randn(4) * 0.1
    second = (first + third) / 2 + F.conv2d(torch.cat([first, third], 1), weight, bias, padding=1)
    settings = {"patch": 3, "ridge_lambdas": [1e-9, 1.0]}
    model, rows = predictors.fit_linear(settings, (first, second, third), (first, second, third), scale=1.0)
    torch.testing.assert_close(model.residual.conv.weight, weight, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(model.residual.conv.bias, bias, atol=1e-4, rtol=1e-3)
    assert [row["selected"] for row in rows] == [True, False] and rows[0]["val_mse"] < 1e-8


@pytest.mark.parametrize("name", ["mlp", "unet"])
def test_networks_fit_a_tiny_set_to_near_zero(name):
    first, third = _tensors(count=4)
    second = torch.tanh(first * third) + 0.5 * first  # not linear: lerp is far off
    settings = {**predictors.DEFAULTS[name], "epochs": 400, "patience": 400, "lr": 3e-3, "batch_size": 4}
    data = (first, second, third)
    model, rows = predictors.train_network(name, settings, data, data, scale=1.0, seed=0)
    assert rows[0]["epoch"] == 0 and rows[0]["val_mse"] > 0.3  # epoch 0 is lerp itself
    final = predictors.latent_mse(predictors.predict(model, first, third), second)
    assert final < 0.01 * rows[0]["val_mse"] and min(r["val_mse"] for r in rows) == pytest.approx(final, rel=1e-4)


@pytest.fixture(scope="module")
def scored(frame_tree, micro_vae_dir, tmp_path_factory):
    """train and val through ingest, encode, reconstruct, predictors and scoring, on the micro VAE."""
    root = tmp_path_factory.mktemp("interp")
    for split in ("train", "val"):
        ingest_folder(frame_tree / split, root / f"frames-{split}.zarr", split, size=32)
        encode.encode_split(frames=root / f"frames-{split}.zarr", latents=root / f"latents-{split}.zarr", split=split,
                            vae_run=VaeRun(micro_vae_dir, device="cpu"))
        encode.reconstruct_split(latents=root / f"latents-{split}.zarr", recon=root / f"recon-{split}.zarr",
                                 split=split, vae_run=VaeRun(micro_vae_dir, device="cpu"))
        flow.compute_split_flow(frames=root / f"frames-{split}.zarr", flow=root / f"flow-{split}.zarr",
                                table=root / f"flow-{split}.csv", split=split)
    config = {"predictors": list(predictors.PREDICTORS), "seed": 0, "augment_time_reversal": True,
              "mlp": {"epochs": 3}, "unet": {"epochs": 3}, "flow_unet": {"epochs": 3}}
    record = predictors.train_predictors(train=root / "latents-train.zarr", val=root / "latents-val.zarr",
                                         predictors=root / "predictors", settings=config, device="cpu",
                                         frames=(root / "frames-train.zarr", root / "frames-val.zarr"),
                                         flow=(root / "flow-train.zarr", root / "flow-val.zarr"))
    backbone, linear = write_lpips_weights(root)
    lpips = {"backbone": str(backbone), "linear": str(linear)}
    table = interp.score_split(inputs=interp.InterpInputs(root / "frames-val.zarr", root / "latents-val.zarr",
                                                          root / "recon-val.zarr", root / "predictors",
                                                          flow=root / "flow-val.zarr"),
                               outputs=interp.InterpOutputs(root / "val.csv", root / "val.spec.json",
                                                            root / "val.zarr"),
                               model="pretrained", split="val", vae_run=VaeRun(micro_vae_dir, device="cpu"),
                               settings=InterpSettings(2, sample=0, lpips=lpips, protocols=metrics.PROTOCOLS))
    metrics.compute_split_metrics(frames=root / "frames-val.zarr", recon=root / "recon-val.zarr",
                                  outputs=metrics.MetricsOutputs(root / "m.csv", root / "m.json"), model="pretrained",
                                  split="val")
    return root, table, record


def test_predictors_record_what_they_were_fitted_and_selected_on(scored):
    root, _, record = scored
    assert record["trained_on"] == store.names(store.open_store(root / "latents-train.zarr"))
    assert record["selected_on"] == store.names(store.open_store(root / "latents-val.zarr"))
    training = pd.read_csv(root / "predictors" / "training.csv")
    assert set(training["predictor"]) == set(predictors.PREDICTORS)
    assert training.groupby("predictor")["selected"].sum().eq(1).all()
    loaded, _ = predictors.load_predictors(root / "predictors")
    assert set(loaded) == set(predictors.PREDICTORS)
    assert record["flow"] == [str(root / "flow-train.zarr"), str(root / "flow-val.zarr")]


def test_the_table_has_every_method_per_triplet_and_the_ceiling_is_the_reconstruction(scored):
    root, table, _ = scored
    names = store.names(store.open_store(root / "frames-val.zarr"))
    scored_columns, roi_columns = interp.table_columns(metrics.PROTOCOLS, annotated=False)
    assert list(table.columns) == [*interp.KEY_COLUMNS, "at", *scored_columns, "motion_px", "t"]
    assert roi_columns == [] and len(table) == len(names) * len(interp.METHODS)
    assert (table["t"] == 0.5).all() and (table["at"] == "t").all()  # triplet folders: every t is the middle
    assert set(table["method"]) == set(interp.METHODS)
    frame_2 = pd.read_csv(root / "m.csv").query("frame == 2").set_index("triplet")
    on_disk = pd.read_csv(root / "val.csv")  # both tables written with 8 significant digits
    ceiling = on_disk[on_disk["method"] == "vae_ceiling"].set_index("triplet").loc[frame_2.index]
    np.testing.assert_array_equal(ceiling[["mse", "psnr", "ssim"]], frame_2[["mse", "psnr", "ssim"]])
    assert (ceiling["latent_mse"] == 0).all() and table.query("method == 'pixel_blend'")["latent_mse"].isna().all()
    mean = store.open_store(root / "latents-val.zarr")[store.MEAN][:]
    repeat = table[table["method"] == "repeat"].set_index("triplet").loc[names, "latent_mse"]
    np.testing.assert_allclose(repeat, ((mean[:, 0] - mean[:, 1]).astype(np.float64) ** 2).mean(axis=(1, 2, 3)),
                               rtol=1e-6)
    assert (table["lpips"] >= 0).all() and table["lpips"].notna().all()  # random-weight backbone, same code path
    # EISAI feeds [0, 1] images to LPIPS, which expects [-1, 1]: another number for the same images
    assert table["eisai_lpips"].notna().all() and not np.allclose(table["eisai_lpips"], table["lpips"])
    # AnimeInterp's PSNR is the standard one (float32 instead of float64); its SSIM's data range 2 raises SSIM
    finite = np.isfinite(table["psnr"])
    np.testing.assert_allclose(table.loc[finite, "animeinterp_psnr"], table.loc[finite, "psnr"], atol=1e-3)
    assert (table["animeinterp_ssim"] >= table["ssim"] - 1e-9).all() and (table["eisai_chamfer"] >= 0).all()
    spec = json.loads((root / "val.spec.json").read_text())
    assert "LPIPS v0.1" in spec["standard: lpips"] and "EISAI" in spec["eisai_chamfer"]
    assert spec["protocols"] == list(metrics.PROTOCOLS) and "data_range=2.0" in spec["animeinterp_*"]["ssim"]


def test_the_store_keeps_predicted_latents_and_a_worst_first_gallery(scored):
    root, table, _ = scored
    group = store.open_store(root / "val.zarr", "interp")
    count = len(store.names(group))
    assert group["predicted_latents"].shape == (count, len(interp.LATENT_METHODS), 4, 4, 4)
    lerp = store.open_store(root / "latents-val.zarr")[store.MEAN][:]
    np.testing.assert_allclose(group["predicted_latents"][:, 0], (lerp[:, 0] + lerp[:, 2]) / 2, rtol=1e-6)
    picked = [str(v) for v in group["gallery_triplets"][:]]
    assert (picked, 2) == interp.gallery_order(table, 2) and len(picked) == 2 and group.attrs["gallery_worst"] == 2
    psnr = table[table["method"] == "latent_lerp"].set_index("triplet")["psnr"]
    assert psnr[picked[0]] == psnr.min()
    assert group["gallery"].shape == (2, len(interp.METHODS), 32, 32, 3)
    frames = store.open_store(root / "frames-val.zarr")
    index = store.names(frames).index(picked[0])
    np.testing.assert_array_equal(group["gallery"][0, 0], frames[store.FRAMES][index, 0])  # repeat = frame 1


def test_the_gallery_adds_the_same_typical_triplets_for_every_model(scored):
    _, table, _ = scored
    names = sorted(table["triplet"].unique())
    picked, worst = interp.gallery_order(table, 1, sample=len(names), seed=3)
    assert worst == 1 and sorted(picked) == names and picked[1:] == sorted(picked[1:])
    other_model = table.assign(psnr=-table["psnr"])  # another decoder: other worst triplets, the same sample
    first, _ = interp.gallery_order(table, 0, sample=2, seed=3)
    assert interp.gallery_order(other_model, 0, sample=2, seed=3)[0] == first and len(first) == 2


def test_the_summary_pairs_methods_with_lerp_and_the_ceiling(scored):
    root, _, _ = scored
    summary = interp.summarize_interp(tables=[root / "val.csv"], summary=root / "summary.csv", resamples=200,
                                      bins=2)
    whole = summary[(summary["origin"] == "all") & (summary["motion"] == "all")].set_index("method")
    assert whole.loc["latent_lerp", "psnr_vs_lerp"] == 0 and whole.loc["vae_ceiling", "psnr_vs_ceiling"] == 0
    assert whole.loc["latent_lerp", "gap_closed"] == 0 and whole.loc["vae_ceiling", "gap_closed"] == 1
    share = whole.loc["pixel_flow", "psnr_vs_lerp"] / -whole.loc["latent_lerp", "psnr_vs_ceiling"]
    assert whole.loc["pixel_flow", "gap_closed"] == pytest.approx(share)  # every triplet has a finite PSNR here
    oracles = {"pixel_flow_oracle", "latent_flow_oracle", "vae_ceiling", *(f"decoder_flow_oracle@{k}" for k in range(4))}
    assert whole["sees_frame2"].to_dict() == {m: m in oracles for m in whole.index}
    gap = whole.loc["latent_slerp", "psnr"] - whole.loc["vae_ceiling", "psnr"]
    assert whole.loc["latent_slerp", "psnr_vs_ceiling"] == pytest.approx(gap)
    assert (whole["psnr_ci_low"] <= whole["psnr"]).all() and (whole["psnr"] <= whole["psnr_ci_high"]).all()
    assert set(summary["origin"]) == {"all", "Disney", "Japan"}
    bins = summary[summary["motion"] != "all"]
    assert bins["motion"].nunique() == 2 and bins.groupby("motion")["n_triplets"].first().sum() == 3
    assert (bins["motion_low"] <= bins["motion_high"]).all()


def test_motion_bins_are_quantiles_named_with_their_range():
    motion = pd.Series([0.1, 0.2, 5.0, 9.0, np.nan], index=list("abcde"))
    bins = interp.motion_bins(motion, 2)
    assert bins["a"] == bins["b"] == "q1 (0.1-2.6 px)" and bins["c"] == bins["d"] == "q2 (2.6-9.0 px)"
    assert pd.isna(bins["e"])  # unknown motion (a failed flow) is in no bin, not in the stillest


def test_the_predictors_refuse_a_val_split_that_shares_train_triplets(scored, tmp_path):
    root, _, _ = scored
    with pytest.raises(ValueError, match="share triplets"):
        predictors.train_predictors(train=root / "latents-train.zarr", val=root / "latents-train.zarr",
                                    predictors=tmp_path / "p", settings={"predictors": ["linear"]}, device="cpu")


def test_the_report_section_shows_every_method_with_its_units_and_the_gallery(scored, tmp_path):
    from latent_interp.report import ReportInputs, context, interpolation, motion, page, triplets

    root, _, _ = scored
    interp.summarize_interp(tables=[root / "val.csv"], summary=root / "summary.csv", resamples=50)
    inputs = ReportInputs(
        config={}, models=["pretrained"], splits=["val"], frames={"val": root / "frames-val.zarr"}, skipped={},
        recon={("pretrained", "val"): root / "recon-val.zarr"}, latents={},
        metric_tables={("pretrained", "val"): root / "m.csv"},
        metrics_summary="", metrics_spec="", collapse={}, interp_summary=root / "summary.csv",
        interp_tables={("pretrained", "val"): root / "val.csv"},
        interp_stores={("pretrained", "val"): root / "val.zarr"}, predictor_dirs={"pretrained": root / "predictors"},
        flow={"val": root / "flow-val.zarr"}, flow_tables={"val": root / "flow-val.csv"}, lpips_skipped=False)
    ctx = context.Context(inputs, tmp_path / "figures", tmp_path / "report.html")
    triplets.add_triplet_index(ctx)
    triplets.add_panel_images(ctx, triplets.panel_keys(ctx))
    motion.add_flow_images(ctx, triplets.panel_keys(ctx))
    html = page.render_section(interpolation.section(ctx))
    for method in interp.METHODS:
        mark = " †" if method in interp.SEES_FRAME2 else ""  # the oracles and the ceiling are marked
        assert re.search(f'<td class="text"[^>]*>{method}{mark}</td>', html), method
    assert "PSNR dB ↑" in html and "latent MSE ↓" in html and "gap to ceiling" in html and "LPIPS ↓" in html
    assert "gap closed" in html and "pixel_flow: " in html and "latent_flow_oracle (oracle: sees frame 2): " in html
    # bars, gap closed by motion, gap closed by warping depth and training curves; galleries come from the payload
    assert html.count("data:image/png;base64,") == 4 and "interpolation_motion_val.png" in html
    assert "interpolation_depth_val.png" in html and "Warping inside the decoder: latent grid " in html
    assert ctx.payload["oracles"] == ["pixel_flow_oracle", "latent_flow_oracle",
                                      *(f"decoder_flow_oracle@{k}" for k in range(4)), "vae_ceiling"]
    flows = [images["flow"] for images in ctx.payload["images"].values()]
    assert flows and all(uri.startswith("data:image/jpeg") for flow_images in flows for uri in flow_images[:2])
    assert all(record["motion_px"] is not None for record in ctx.payload["triplets"])
    assert "Best without frame 2" in html and 'data-kind="interp"' in html
    gallery = [str(v) for v in store.open_store(root / "val.zarr")["gallery_triplets"][:2]]
    assert f'data-keys="val/{gallery[0]},val/{gallery[1]}"' in html  # worst first
    images = ctx.payload["images"][f"val/{gallery[0]}"]["interp"]["pretrained"]
    # repeat and the ceiling are not stored twice; the decoder warps are in the score tables only
    assert set(images) == {m for m in interp.METHODS if triplets.in_panel(m)} - triplets.REUSED
    ctx.figures.close()  # the figures are drawn by worker processes
    assert (tmp_path / "figures" / "interpolation_gallery_pretrained_val.svg").is_file()
    rows = ctx.payload["tables"]["interp-triplets"]["rows"]
    assert len(rows) == len(store.names(store.open_store(root / "val.zarr"))) and rows[0][0].startswith("val/")


@pytest.mark.parametrize("count, sample", [(3, 4), (0, 5), ("all", 0), (2, 0)])
def test_the_gallery_keeper_holds_what_gallery_order_picks_and_no_more(count, sample):
    """The streamed choice (interp.GalleryKeeper) keeps every triplet the gallery shows, ties, NaN and infinite
    PSNRs included, and at most count + sample of them, so the gallery is never decoded a second time."""
    names = [f"t{i:02d}" for i in range(20)]
    psnr = np.random.default_rng(1).choice([20.0, 21.0, 22.5, np.inf, np.nan], size=len(names))
    keeper = interp.GalleryKeeper(names, count, sample, seed=3)
    for name, value in zip(names, psnr):
        keeper.offer(name, value, lambda name=name: np.array([int(name[1:])]))
    table = pd.DataFrame({"triplet": names, "method": "latent_lerp", "psnr": psnr})
    picked, _ = interp.gallery_order(table, count, sample, seed=3)
    assert all(keeper[name][0] == int(name[1:]) for name in picked)
    assert len(keeper.images) <= (len(names) if count == "all" else count + sample)


def test_an_oracle_is_never_the_best_method():
    """The oracles see frame 2: the best-method lines and the overview pass over them however well they score."""
    from latent_interp.report import interpolation, overview

    methods = ["latent_lerp", "pixel_flow", "pixel_flow_oracle", "latent_flow_oracle", "vae_ceiling"]
    rows = pd.DataFrame({"model": "m", "split": "test", "origin": "all", "level": "all", "motion": "all",
                         "method": methods, "n_triplets": 4, "psnr": [20.0, 25.0, 40.0, 39.0, 30.0],
                         "psnr_vs_lerp": [0.0, 5.0, 20.0, 19.0, 10.0], "psnr_vs_lerp_ci_low": 0.0,
                         "psnr_vs_lerp_ci_high": 1.0})
    assert interpolation.reading(rows).startswith("Best without frame 2: pixel_flow at 25.00 dB")
    assert overview.best_method(rows, "m")["method"] == "pixel_flow"
    assert set(interp.SEES_FRAME2) == {"pixel_flow_oracle", "latent_flow_oracle", "vae_ceiling",
                                       *(f"decoder_flow_oracle@{k}" for k in range(4))}
    assert all(interp.REGISTRY[m].sees_frame2 == (m in interp.SEES_FRAME2) for m in interp.METHODS)


def test_a_triplet_whose_flow_failed_is_unscored_by_the_flow_methods_only(scored, micro_vae_dir, tmp_path):
    import shutil
    import zarr

    root, _, _ = scored
    shutil.copytree(root / "flow-val.zarr", tmp_path / "flow.zarr")
    zarr.open_group(str(tmp_path / "flow.zarr"), mode="r+")["ok"][0] = False  # as the flow stage marks a skip
    table = interp.score_split(inputs=interp.InterpInputs(root / "frames-val.zarr", root / "latents-val.zarr",
                                                          root / "recon-val.zarr", root / "predictors",
                                                          flow=tmp_path / "flow.zarr"),
                               outputs=interp.InterpOutputs(tmp_path / "val.csv", tmp_path / "val.spec.json",
                                                            tmp_path / "val.zarr"),
                               model="pretrained", split="val", vae_run=VaeRun(micro_vae_dir, device="cpu"),
                               settings=InterpSettings(6, sample=0, protocols=("standard",)))
    first = table[table["triplet"] == store.names(store.open_store(root / "frames-val.zarr"))[0]].set_index("method")
    reads_flow = [m for m in interp.METHODS if interp.REGISTRY[m].reads_flow]
    assert first.loc[reads_flow, "psnr"].isna().all() and first.drop(index=reads_flow)["psnr"].notna().all()
    assert table.groupby("triplet")["psnr"].apply(lambda p: p.notna().all()).sum() == 2  # the others: every score


def test_the_field_means_are_formed_as_animeinterps_script_forms_them(tmp_path):
    rng = np.random.default_rng(0)
    levels = [0, 0, 1, 2, 2, 2, 1, 0, 2]
    table = pd.DataFrame({
        "model": "m", "split": "test", "triplet": [f"t{i}" for i in range(len(levels))], "origin": "Disney",
        "method": "latent_lerp", "psnr": rng.uniform(20, 35, len(levels)), "motion_px": np.nan,
        "animeinterp_psnr": rng.uniform(20, 35, len(levels)), "animeinterp_ssim": rng.uniform(0.8, 1, len(levels)),
        "animeinterp_roi_psnr": rng.uniform(15, 30, len(levels)), "level": levels})
    table.to_csv(tmp_path / "test.csv", index=False)
    summary = interp.summarize_interp(tables=[tmp_path / "test.csv"], summary=tmp_path / "summary.csv", resamples=10)
    # test_anime_sequence_one_by_one.py: sums per difficulty, divided by that difficulty's count; the RoI sum over
    # the whole test set divided by its length
    sums, counts, roi_sum = {0: 0.0, 1: 0.0, 2: 0.0}, {0: 0, 1: 0, 2: 0}, 0.0
    for record in table.to_dict("records"):
        sums[record["level"]] += record["animeinterp_psnr"]
        counts[record["level"]] += 1
        roi_sum += record["animeinterp_roi_psnr"]
    for level in (0, 1, 2):
        row = summary[(summary["level"].astype(str) == str(level)) & (summary["origin"] == "all")]
        assert row["animeinterp_psnr"].item() == pytest.approx(sums[level] / counts[level], rel=1e-12)
    whole = summary[(summary["level"].astype(str) == "all") & (summary["origin"] == "all")
                    & (summary["motion"] == "all")]
    assert whole["animeinterp_roi_psnr"].item() == pytest.approx(roi_sum / len(table), rel=1e-12)
