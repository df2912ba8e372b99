import json

import numpy as np
import pandas as pd
import pytest

from latent_interp import geometry, store


def test_trajectory_known_answers():
    first, third = np.zeros(4), np.array([2.0, 0, 0, 0])
    on_line_quarter = first + 0.25 * (third - first)
    off_line = np.array([1.0, 1.0, 0, 0])
    latents = np.stack([np.stack([first, (first + third) / 2, third]), np.stack([first, on_line_quarter, third]),
                        np.stack([first, off_line, third])])
    table = geometry.trajectory_stats(latents)
    midpoint, quarter, perpendicular = table.to_dict("records")
    assert midpoint["midpoint_deviation"] == 0 and midpoint["line_deviation"] == 0
    assert midpoint["angle_deg"] == pytest.approx(0) and midpoint["step_ratio"] == 1
    # Exactly on the line: no distance from it, wherever along it; a quarter of the chord from the midpoint.
    assert quarter["line_deviation"] == 0 and quarter["midpoint_deviation"] == pytest.approx(0.25)
    assert quarter["angle_deg"] == pytest.approx(0, abs=1e-6) and quarter["step_ratio"] == pytest.approx(1 / 3)
    # (0,0) -> (1,1) -> (2,0): half the chord above the midpoint, a right-angle turn, equal steps.
    assert perpendicular["midpoint_deviation"] == pytest.approx(0.5) and perpendicular["line_deviation"] == 0.5
    assert perpendicular["angle_deg"] == pytest.approx(90) and perpendicular["step_ratio"] == pytest.approx(1)


def test_a_zero_chord_leaves_the_ratios_empty():
    latents = np.stack([np.stack([np.ones(3), np.zeros(3), np.ones(3)])])
    row = geometry.trajectory_stats(latents).iloc[0]
    assert np.isnan(row["midpoint_deviation"]) and np.isnan(row["line_deviation"]) and row["chord"] == 0


def test_channel_stats_of_prior_samples_are_near_the_prior():
    values = np.random.default_rng(0).normal(size=(400, 2, 8, 8)).astype(np.float32)
    values[:, 1] = values[:, 1] * 3 + 2
    stats = geometry.channel_stats(values, posterior_kl=np.zeros(2))
    assert stats.loc[0, "aggregate_kl"] < 0.01 and abs(stats.loc[0, "kurtosis"]) < 0.1
    assert stats.loc[1, "std"] == pytest.approx(3, rel=0.02) and stats.loc[1, "mean"] == pytest.approx(2, abs=0.1)
    assert stats.loc[1, "aggregate_kl"] == pytest.approx(0.5 * (9 + 4 - 1 - np.log(9)), rel=0.05)


def _stores(root, split, count, seed, separated=True):
    """A latents store whose channel 0 carries the origin (when ``separated``) and its frames store."""
    rng = np.random.default_rng(seed)
    names = [f"{'Disney' if i % 2 == 0 else 'Japan'}_v1_0_{seed:03d}{i:03d}_s1" for i in range(count)]
    origins = [n.split("_")[0] for n in names]
    latents = store.create(root / f"lat-{split}.zarr", "latents", split, {"vae": {"sha256": "x", "source": "s"}},
                           names, origins)
    mean = rng.normal(size=(count, 3, 4, 4, 4)).astype(np.float32)
    if separated:
        mean[::2, :, 0] += 6.0
    store.add_array(latents, store.MEAN, (3, 4, 4, 4), np.float32)[:] = mean
    store.add_array(latents, store.LOGVAR, (3, 4, 4, 4), np.float32)[:] = 0.0
    store.seal(latents)
    frames = store.create(root / f"frames-{split}.zarr", "frames", split, {}, names, origins)
    store.add_array(frames, store.FRAMES, (3, 8, 8, 3), np.uint8)[:] = rng.integers(0, 256, (count, 3, 8, 8, 3))
    store.seal(frames)
    return str(root / f"lat-{split}.zarr"), str(root / f"frames-{split}.zarr"), mean


def test_analyse_geometry_finds_the_origin_and_writes_every_table(tmp_path):
    made = [_stores(tmp_path, split, count, seed) for seed, (split, count) in enumerate([("train", 20), ("test", 10)])]
    outputs = {name: tmp_path / f"{name}.out" for name in
               ("trajectories", "channels", "histograms", "correlation", "clusters", "summary")}
    summary = geometry.analyse_geometry(latents=[m[0] for m in made], frames=[m[1] for m in made],
                                        outputs=geometry.GeometryOutputs(**outputs), model="pretrained",
                                        settings={"kmeans_k": 2, "histogram_bins": 10})
    assert summary["probes"]["origin"]["accuracy"] == 1.0 and summary["probes"]["origin"]["chance"] == 0.5
    assert summary["probes"]["frame"]["test_frames"] == 30 and summary["clusters"]["adjusted_rand_index_origin"] == 1
    trajectories = pd.read_csv(outputs["trajectories"])
    assert len(trajectories) == 30 and list(trajectories.columns) == geometry.TRAJECTORY_COLUMNS
    expected = geometry.trajectory_stats(made[0][2])["midpoint_deviation"].to_numpy()
    np.testing.assert_allclose(trajectories["midpoint_deviation"][:20], expected, rtol=1e-5)
    channels = pd.read_csv(outputs["channels"])
    # logvar 0 (s = 1): the posterior KL per element is mu^2 / 2, averaged over every frame and position.
    all_means = np.concatenate([m[2] for m in made])
    assert channels.loc[1, "posterior_kl"] == pytest.approx(float((all_means[:, :, 1] ** 2).mean() / 2), rel=1e-4)
    histograms = pd.read_csv(outputs["histograms"])
    assert histograms.groupby("channel")["count"].sum().eq(30 * 3 * 16).all()  # no value left out
    assert len(pd.read_csv(outputs["clusters"])) == 90
    correlation = pd.read_csv(outputs["correlation"], index_col=0).to_numpy()
    all_frames = np.moveaxis(all_means.reshape(-1, 4, 4, 4), 1, 0).reshape(4, -1)
    np.testing.assert_allclose(correlation, np.corrcoef(all_frames), atol=1e-5)
    assert json.loads(outputs["summary"].read_text())["triplets"] == 30
    page, figures = _geometry_html({"pretrained": outputs}, tmp_path / "one")
    assert "trajectories 1 → 2 → 3" in page and page.count("data:image/png;base64,") == 2
    assert "100.0% accuracy" in page and "chance (majority class) 50.0%" in page
    assert {p.name for p in figures.iterdir()} == {f"{name}_pretrained.{kind}" for name in ("trajectories", "channels")
                                                  for kind in ("png", "svg")}
    both, _ = _geometry_html({"pretrained": outputs, "finetuned": outputs}, tmp_path / "two")
    assert "Before and after fine-tuning the encoder" in both and "Before and after" not in page


def _geometry_html(outputs: dict, folder):
    """The geometry section's HTML for these latent spaces, and the folder its figures went to."""
    from latent_interp.report import ReportInputs, context, geometry as geometry_section, page

    inputs = ReportInputs(config={}, models=list(outputs), splits=[], frames={}, skipped={}, recon={}, latents={},
                          metric_tables={}, metrics_summary="", metrics_spec="", collapse={}, geometry=outputs)
    ctx = context.Context(inputs, folder / "figures", folder / "report.html")
    html = page.render_section(geometry_section.section(ctx))
    ctx.figures.close()  # the figures are drawn by worker processes: wait for them, as the report does
    return html, folder / "figures"


def test_probes_without_a_second_class_say_why(tmp_path):
    result = geometry.linear_probe(np.zeros((4, 2)), ["Disney"] * 4, np.zeros((2, 2)), ["Japan"] * 2, 0)
    assert "skipped" in result

