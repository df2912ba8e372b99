"""In-betweens at their true time t (config interp.time): every method at t, Super SloMo's flows at t from the stored
end flows, the predictors given t, and the paired comparison with the midpoint. Known answers."""

import numpy as np
import pandas as pd
import pytest
import torch

from latent_interp import flow, interp, predictors, store, warp
from latent_interp.settings import InterpSettings, VaeRun
from test_interp import scored  # noqa: F401 (the fixture: train and val scored on the micro VAE)


def flow_rows(ends: np.ndarray, still: float = 0.0) -> dict:
    """The flow store's arrays for triplets whose end flows are ``ends`` [B, 2, H, W, 2], every pixel consistent."""
    count, _, height, width, _ = ends.shape
    return {"flow_ends": ends.astype(np.float16), "consistent": np.ones((count, 2, height, width), np.uint8),
            "still": np.full((count, height, width), still, np.uint8),
            "oracle_flow": np.zeros((count, 2, height, width, 2), np.float16)}


@pytest.mark.parametrize("t", [0.25, 0.5, 0.7])
def test_super_slomos_flows_of_a_translation_are_minus_t_d_and_one_minus_t_d(t):
    """F_1->3 = d and F_3->1 = -d: the in-between at t is t d from frame 1, so F_t->1 = -t d, F_t->3 = (1 - t) d;
    computed where they are used, from the end flows the store keeps."""
    d = np.array([3.0, -2.0], np.float32)
    ends = np.broadcast_to(np.stack([d, -d])[None, :, None, None], (2, 2, 6, 5, 2))
    to_1, to_3, weight_1, still = flow.motion_inputs(flow_rows(ends), "estimated", {}, np.array([t, t]))
    expected = torch.from_numpy(d).reshape(1, 2, 1, 1).expand(2, 2, 6, 5)
    torch.testing.assert_close(to_1, -t * expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(to_3, (1 - t) * expected, rtol=0, atol=1e-6)
    assert still.sum() == 0 and weight_1.min() >= 0 and weight_1.max() <= 1
    # one time per triplet: each its own
    both = flow.motion_inputs(flow_rows(ends), "estimated", {}, np.array([0.25, 0.7]))
    torch.testing.assert_close(both[0], -torch.tensor([0.25, 0.7]).reshape(-1, 1, 1, 1) * expected, rtol=0,
                               atol=1e-6)


def test_the_blends_at_a_quarter_of_two_flat_frames_are_their_weighted_mean():
    first, third = np.full((1, 8, 8, 3), 40, np.uint8), np.full((1, 8, 8, 3), 200, np.uint8)
    assert (interp.pixel_blend(first, third, np.array([0.25])) == 80).all()  # 0.75 * 40 + 0.25 * 200
    a, b = np.full((1, 4, 2, 2), 1.0, np.float32), np.full((1, 4, 2, 2), 5.0, np.float32)
    np.testing.assert_array_equal(interp.lerp(a, b, np.array([0.25])), np.full_like(a, 2.0))
    # pixel_flow on still frames: zero flow, both ends trusted, so the weights are 1 - t and t, still mask or not
    triplets = np.stack([first, first, third], axis=1)
    for still in (0.0, 1.0):
        chunk = interp.Chunk(triplets, triplets, np.zeros((1, 3, 4, 1, 1), np.float32),
                             flow_rows(np.zeros((1, 2, 8, 8, 2), np.float32), still), {}, torch.device("cpu"),
                             times=np.array([0.25]))
        assert (interp.REGISTRY["pixel_flow"].predict(chunk) == 80).all()


def test_slerp_at_t_follows_the_arc_and_keeps_the_norm():
    a, b = np.zeros((1, 4)), np.zeros((1, 4))
    a[0, 0], b[0, 1] = 2.0, 2.0  # a quarter circle apart
    for t in (0.25, 0.5, 0.8):
        point = interp.slerp(a, b, np.array([t]))[0]
        np.testing.assert_allclose(point[:2], 2 * np.array([np.cos(t * np.pi / 2), np.sin(t * np.pi / 2)]))
        assert np.linalg.norm(point) == pytest.approx(2.0)


def _old_slerp_midpoint(first, third):
    """The midpoint as the study computed it before times (its formula, kept here as the reference)."""
    flat_first, flat_third = (x.reshape(len(x), -1).astype(np.float64) for x in (first, third))
    norms = np.linalg.norm(flat_first, axis=1) * np.linalg.norm(flat_third, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        angle = np.arccos(np.clip(np.einsum("ij,ij->i", flat_first, flat_third) / norms, -1.0, 1.0))
        weight = np.sin(angle / 2) / np.sin(angle)
    weight = np.where((norms == 0) | ~np.isfinite(weight) | (np.sin(angle) < 1e-6), 0.5, weight)
    return (weight[:, None] * (flat_first + flat_third)).reshape(first.shape).astype(first.dtype)


def _val_chunk(root, model, downsampling: int, times) -> interp.Chunk:
    """The val triplets, read as rule interp reads them, with ``model``'s decoder warps."""
    from latent_interp import flow
    from latent_interp.interp.depth import DecoderWarps

    frames = store.open_store(root / "frames-val.zarr")[store.FRAMES][:]
    count = len(frames)
    flow_group = store.open_store(root / "flow-val.zarr", "flow")
    learned, _ = predictors.load_predictors(root / "predictors")
    return interp.Chunk(frames, store.open_store(root / "recon-val.zarr")[store.FRAMES][:count],
                        store.open_store(root / "latents-val.zarr")[store.MEAN][:count],
                        flow.read_rows(flow_group, 0, count), learned, torch.device("cpu"),
                        dict(flow_group.attrs["flow"]), downsampling,
                        DecoderWarps(model, count, "float32", frames.shape[2:4]), times)


def test_every_method_at_t_one_half_is_the_midpoint_to_the_bit(scored, micro_vae_dir):  # noqa: F811
    """Triplet folders (t = 0.5 everywhere): the methods given t = 0.5 per triplet give the bytes they give with no
    times at all (what rule interp runs there), and the pixel blend, lerp and slerp are the midpoint formulas."""
    from latent_interp import encode, vae
    from latent_interp.interp.scoring import _predict_chunk

    root, _, _ = scored
    model, record = vae.load_vae(str(micro_vae_dir), torch.device("cpu"))
    outputs = []
    count = len(store.names(store.open_store(root / "frames-val.zarr")))
    for times in (None, np.full(count, 0.5)):
        chunk = _val_chunk(root, model, record["downsampling"], times)
        methods = interp.active_methods(chunk.learned, True, chunk.decoder.count)
        outputs.append((chunk, _predict_chunk(chunk, methods, model, 8, "float32", encode.NonFiniteGuard())))
    (chunk, (images, _, predicted)), (_, (images_half, _, predicted_half)) = outputs
    assert set(images) == set(methods) and len(methods) > 20
    for method in methods:
        np.testing.assert_array_equal(images_half[method], images[method], err_msg=method)
    for method in predicted:
        np.testing.assert_array_equal(predicted_half[method], predicted[method], err_msg=method)
    first, third = chunk.latents[:, 0], chunk.latents[:, 2]
    np.testing.assert_array_equal(predicted["latent_lerp"], (first + third) / 2)
    np.testing.assert_array_equal(predicted["latent_slerp"], _old_slerp_midpoint(first, third))
    old_blend = np.rint((chunk.frames[:, 0].astype(np.float32) + chunk.frames[:, 2].astype(np.float32)) / 2)
    np.testing.assert_array_equal(images["pixel_blend"], old_blend.astype(np.uint8))


def test_the_linear_predictor_learns_how_latent2_moves_with_t():
    """latent2 = lerp at t + (t - 1/2) M (latent3 - latent1), a known map M (here 0.4 times the identity): the time map
    of the ridge fit recovers it, and predicts at a t it never saw."""
    generator = torch.Generator().manual_seed(0)
    first, third = torch.randn(24, 2, 6, 6, generator=generator), torch.randn(24, 2, 6, 6, generator=generator)
    times = torch.rand(24, generator=generator) * 0.6 + 0.2

    def truth(a, b, t):
        offset = (t - 0.5).reshape(-1, 1, 1, 1)
        return warp.lerp(a, b, t.reshape(-1, 1, 1, 1)) + 0.4 * offset * (b - a)

    data = (first, truth(first, third, times), third)
    settings = {"patch": 1, "ridge_lambdas": [1e-9]}
    model, _ = predictors.fit_linear(settings, data, data, scale=1.0, times=(times, times))
    new_t = torch.full((24,), 0.9)
    found = predictors.predict(model, first, third, times=new_t)
    torch.testing.assert_close(found, truth(first, third, new_t), atol=1e-4, rtol=1e-4)
    at_midpoint, _ = predictors.fit_linear(settings, data, data, scale=1.0)  # no times: every t taken as 1/2
    assert float(at_midpoint.residual.time_conv.weight.detach().abs().max()) == 0


@pytest.mark.parametrize("reverse", [True, False])
def test_the_predictor_fitted_both_ways_is_symmetric_under_time_reversal(reverse):
    """Fitted on each triplet and its reversal ((latent3, latent1) at 1 - t), the predictor gives the same latent2
    for (a, b, t) and (b, a, 1 - t): to float precision for the closed-form linear fit. Fitted one way only, it does
    not (so the check can fail)."""
    generator = torch.Generator().manual_seed(1)
    first, second, third = (torch.randn(16, 2, 5, 5, generator=generator) for _ in range(3))
    times = torch.rand(16, generator=generator)
    if reverse:
        first, second, third, times = (torch.cat([first, third]), torch.cat([second, second]),
                                       torch.cat([third, first]), torch.cat([times, 1 - times]))
    data = (first, second, third)
    model, _ = predictors.fit_linear({"patch": 3, "ridge_lambdas": [1e-3]}, data, data, 1.0, times=(times, times))
    a, b = torch.randn(4, 2, 5, 5, generator=generator), torch.randn(4, 2, 5, 5, generator=generator)
    t = torch.tensor([0.2, 0.35, 0.6, 0.9])
    gap = (predictors.predict(model, a, b, times=t) - predictors.predict(model, b, a, times=1 - t)).abs().max()
    assert (gap < 1e-4) if reverse else (gap > 1e-2)


def test_networks_given_t_one_half_train_as_they_did_without_it():
    """Every train triplet at the midpoint: the time weights get no gradient and the weights trained are those a
    network without them would train (the same initial draw, the same steps)."""
    generator = torch.Generator().manual_seed(2)
    first, second, third = (torch.randn(8, 2, 4, 4, generator=generator) for _ in range(3))
    settings = {**predictors.DEFAULTS["unet"], "epochs": 3, "batch_size": 4}
    model, _ = predictors.train_network("unet", settings, (first, second, third), (first, second, third), 1.0, 0)
    timed, _ = predictors.train_network("unet", settings, (first, second, third), (first, second, third), 1.0, 0,
                                        times=(torch.full((8,), 0.5), torch.full((8,), 0.5)))
    assert float(model.residual.time_weight.detach().abs().max()) == 0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(timed.state_dict()[name], value, rtol=0, atol=0, msg=name)


def _score(root, micro_vae_dir, out, time, monkeypatch, times):
    monkeypatch.setattr(store, "middle_times", lambda group: times)
    return interp.score_split(inputs=interp.InterpInputs(root / "frames-val.zarr", root / "latents-val.zarr",
                                                         root / "recon-val.zarr", root / "predictors",
                                                         flow=root / "flow-val.zarr"),
                              outputs=interp.InterpOutputs(out / "val.csv", out / "val.spec.json", out / "val.zarr"),
                              model="pretrained", split="val", vae_run=VaeRun(micro_vae_dir, device="cpu"),
                              settings=InterpSettings(2, sample=0, time=time))


def test_off_midpoint_triplets_are_scored_at_t_and_again_at_the_midpoint(scored, micro_vae_dir, tmp_path,  # noqa
                                                                          monkeypatch):
    """Two triplets drawn off the midpoint (t 0.25 and 0.75): their rows at t differ from the midpoint's, their
    midpoint rows are the scores the midpoint run gives them, and the summary pairs the two on those two only."""
    root, at_midpoint, _ = scored
    count = len(store.names(store.open_store(root / "frames-val.zarr")))
    times = np.full(count, 0.5)
    times[[0, 2]] = [0.25, 0.75]
    table = _score(root, micro_vae_dir, tmp_path, True, monkeypatch, times)
    main, again = table[table["at"] == "t"], table[table["at"] == "midpoint"]
    off = sorted(np.array(store.names(store.open_store(root / "frames-val.zarr")))[[0, 2]])
    assert len(main) == len(at_midpoint) and sorted(again["triplet"].unique()) == off
    assert len(again) == 2 * len(interp.METHODS) and (again["t"] != 0.5).all()
    key = ["triplet", "method"]
    columns = ["psnr", "ssim", "latent_mse"]
    reference = at_midpoint.set_index(key).loc[again.set_index(key).index, columns]
    pd.testing.assert_frame_equal(again.set_index(key)[columns], reference)
    on_t = main[main["t"] == 0.5].set_index(key)[columns]  # the others are as they were
    pd.testing.assert_frame_equal(on_t, at_midpoint.set_index(key).loc[on_t.index, columns])
    blend = main[(main["method"] == "pixel_blend") & main["triplet"].isin(off)].set_index("triplet")["psnr"]
    assert not np.allclose(blend, reference.loc[[(name, "pixel_blend") for name in blend.index], "psnr"])
    gallery = store.open_store(tmp_path / "val.zarr", "interp")  # the gallery keeps the in-betweens at t
    assert [str(v) for v in gallery["gallery_triplets"][:]] == interp.gallery_order(main, 2)[0]
    summary = interp.summarize_interp(tables=[tmp_path / "val.csv"], summary=tmp_path / "summary.csv", resamples=50)
    overall = summary[(summary["origin"] == "all") & (summary["motion"] == "all")].set_index("method")
    assert (overall["n_off_midpoint"] == 2).all() and (overall["n_triplets"] == count).all()
    pairs = main.set_index(key).loc[again.set_index(key).index, "psnr"].to_numpy() - again["psnr"].to_numpy()
    expected = pd.Series(pairs, index=again["method"].to_numpy()).replace([np.inf, -np.inf], np.nan)
    for method in ("pixel_blend", "latent_lerp", "pixel_flow"):
        assert overall.loc[method, "psnr_vs_midpoint"] == pytest.approx(expected[method].mean(), rel=1e-4)  # csv
        low, high = overall.loc[method, ["psnr_vs_midpoint_ci_low", "psnr_vs_midpoint_ci_high"]]
        assert low <= overall.loc[method, "psnr_vs_midpoint"] <= high


def test_time_midpoint_predicts_every_triplet_at_one_half(scored, micro_vae_dir, tmp_path, monkeypatch):  # noqa
    root, at_midpoint, _ = scored
    count = len(at_midpoint["triplet"].unique())
    times = np.linspace(0.25, 0.75, count)
    table = _score(root, micro_vae_dir, tmp_path, "midpoint", monkeypatch, times)
    assert (table["at"] == "midpoint").all() and len(table) == len(at_midpoint)
    np.testing.assert_allclose(np.sort(table["t"].unique()), times)  # the true t is still reported
    key = ["triplet", "method"]
    pd.testing.assert_frame_equal(table.set_index(key)[["psnr", "ssim"]],
                                  at_midpoint.set_index(key).loc[table.set_index(key).index, ["psnr", "ssim"]])
    assert store.open_store(tmp_path / "val.zarr").attrs["time"] == "midpoint"
