"""The cross-VAE table from hand-made per-model tables: figures, pairing, CIs, the best learned predictor chosen on
val, costs from benchmark files, and the report's comparison section built from it."""

import json

import numpy as np
import pandas as pd
import pytest

from latent_interp import compare
from latent_interp.report import comparison, context, page
from latent_interp.report.context import ReportInputs

TRIPLETS = {"val": 6, "test": 8}
METHODS = ("latent_lerp", "linear", "mlp", "latent_flow", "vae_ceiling")


def write_model(root, model, psnr_offset, gap, mlp_better, shape=(4, 4, 4), scale=1.0, family="AutoencoderKL",
                seconds=2.0):
    """Every per-model input of compare_vaes with known values: recon PSNR 30 + offset (+ 0.1 per triplet index),
    the ceiling ``gap`` dB above lerp, mlp best on val when ``mlp_better``."""
    folder = root / model
    folder.mkdir()
    rows, interp_rows, trajectories = [], [], []
    for split, count in TRIPLETS.items():
        for i in range(count):
            origin = "Disney" if i % 2 else "Japan"
            for frame in (1, 2, 3):
                rows.append(dict(model=model, split=split, triplet=f"t{i}", origin=origin, frame=frame, mse=0.001,
                                 psnr=30 + psnr_offset + 0.1 * i, ssim=0.9))
            for method in METHODS:
                psnr = {"latent_lerp": 25.0, "vae_ceiling": 25.0 + gap, "linear": 25.5,
                        "mlp": 26.0 if mlp_better else 25.2, "latent_flow": 25.25}[method]
                if split == "test" and method == "mlp":
                    psnr = 24.0  # worse on test: the choice is made on val and stands
                interp_rows.append(dict(model=model, split=split, triplet=f"t{i}", origin=origin, method=method,
                                        psnr=psnr))
            trajectories.append(dict(split=split, triplet=f"t{i}", midpoint_deviation=0.2 + 0.01 * i))
    paths = {"metrics": [], "interp": []}
    for split in TRIPLETS:
        table = pd.DataFrame([r for r in rows if r["split"] == split])
        table.to_csv(folder / f"metrics-{split}.csv", index=False)
        pd.DataFrame([r for r in interp_rows if r["split"] == split]).to_csv(folder / f"interp-{split}.csv",
                                                                             index=False)
        paths["metrics"].append(folder / f"metrics-{split}.csv")
        paths["interp"].append(folder / f"interp-{split}.csv")
    pd.DataFrame(trajectories).to_csv(folder / "trajectories.csv", index=False)
    pd.DataFrame({"channel": range(shape[0]), "scaled_aggregate_kl": [0.5 * scale] * shape[0]}).to_csv(
        folder / "channels.csv", index=False)
    (folder / "geometry.json").write_text(json.dumps({"latent_shape": list(shape), "vae": {
        "family": family, "posterior": "gaussian" if family == "AutoencoderKL" else "deterministic",
        "scaling_factor": scale, "shift_factor": 0.0, "source": model}}))
    (folder / "encode.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:02\n")
    (folder / "equivariance.json").write_text(json.dumps({  # what rule equivariance writes (its summary)
        "subcell": {"latent_error": 0.05 * scale, "psnr_lost": 4.0}, "cell": {"latent_error": 1e-5, "psnr_lost": 0.3}}))
    return {**paths, "latent_space": model, "geometry": folder / "geometry.json", "channels": folder / "channels.csv",
            "trajectories": folder / "trajectories.csv", "equivariance": folder / "equivariance.json",
            "encode_benchmarks": [folder / "encode.tsv"],
            "decode_benchmarks": [folder / "encode.tsv"]}


@pytest.fixture()
def compared(tmp_path):
    models = {"kl": write_model(tmp_path, "kl", 0.0, 2.0, mlp_better=True),
              "taesd": write_model(tmp_path, "taesd", -1.5, 3.0, mlp_better=False, shape=(16, 4, 4),
                                   family="AutoencoderTiny", seconds=1.0)}
    table = compare.compare_vaes(models=models, baseline="kl", val_split="val", resamples=200,
                                 outputs=compare.CompareOutputs(tmp_path / "vaes.csv", tmp_path / "vaes.json"),
                                 learned=("linear", "mlp"))
    return tmp_path, table


def test_the_table_pairs_triplets_and_reads_each_models_own_ceiling(compared):
    root, table = compared
    assert list(table.columns) == compare.TABLE_COLUMNS
    test = table[(table["split"] == "test") & (table["origin"] == "all")].set_index("model")
    assert test.loc["kl", "recon_psnr"] == pytest.approx(30 + 0.1 * np.arange(8).mean())
    taesd = test.loc["taesd"]
    # every triplet is 1.5 dB worse: the paired difference has no spread at all
    assert taesd["recon_psnr_vs_baseline"] == pytest.approx(-1.5)
    assert taesd["recon_psnr_vs_baseline_ci_low"] == pytest.approx(-1.5)
    assert test.loc["kl", "lerp_gap_db"] == pytest.approx(2.0) and taesd["lerp_gap_db"] == pytest.approx(3.0)
    # the best learned predictor is chosen on val (mlp for kl, linear for taesd) and scored on test as it is
    assert (test.loc["kl", "best_learned"], taesd["best_learned"]) == ("mlp", "linear")
    assert test.loc["kl", "best_gap_db"] == pytest.approx(27.0 - 24.0) and taesd["best_gap_db"] == pytest.approx(2.5)
    assert taesd["latent_bytes"] == 16 * 4 * 4 * 4 and taesd["prior_kl"] == pytest.approx(0.5)
    assert taesd["latent_flow_gap_db"] == pytest.approx(3.0 - 0.25) and taesd["shift_error_subcell"] == 0.05
    assert taesd["shift_error_cell"] == 1e-5 and taesd["shift_psnr_lost_subcell"] == 4.0
    frames = 3 * sum(TRIPLETS.values())
    assert taesd["encode_ms_per_image"] == pytest.approx(1000.0 / frames)
    assert np.isnan(test.loc["kl", "recon_psnr_vs_baseline"])  # the baseline has no difference to itself
    by_origin = table[(table["split"] == "test") & (table["origin"] == "Disney")]
    assert set(by_origin["n_triplets"]) == {4}
    record = json.loads((root / "vaes.json").read_text())
    assert record["settings"]["baseline"] == "kl" and record["models"]["taesd"]["family"] == "AutoencoderTiny"


def test_an_unknown_baseline_names_the_config_key(tmp_path):
    models = {"kl": write_model(tmp_path, "kl", 0.0, 2.0, mlp_better=True)}
    with pytest.raises(ValueError, match="compare.baseline: 'sdxl'"):
        compare.compare_vaes(models=models, baseline="sdxl", val_split="val", learned=["mlp"],
                             outputs=compare.CompareOutputs(tmp_path / "v.csv", tmp_path / "v.json"))


def test_the_report_section_marks_the_best_per_column(compared):
    root, _ = compared
    inputs = ReportInputs(config={}, models=["kl", "taesd"], splits=[], frames={}, skipped={}, recon={},
                          latents={}, metric_tables={}, metrics_summary="", metrics_spec="", collapse={},
                          compare_table=root / "vaes.csv", compare_summary=root / "vaes.json")
    ctx = context.Context(inputs, root / "figures", root / "report.html")
    try:
        html = page.render_section(comparison.section(ctx))
    finally:
        ctx.figures.close()
    first_table = html.split('id="comparison-breakdown"')[0]
    rows = {row.split("</td>")[0].split(">")[-1]: row for row in first_table.split("<tr>")[2:]}
    assert "30.35 ★" in rows["kl (baseline)"] and "★" in rows["taesd"]  # PSNR best for kl, encode cost for taesd
    assert "(Δ -1.50 [-1.50, -1.50])" in rows["taesd"] and 'class="num bad' in rows["taesd"]
    assert "AutoencoderTiny, deterministic" in rows["taesd"] and "no posterior variance" in html
    assert html.count('class="vae-switch"') == 1 and (root / "figures" / "vae_comparison.svg").is_file()


def test_without_a_comparison_there_is_no_section(tmp_path):
    inputs = ReportInputs(config={}, models=[], splits=[], frames={}, skipped={}, recon={}, latents={},
                          metric_tables={}, metrics_summary="", metrics_spec="", collapse={})
    ctx = context.Context(inputs, tmp_path / "f", tmp_path / "r.html")
    try:
        assert comparison.section(ctx) is None
    finally:
        ctx.figures.close()
