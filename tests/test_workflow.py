"""Integration: the real Snakemake workflow on a tiny config in a temporary directory.

One module-scoped run is shared by the checks that only read its outputs; checks that edit inputs work on that
same directory afterwards, in file order (pytest runs a module's tests in the order they are written).
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from latent_interp import compare, equivariance, flow, geometry, interp, metrics, predictors, runconfig, store, vae
from latent_interp.report.page import read_payload
from conftest import (BASE, EQUIVARIANT, FINETUNED, MICRO_VAE, REPO, SECOND, SIZE, TRIPLETS, file_digests, job_counts,
                      new_workdir, planned_jobs, snakemake, tiny_config)

pytestmark = pytest.mark.workflow

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def run(workflow_run) -> Path:
    return workflow_run


@pytest.mark.readme("python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && pip install "
                    "--no-deps -r requirements-no-deps.txt && snakemake --cores 8 results/report.html",
                    "snakemake --cores 8 --configfile my.yaml")
def test_outputs_follow_the_schema(run):
    results = run / "results"
    for split in SPLITS:
        frames = store.open_store(results / "frames" / f"{split}.zarr", "frames")
        latents = store.open_store(results / "latents" / "tiny-kl" / f"{split}.zarr", "latents")
        recon = store.open_store(results / "recon" / "tiny-kl" / f"{split}.zarr", "recon")
        count = TRIPLETS[split]
        assert frames[store.FRAMES].shape == (count, 3, SIZE, SIZE, 3) and frames[store.FRAMES].dtype == np.uint8
        assert recon[store.FRAMES].shape == frames[store.FRAMES].shape and recon[store.FRAMES].dtype == np.uint8
        for name in (store.MEAN, store.LOGVAR):
            assert latents[name].shape == (count, 3, 4, SIZE // 8, SIZE // 8) and latents[name].dtype == np.float32
        assert store.names(frames) == store.names(latents) == store.names(recon)
        assert set(store.origins(frames)) == {"Disney", "Japan"}
        assert latents.attrs["vae"]["scaling_factor"] == pytest.approx(0.18215)
        assert latents.attrs["preprocess"]["size"] == [SIZE, SIZE] and latents.attrs["preprocess"]["fit"] == "squash"
        table = pd.read_csv(results / "metrics" / "tiny-kl" / f"{split}.csv")
        assert list(table.columns) == metrics.TABLE_COLUMNS and len(table) == 3 * count
        assert table["psnr"].between(5, 80).all() and table["ssim"].between(-1, 1).all()
        assert (results / "metrics" / "tiny-kl" / f"{split}.spec.json").is_file()
        flows = store.open_store(results / "flow" / f"{split}.zarr", "flow")
        assert store.names(flows) == store.names(frames) and flows.attrs["flow"]["method"] == "dis"
        for name in ("flow_ends", "oracle_flow"):  # the flows at t are computed where used, from the ends
            assert flows[name].shape == (count, 2, SIZE, SIZE, 2) and flows[name].dtype == np.float16
        assert "flow_middle" not in flows
        for name, shape in (("consistent", (count, 2, SIZE, SIZE)), ("still", (count, SIZE, SIZE))):
            assert flows[name].shape == shape and flows[name].dtype == np.uint8
        assert flows["ok"][:].all() and np.isfinite(flows["motion_px"][:]).all()
        flow_table = pd.read_csv(results / "flow" / f"{split}.csv")
        assert list(flow_table.columns) == flow.TABLE_COLUMNS and (flow_table["status"] == "ok").all()
        assert flow_table["triplet"].tolist() == store.names(frames)
    summary = pd.read_csv(results / "metrics" / "summary.csv", keep_default_na=False)
    assert set(summary["split"]) == {*SPLITS, "all"}
    for method in ("pca", "umap", "tsne"):  # the decoder-only fine-tune shares pretrained's latents: embedded once
        embedding = pd.read_csv(results / "embeddings" / "tiny-kl" / f"{method}.csv")
        assert len(embedding) == 3 * sum(TRIPLETS.values()) and embedding["cluster"].notna().all()
        assert (results / "embeddings" / "tiny-kl" / f"{method}.png").stat().st_size > 1000
    assert not (results / "embeddings" / "tiny-kl-finetuned").exists()
    page = (results / "report.html").read_text()
    order = [page.index(f'<section id="{name}">') for name in (
        "overview", "data", "comparison", "reconstruction", "finetune", "interpolation", "geometry", "embeddings",
        "provenance")]
    assert order == sorted(order)
    # Embedded: the VAE comparison bars, equivariance curves and layer errors, each fine-tune's curves, interpolation
    # bars, gap closed by motion and by warping depth (val, test) and predictor curves, trajectories and channels of
    # each latent space (the decoder-only fine-tune shares tiny-kl's).
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # plotly.js holds PNG URIs of its own
    assert markup.count("data:image/png;base64,") == 3 + 2 + 3 * 2 + 1 + 3 * 2
    figures = {p.name for p in (results / "figures").iterdir() if not p.name.startswith(".")}
    spaces = (BASE, SECOND, EQUIVARIANT)
    names = {"vae_comparison", "equivariance", "equivariance_layers",
             *(f"finetune_curves_{name}" for name in (FINETUNED, EQUIVARIANT)),
             *(f"interpolation{kind}_{split}" for kind in ("", "_motion", "_depth") for split in ("val", "test")),
             "predictor_training",
             *(f"{kind}_{space}" for kind in ("trajectories", "channels") for space in spaces),
             *(f"reconstructions_{split}" for split in SPLITS),
             *(f"interpolation_gallery_{model}_{split}" for model in (BASE, SECOND, FINETUNED, EQUIVARIANT)
               for split in ("val", "test")), *(f"embedding_{space}_{m}" for space in spaces
                                                for m in ("pca", "umap", "tsne"))}
    assert figures == {f"{name}.{kind}" for name in names for kind in ("png", "svg")}
    payload = read_payload(page)
    assert len(payload["triplets"]) == sum(TRIPLETS.values()) and len(payload["thumbs"]) == 3 * sum(TRIPLETS.values())
    assert [len(plot["x"]) for plot in payload["embeddings"]] == [3 * sum(TRIPLETS.values())] * 3 * 3
    # Every val and test triplet keeps its in-betweens (the sample covers the tiny splits), so each has a panel.
    assert {k for k, images in payload["images"].items() if images["interp"]} == {
        r["key"] for r in payload["triplets"] if r["split"] != "train"}
    # the pixel-space in-betweens, the same for every model, are stored once: the first model's, the others refer to it
    for images in (images for images in payload["images"].values() if images["interp"]):
        assert images["interp"][BASE]["pixel_blend"].startswith("data:image/jpeg")
        assert all(images["interp"][model]["pixel_blend"] == {"as": BASE} for model in (SECOND, FINETUNED))
        assert images["interp"][SECOND]["latent_lerp"] != images["interp"][BASE]["latent_lerp"]


def test_the_latent_study_scores_every_method_on_val_and_test_for_both_models(run):
    results = run / "results"
    for model in ("tiny-kl", "tiny-kl-finetuned"):
        for split in ("val", "test"):
            table = pd.read_csv(results / "interp" / model / f"{split}.csv")
            scored, _ = interp.table_columns(metrics.PROTOCOLS, annotated=False)  # the demo's three protocols
            assert list(table.columns) == [*interp.KEY_COLUMNS, "at", *scored, "motion_px", "t"]
            assert len(table) == TRIPLETS[split] * len(interp.METHODS) and (table["t"] == 0.5).all()
            assert (table["at"] == "t").all()  # triplet folders: every t is the midpoint, scored once
            ceiling = table[table["method"] == "vae_ceiling"].set_index("triplet")["psnr"]
            frame_2 = pd.read_csv(results / "metrics" / model / f"{split}.csv").query("frame == 2")
            assert (ceiling.loc[frame_2["triplet"]].to_numpy() == frame_2["psnr"].to_numpy()).all()
            group = store.open_store(results / "interp" / model / f"{split}.zarr", "interp")
            assert group["gallery"].shape[0] == TRIPLETS[split] and group.attrs["model"] == model
        assert not (results / "interp" / model / "train.csv").exists()
    summary = pd.read_csv(results / "interp" / "summary.csv", keep_default_na=False)
    assert set(summary["method"]) == set(interp.METHODS) and set(summary["split"]) == {"val", "test"}
    assert {"psnr_vs_lerp_ci_low", "psnr_vs_ceiling", "eisai_chamfer", "animeinterp_ssim_vs_lerp",
            "latent_mse_ci_high"} <= set(summary.columns)
    study = json.loads((results / "geometry" / "tiny-kl" / "geometry.json").read_text())
    assert study["triplets"] == sum(TRIPLETS.values()) and "accuracy" in study["probes"]["origin"]
    trajectories = pd.read_csv(results / "geometry" / "tiny-kl" / "trajectories.csv")
    assert list(trajectories.columns) == geometry.TRAJECTORY_COLUMNS
    # Work done once (bench P8): the decoder-only fine-tune is never encoded; it decodes pretrained's latents, whose
    # encoder digest is its own.
    assert not (results / "geometry" / "tiny-kl-finetuned" / "geometry.json").exists()
    assert not (results / "latents" / "tiny-kl-finetuned").exists()
    recon = store.open_store(results / "recon" / "tiny-kl-finetuned" / "test.zarr", "recon")
    assert recon.attrs["provenance"]["settings"]["decoded"] == "the stored latents of results/latents/tiny-kl/test.zarr"
    pretrained = store.open_store(results / "latents" / "tiny-kl" / "test.zarr", "latents").attrs["vae"]
    assert recon.attrs["vae"]["encoder_sha256"] == pretrained["encoder_sha256"]
    assert recon.attrs["vae"]["sha256"] != pretrained["sha256"]


def test_the_predictors_cannot_see_test_triplets(run):
    """Leak-free by construction: the DAG hands interp_train only the train and val latents, and the saved lists
    of what the predictors were fitted and selected on hold no test triplet."""
    # the target first: --forcerun takes every word up to the next option, a target after it included
    dry_run = snakemake(run, "results/predictors/tiny-kl", "-n", "--forcerun", "interp_train").stdout
    assert job_counts(dry_run) == {"interp_train": 1}
    job = dry_run.split("rule interp_train:")[1].split("\n\n")[0]
    inputs = re.search(r"input: (.*)", job).group(1).split(", ")
    data = [path for path in inputs if not path.startswith(str(REPO / "latent_interp"))]  # the rest: its code
    # each triplet's t from those two splits' frames stores; flow_unet also reads their motion, never another's
    assert data == ["results/latents/tiny-kl/train.zarr", "results/latents/tiny-kl/val.zarr",
                    "results/frames/train.zarr", "results/frames/val.zarr",
                    "results/flow/train.zarr", "results/flow/val.zarr"]
    record = json.loads((run / "results" / "predictors" / "tiny-kl" / "predictors.json").read_text())
    results = run / "results" / "frames"
    assert record["trained_on"] == store.names(store.open_store(results / "train.zarr"))
    assert record["selected_on"] == store.names(store.open_store(results / "val.zarr"))
    assert not set(record["trained_on"] + record["selected_on"]) & set(store.names(store.open_store(results /
                                                                                                    "test.zarr")))


def test_the_finetuned_model_goes_through_every_stage_and_is_compared(run):
    results = run / "results"
    finetuned = results / "models" / "tiny-kl-finetuned"
    record = json.loads((finetuned / "finetune.json").read_text())
    # config.yaml's 2 epochs; 12 train frames, batch 8: 2 steps an epoch
    assert record["recipe"] == "default" and record["steps"] == 2 * 2
    for split in SPLITS:  # decoded by the fine-tuned model, from pretrained's latents (its encoder is theirs)
        recon = store.open_store(results / "recon" / "tiny-kl-finetuned" / f"{split}.zarr", "recon")
        assert recon.attrs["vae"]["source"] == "results/models/tiny-kl-finetuned"
        assert recon.attrs["vae"]["sha256"] != store.open_store(
            results / "latents" / "tiny-kl" / f"{split}.zarr").attrs["vae"]["sha256"]
        table = pd.read_csv(results / "metrics" / "tiny-kl-finetuned" / f"{split}.csv")
        assert len(table) == 3 * TRIPLETS[split] and set(table["model"]) == {"tiny-kl-finetuned"}
    comparison = pd.read_csv(results / "metrics" / "comparison.csv", keep_default_na=False)
    assert list(comparison.columns) == metrics.COMPARISON_COLUMNS
    assert set(comparison["split"]) == {*SPLITS, "all"}
    assert set(comparison["model"]) == {FINETUNED, SECOND, EQUIVARIANT}
    assert set(comparison["baseline"]) == {"tiny-kl"}
    assert (comparison["psnr_diff"] - (comparison["psnr"] - comparison["psnr_baseline"])).abs().max() < 1e-3  # %.6g
    assert not json.loads((results / "metrics" / "tiny-kl-finetuned" / "collapse.json").read_text())["collapsed"]
    page = (results / "report.html").read_text()
    assert "<h2>Fine-tunes</h2>" in page and "tiny-kl and tiny-kl-finetuned, image by image" in page


def test_the_equivariant_finetune_is_a_latent_space_of_its_own_and_its_effects_are_tabled(run):
    results = run / "results"
    record = json.loads((results / "models" / EQUIVARIANT / "finetune.json").read_text())
    assert record["recipe"] == "equivariant" and record["provenance"]["settings"]["trainable"] == "all"
    for split in SPLITS:  # its own encoder: latents of its own, unlike its base's
        latents = store.open_store(results / "latents" / EQUIVARIANT / f"{split}.zarr", "latents")
        base = store.open_store(results / "latents" / BASE / f"{split}.zarr", "latents")
        assert latents.attrs["vae"]["encoder_sha256"] != base.attrs["vae"]["encoder_sha256"]
        assert not np.array_equal(latents[store.MEAN][:], base[store.MEAN][:])
    assert (results / "geometry" / EQUIVARIANT / "equivariance.json").is_file()
    assert (results / "embeddings" / EQUIVARIANT / "umap.csv").is_file()
    effects = pd.read_csv(results / "compare" / "finetunes.csv")
    assert list(effects.columns) == compare.FINETUNE_COLUMNS
    assert list(dict.fromkeys(effects["finetune"])) == [FINETUNED, EQUIVARIANT] and set(effects["base"]) == {BASE}
    assert set(effects["measure"]) == set(compare.FINETUNE_MEASURES)
    # rule equivariance ran with tiny-kl's own decoder: no moved-latent PSNR for the decoder-only fine-tune
    assert set(effects.query(f"finetune == '{FINETUNED}'")["measure"]) == set(compare.FINETUNE_MEASURES) - {
        "moved_psnr_1px"}
    assert set(effects.query("measure == 'lerp_psnr'")["split"]) == {"val", "test"}
    assert ((effects["ci_low"] <= effects["difference"] + 1e-9) & (effects["difference"] <= effects["ci_high"] + 1e-9)
            ).all()
    # the decoder-only fine-tune keeps its base's latents: not one of its shift errors moved
    shared = effects.query(f"finetune == '{FINETUNED}' and measure.str.startswith('shift_error')")  # not its decoder
    assert len(shared) == 3 and (shared["difference"] == 0).all()  # at 1 px, below a cell, at one cell
    moved = effects.query(f"finetune == '{EQUIVARIANT}' and measure == 'shift_error_cell'").iloc[0]
    # equivariance_frames is 4, and the test split holds 2 triplets: frame 1 of each is shifted
    assert moved["difference"] != 0 and moved["split"] == "test" and moved["paired"] == TRIPLETS["test"]
    interp = {model: pd.read_csv(results / "interp" / model / "test.csv").query("method == 'latent_flow'")
              for model in (BASE, EQUIVARIANT)}
    row = effects.query(f"finetune == '{EQUIVARIANT}' and measure == 'latent_flow_psnr' and split == 'test'").iloc[0]
    assert row["difference"] == pytest.approx(interp[EQUIVARIANT]["psnr"].mean() - interp[BASE]["psnr"].mean(),
                                              abs=1e-4)
    page = (results / "report.html").read_text()
    assert f"{EQUIVARIANT} (equivariant, from {BASE})" in page and "latents that move with the picture" in page


def test_every_latent_space_is_traced_layer_by_layer_and_warped_inside_its_decoder(run):
    results = run / "results"
    for space in (BASE, SECOND, EQUIVARIANT):  # every latent space's layers, encoder then decoder
        layers = pd.read_csv(results / "geometry" / space / "equivariance_layers.csv")
        assert list(layers.columns) == equivariance.LAYER_COLUMNS and set(layers["part"]) == {"encoder", "decoder"}
        assert sorted(set(layers["shift_px"])) == [1, 2, 4, 8]
        assert "1px" in json.loads((results / "geometry" / space / "equivariance.json").read_text())["layers"]
    effects = pd.read_csv(results / "compare" / "finetunes.csv").query(f"finetune == '{EQUIVARIANT}'")
    assert "shift_error_subcell" in set(effects["measure"])
    for model in (BASE, SECOND, FINETUNED, EQUIVARIANT):
        table = pd.read_csv(results / "interp" / model / "test.csv")
        assert {f"decoder_flow@{k}" for k in range(4)} <= set(table["method"])
    page = (results / "report.html").read_text()
    assert "Equivariance layer by layer" in page and "a 1 px shift is first lost at" in page
    assert f"{EQUIVARIANT} against {BASE} on test: equivariance error, sub-cell shifts" in page
    assert "Warping inside the decoder: latent grid" in page


def test_every_job_left_a_log_and_a_benchmark(run):
    logs = {p.relative_to(run / "results" / "logs").as_posix() for p in (run / "results" / "logs").rglob("*.log")}
    assert {"ingest/val.log", "encode/tiny-kl/val.log", "reconstruct/tiny-kl/test.log",
            "metrics/tiny-kl/train.log", "embed/tiny-kl/umap.log", "report.log",
            "synthesize/val.log", "metrics_summary.log", "collapse_check/tiny-kl.log", f"finetune/{FINETUNED}.log",
            f"finetune/{EQUIVARIANT}.log", f"encode/{EQUIVARIANT}/train.log",
            f"reconstruct/{FINETUNED}/test.log", f"collapse_check/{FINETUNED}.log", "interp_train/tiny-kl.log",
            f"interp/{FINETUNED}/test.log", "interp_summary.log", "geometry/tiny-kl.log", "compare_vaes.log",
            f"reconstruct/{FINETUNED}/val.log", f"encode/{SECOND}/test.log", f"geometry/{SECOND}.log"} <= logs
    assert "encode val" in (run / "results" / "logs" / "encode" / "tiny-kl" / "val.log").read_text()  # tqdm
    assert len(list((run / "results" / "benchmarks").rglob("*.tsv"))) == len(logs)


def test_the_vaes_are_compared_side_by_side(run):
    results = run / "results"
    table = pd.read_csv(results / "compare" / "vaes.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns) == compare.TABLE_COLUMNS
    assert list(dict.fromkeys(table["model"])) == [BASE, SECOND, FINETUNED, EQUIVARIANT]
    test = table[(table["split"] == "test") & (table["origin"] == "all")].set_index("model")
    assert (test.loc[SECOND, "family"], test.loc[SECOND, "posterior"]) == ("AutoencoderTiny", "deterministic")
    assert test.loc[FINETUNED, "latent_space"] == BASE and np.isnan(test.loc[FINETUNED, "encode_ms_per_image"])
    assert test.loc[BASE, "latent_bytes"] == 4 * (SIZE // 8) ** 2 * 4  # 4 channels, float32
    assert np.isnan(test.loc[BASE, "recon_psnr_vs_baseline"]) and test.loc[SECOND, "encode_ms_per_image"] > 0
    for model in (SECOND, FINETUNED):  # paired on the same triplets: the difference of the means
        row = test.loc[model]
        assert row["recon_psnr_vs_baseline"] == pytest.approx(row["recon_psnr"] - test.loc[BASE, "recon_psnr"],
                                                              abs=1e-4)
        assert row["recon_psnr_vs_baseline_ci_low"] <= row["recon_psnr_vs_baseline"] <= \
            row["recon_psnr_vs_baseline_ci_high"]
    psnr = pd.read_csv(results / "interp" / SECOND / "test.csv").pivot_table(index="triplet", columns="method",
                                                                              values="psnr")
    assert test.loc[SECOND, "lerp_gap_db"] == pytest.approx((psnr["vae_ceiling"] - psnr["latent_lerp"]).mean(),
                                                            abs=1e-4)
    assert test.loc[SECOND, "best_learned"] in predictors.PREDICTORS
    assert test.loc[SECOND, "latent_flow_gap_db"] == pytest.approx(
        (psnr["vae_ceiling"] - psnr["latent_flow"]).mean(), abs=1e-4)
    # each latent space's equivariance, from its own equivariance.json (the fine-tune shares tiny-kl's)
    shifts = json.loads((results / "geometry" / SECOND / "equivariance.json").read_text())
    assert test.loc[SECOND, "shift_error_subcell"] == pytest.approx(shifts["subcell"]["latent_error"], rel=1e-5)
    assert test.loc[FINETUNED, "shift_error_cell"] == test.loc[BASE, "shift_error_cell"]
    curve = pd.read_csv(results / "geometry" / BASE / "equivariance.csv")
    assert list(curve.columns) == equivariance.SHIFT_COLUMNS and sorted(set(curve["shift_px"])) == [1, 2, 4, 8, 16]
    # The deterministic encoder: no logvar and no posterior KL anywhere; its prior distance is on scaled latents.
    latents = store.open_store(results / "latents" / SECOND / "test.zarr", "latents")
    assert store.LOGVAR not in latents and latents.attrs["vae"]["posterior"] == "deterministic"
    channels = pd.read_csv(results / "geometry" / SECOND / "channels.csv")
    assert channels["posterior_kl"].isna().all() and channels["scaled_aggregate_kl"].notna().all()
    assert test.loc[SECOND, "prior_kl"] == pytest.approx(channels["scaled_aggregate_kl"].mean(), rel=1e-4)
    page = (results / "report.html").read_text()
    assert "★" in page and page.count('class="vae-switch"') == 3  # comparison, galleries, embeddings
    assert "no posterior variance" in page and f"{FINETUNED} decodes {BASE}&#39;s latents" in page


@pytest.mark.readme("snakemake -n")
def test_second_run_does_nothing(run):
    assert planned_jobs(run) == {}


def test_adding_a_vae_plans_its_jobs_and_removing_one_only_the_aggregates(run, tmp_path):
    """Per-VAE caching: a new entry in vaes brings its own jobs and the cross-VAE aggregates, nothing of the
    others; dropping one reruns the aggregates alone."""
    kl16 = dict(MICRO_VAE, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                scaling_factor=1.5305, shift_factor=0.0609)  # SD3's shape, micro widths
    vae.build_vae(**kl16).save_pretrained(tmp_path / "kl16")
    path = run / "config.yaml"
    original = path.read_text()
    config = yaml.safe_load(original)
    try:
        config["vaes"]["micro-kl16"] = str(tmp_path / "kl16")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        added, dry_run = planned_jobs(run), snakemake(run, "-n").stdout
        del config["vaes"]["micro-kl16"], config["vaes"][SECOND]
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        removed = planned_jobs(run)
    finally:
        path.write_text(original)
    aggregates = {"metrics_summary": 1, "interp_summary": 1, "compare_vaes": 1, "report": 1, "all": 1}
    # the flow is the split's, whatever the VAEs: a new VAE plans no flow job
    assert added == {"encode": 3, "reconstruct": 3, "metrics": 3, "collapse_check": 1, "interp_train": 1,
                     "interp": 2, "geometry": 1, "equivariance": 1, "embed": 3, **aggregates}
    stages = "latents|recon|metrics|interp|predictors|geometry|embeddings"
    per_model = re.findall(rf"output: results/(?:{stages})/([^/\s,]+)/", dry_run)
    assert per_model and set(per_model) == {"micro-kl16"}
    assert removed == aggregates


def test_another_finetune_of_the_same_vae_plans_its_own_jobs_only(run):
    """Two fine-tunes of tiny-kl are in the run; a third (decoder only, another learning rate) brings its fine-tune,
    its decoder's jobs and the aggregates, and nothing of the other two."""
    path = run / "config.yaml"
    original = path.read_text()
    config = yaml.safe_load(original)
    config["finetunes"]["tiny-kl-slow"] = {"vae": BASE, "recipe": "default", "epochs": 2, "lr": 5.0e-5}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        planned, dry_run = planned_jobs(run), snakemake(run, "-n").stdout
    finally:
        path.write_text(original)
    assert planned == {"finetune": 1, "reconstruct": 3, "metrics": 3, "collapse_check": 1, "interp": 2,
                       "metrics_summary": 1, "interp_summary": 1, "compare_vaes": 1, "report": 1, "all": 1}
    per_model = re.findall(r"output: results/(?:models|recon|metrics|interp)/([^/\s,]+)/", dry_run)
    assert set(per_model) == {"tiny-kl-slow"}


def test_two_clean_runs_give_identical_stores_and_tables(run, tmp_path_factory):
    """A second clean run of what the first VAE's chain does not cover: the second VAE, the equivariant fine-tune (an
    encoder of its own), the flows and the tables across models. The first VAE and its decoder-only fine-tune run
    clean a second time on the Slurm test cluster, whose test compares them with this run file by file
    (test_slurm.py); here they are copied from the finished run, so that every stage runs clean twice in the suite,
    once here or there."""
    other = tmp_path_factory.mktemp("again")
    shutil.copytree(run, other, dirs_exist_ok=True)  # mtimes and Snakemake's records kept: the copy is up to date
    results = other / "results"
    rerun = [results / "flow", results / "compare", results / "checkpoints" / f"{EQUIVARIANT}.pt",
             *(results / name for name in ("metrics/summary.csv", "metrics/comparison.csv", "interp/summary.csv")),
             *(results / stage / model for model in (SECOND, EQUIVARIANT)
               for stage in ("latents", "recon", "metrics", "interp", "predictors", "geometry", "embeddings",
                             "models"))]
    for path in rerun:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    targets = ("results/metrics/summary.csv", "results/interp/summary.csv", "results/compare/vaes.csv",
               "results/embeddings/tiny-kl/pca.csv",
               *(f"results/metrics/{model}/collapse.json" for model in (BASE, SECOND, FINETUNED, EQUIVARIANT)))
    planned = job_counts(snakemake(other, *targets, "-n").stdout)
    # nothing of the first VAE's frames, latents or reconstructions: its interpolations rerun (they read the flows)
    assert planned["encode"] == 2 * len(SPLITS) and planned["finetune"] == 1 and planned["flow"] == len(SPLITS)
    assert "ingest" not in planned and planned["reconstruct"] == 2 * len(SPLITS)
    snakemake(other, *targets)

    parts = ("frames", "flow", "latents", "recon", "metrics", "interp", "predictors", "geometry",
             "embeddings/tiny-kl/pca.csv")
    first, second = file_digests(run / "results", *parts), file_digests(results, *parts)
    assert len(first) > 20 and first == second


def test_a_report_setting_reruns_the_interp_stores_not_the_predictors(run):
    """Which in-betweens are kept for the report is no business of the training: the predictors stay."""
    path = run / "config.yaml"
    original = path.read_text()
    config = yaml.safe_load(original)
    config["interp"]["sample_triplets"] = 1
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        planned = planned_jobs(run)
    finally:
        path.write_text(original)
    assert "interp_train" not in planned and planned["interp"] == 4 * 2 and planned["report"] == 1


def test_editing_one_test_frame_reruns_only_the_test_chain(run):
    """Test frames feed no fine-tune and no collapse check: only the test split's jobs of both models rerun, and
    the aggregates that read them. (A train or val frame would also rerun the fine-tune, which reads both.) The
    drawn frames are read as data here (data.source files, every frame an input; the demo reads a drawn split by
    its manifest), the switch accepted with --touch, and switched back the same way at the end."""
    path, original = run / "config.yaml", (run / "config.yaml").read_text()
    config = yaml.safe_load(original)
    config["data"]["source"] = "files"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(run, "--touch", "--quiet")
    try:
        _edit_one_test_frame_and_rerun(run)
    finally:
        path.write_text(original)
        snakemake(run, "--touch", "--quiet")
    assert planned_jobs(run) == {}


def _edit_one_test_frame_and_rerun(run):
    frame = sorted((run / "results" / "synthetic" / "test").glob("*/frame2.jpg"))[0]
    train_latents = run / "results" / "latents" / "tiny-kl" / "train.zarr" / "mean" / "zarr.json"
    finetuned_weights = run / "results" / "models" / "tiny-kl-finetuned" / "diffusion_pytorch_model.safetensors"
    train_mtime, finetuned_mtime = train_latents.stat().st_mtime_ns, finetuned_weights.stat().st_mtime_ns
    from PIL import Image

    image = np.asarray(Image.open(frame)).copy()
    image[:8, :8] = 255 - image[:8, :8]
    Image.fromarray(image).save(frame, quality=95)
    # What a user reads first: each job with its reason, the edited frame named.
    assert f"reason: Updated input files: {frame.relative_to(run).as_posix()}" in snakemake(run, "-n").stdout
    # The predictors read train and val only: they stay; the test split's scores, each latent space's geometry and
    # embeddings (over every split), the comparison and the report rerun. The fine-tuned model decodes tiny-kl's
    # latents: three encodes (tiny-kl, tiny-taesd, the equivariant fine-tune), four reconstructions.
    spaces, models = (BASE, SECOND, EQUIVARIANT), (BASE, SECOND, FINETUNED, EQUIVARIANT)
    assert planned_jobs(run) == {"ingest": 1, "flow": 1, "encode": 3, "reconstruct": 4, "metrics": 4,
                                 "metrics_summary": 1, "interp": 4, "interp_summary": 1, "geometry": 3,
                                 "equivariance": 3, "embed": 3 * 3, "compare_vaes": 1, "report": 1, "all": 1}
    stores_to_write = set(re.findall(r"output: (results/\S+\.zarr)", snakemake(run, "-n").stdout))
    assert stores_to_write == {"results/frames/test.zarr", "results/flow/test.zarr",
                               *(f"results/latents/{model}/test.zarr" for model in spaces),
                               *(f"results/recon/{model}/test.zarr" for model in models)}
    snakemake(run)
    assert train_latents.stat().st_mtime_ns == train_mtime
    assert finetuned_weights.stat().st_mtime_ns == finetuned_mtime
    assert planned_jobs(run) == {}


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["vae"].update(batchsize=4), "batchsize"),
    (lambda c: c["preprocess"].update(size="large"), "size"),
    (lambda c: c.update(embedding={"methods": ["pca"]}), "embedding"),
    (lambda c: c["finetunes"][FINETUNED].update(learning_rate=1e-4), "learning_rate"),
    (lambda c: c["finetunes"][EQUIVARIANT].update(recipe="ldm"), "recipe"),
    # the single fine-tune of before: the message says how to write it now
    (lambda c: c.update(finetune={"enabled": True, "vae": BASE}), f"finetunes:\n    {FINETUNED}: {{vae: {BASE}}}"),
    (lambda c: c["interp"]["unet"].update(chanels=[8, 16]), "chanels"),
    (lambda c: c["data"].update(splits=["train", "test"]), "data.splits"),
    # the single-VAE config of before: the message says how to write it now
    (lambda c: c["vae"].update(pretrained="models/tiny-vae"), "vaes:\n    pretrained: models/tiny-vae"),
    (lambda c: c["finetunes"][FINETUNED].update(vae="sdxl"), f"finetunes.{FINETUNED}.vae: 'sdxl' is not a name"),
    (lambda c: c["compare"].update(baseline="sdxl"), "compare.baseline: 'sdxl'"),
    (lambda c: c["vaes"].update({FINETUNED: "models/tiny-vae"}), f"'{FINETUNED}' is also a name in vaes"),
    (lambda c: c["vaes"].update(extra={"source": "models/tiny-vae", "scale": 2}), "scale"),
    (lambda c: c["vaes"].update(missing="no/such/folder/here"), "config key vaes.missing"),
    (lambda c: c["preprocess"].update(size=[96, 55]), "config key preprocess.size: the height 55 is odd"),
    (lambda c: c["metrics"].update(protocol=["standard", "eisia"]), "protocol"),
    # the re-timed clips: an oracle or the ceiling sees a frame 2 a clip does not have (the other refusals of
    # inbetween, which need a video config: tests/test_runconfig.py)
    (lambda c: c.update(inbetween={"method": "pixel_flow_oracle"}), "instance['inbetween']['method']"),
    (lambda c: c.update(inbetween={"method": "vae_ceiling"}), "instance['inbetween']['method']"),
])
def test_config_mistakes_fail_before_any_job_naming_the_key(tmp_path_factory, edit, key):
    config = tiny_config()
    edit(config)
    workdir = new_workdir(tmp_path_factory, "typo", config)
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert key in message and "Job stats" not in message
    assert not (workdir / "results").exists()


def test_a_root_of_real_data_is_never_drawn_into(tmp_path_factory):
    """data.source synthetic (the default) with data.root pointed at a user's frames: refused before any job, naming
    both keys, and not one file under the root changes."""
    config = tiny_config()
    workdir = new_workdir(tmp_path_factory, "foreign-root", config)
    root = workdir / "my-frames"
    config["data"]["root"] = str(root)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    from PIL import Image

    (root / "train" / "Disney_v1_0").mkdir(parents=True)
    for k in (1, 2, 3):
        Image.fromarray(np.full((36, 64, 3), 40 * k, np.uint8)).save(root / "train" / "Disney_v1_0" / f"frame{k}.jpg")
    before = file_digests(root)
    for args in (("-n",), ()):
        result = snakemake(workdir, *args, check=False)
        message = result.stdout + result.stderr
        assert result.returncode != 0 and "data.root" in message and "data.source: synthetic" in message
        assert "Job stats" not in message
    assert file_digests(root) == before and not (workdir / "results").exists()


def test_without_the_finetune_only_the_listed_vaes_are_planned(tmp_path_factory):
    config = tiny_config()
    config["finetunes"] = None
    planned = planned_jobs(new_workdir(tmp_path_factory, "no-finetune", config))
    assert "finetune" not in planned and planned["encode"] == 2 * len(SPLITS) and planned["collapse_check"] == 2
    assert planned["interp"] == 2 * 2 and planned["geometry"] == 2


def test_a_finetuned_encoder_is_a_latent_space_of_its_own(tmp_path_factory):
    config = tiny_config()
    config["finetunes"][FINETUNED]["trainable"] = "all"
    planned = planned_jobs(new_workdir(tmp_path_factory, "encoder-trained", config))
    assert planned["interp_train"] == 4 and planned["geometry"] == 4 and planned["embed"] == 4 * 3
    assert planned["equivariance"] == 4 and planned["flow"] == len(SPLITS)
    assert planned["encode"] == 4 * len(SPLITS) and planned["finetune"] == 2


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr, result.stdout


def test_snakefmt_is_clean():
    """The Snakefile and the rules keep snakefmt's layout (line length 120, pyproject.toml)."""
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_profiles_name_only_rules_that_exist():
    """A misspelt rule in set-threads or set-resources is silently ignored by Snakemake: catch it here."""
    listing = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO, capture_output=True,
                             text=True).stdout
    rules = {line.strip() for line in listing.splitlines()}
    for profile, key in (("default", "set-threads"), ("default", "set-resources"), ("slurm", "set-threads"),
                         ("slurm", "set-resources"), ("../tests/profiles/slurm-test", "set-resources")):
        entries = yaml.safe_load((REPO / "profiles" / profile / "profile.yaml").read_text()).get(key, [])
        named = {re.split(r"[:=]", entry)[0] for entry in entries}
        assert named <= rules, f"{profile} {key}: no rule {sorted(named - rules)}"


@pytest.mark.readme("snakemake --cores 4 results/metrics/tiny-kl/val.csv")
def test_one_stage_only_runs_its_own_chain(tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "one-stage", tiny_config())
    snakemake(workdir, "results/metrics/tiny-kl/val.csv")
    made = {path.relative_to(workdir / "results").as_posix() for path in (workdir / "results").glob("*/*/*")}
    assert "metrics/tiny-kl/val.csv" in made and "recon/tiny-kl/val.zarr" in made
    assert not {path for path in made if "test" in path or "train" in path or "taesd" in path or "finetuned" in path}
    assert not (workdir / "results" / "report.html").exists()


def job_spans(workdir: Path, rules: set[str]) -> list[tuple[float, float]]:
    """(start, end) of each job of ``rules``, from Snakemake's own records of the outputs (.snakemake/metadata)."""
    spans = set()
    for record in (workdir / ".snakemake" / "metadata").iterdir():
        meta = json.loads(record.read_text())
        if meta.get("rule") in rules:
            spans.add((meta["starttime"], meta["endtime"]))
    return sorted(spans)


def overlapping(spans: list[tuple[float, float]]) -> bool:
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


@pytest.fixture(scope="module")
def two_gpu_jobs(tmp_path_factory):
    """A workdir whose frames are ingested, so that two encode jobs (GPU rules) are ready at once, and a function
    that runs them with the given options on 8 cores (room for both: encode takes 4 threads) and returns their
    spans."""
    workdir = new_workdir(tmp_path_factory, "gpu-jobs", tiny_config())
    snakemake(workdir, "results/frames/val.zarr", "results/frames/test.zarr")
    targets = ["results/latents/tiny-kl/val.zarr", "results/latents/tiny-kl/test.zarr"]

    def encode(*options):
        for target in targets:
            shutil.rmtree(workdir / target, ignore_errors=True)
        snakemake(workdir, *targets, "--cores", "8", *options)  # options may take several words: targets first
        return job_spans(workdir, {"encode"})

    return encode


def planned_encode(workdir: Path, *options: str) -> str:
    """The first planned encode job of a dry run, as Snakemake prints it (threads and resources included)."""
    return snakemake(workdir, "-n", *options).stdout.split("rule encode:")[1].split("\n\n")[0]


@pytest.mark.readme("snakemake --cores 8")
def test_the_default_profile_gives_each_gpu_job_the_runs_one_gpu_token(tmp_path_factory):
    """Where the VAE jobs run on a GPU (vae.device names one, or auto on a machine with one) each holds the one gpu
    token of profiles/default: one at a time, 4 threads. This machine has none, so the jobs are planned, not run."""
    config = tiny_config()
    config["vae"]["device"] = "cuda"
    job = planned_encode(new_workdir(tmp_path_factory, "gpu-device", config), "--cores", "8")
    assert "gpu=1" in job and "threads: 4" in job


@pytest.mark.skipif(runconfig.gpu_visible(), reason="this machine has a GPU: vae.device auto runs on it")
def test_on_a_machine_without_a_gpu_vae_jobs_overlap_on_half_the_cores(two_gpu_jobs, tmp_path_factory):
    """No GPU here: vae.device auto runs on the CPU, so the jobs hold no gpu token and take half the cores (4 of 8,
    1 of 2): two run side by side, which on 2 cores hides each one's start-up (bench P9)."""
    assert overlapping(two_gpu_jobs())
    workdir = new_workdir(tmp_path_factory, "cpu-device", tiny_config())
    on_eight = planned_encode(workdir, "--cores", "8")
    assert "gpu=0" in on_eight and "threads: 4" in on_eight
    assert "threads:" not in planned_encode(workdir, "--cores", "2")  # one thread: Snakemake leaves it unsaid


@pytest.mark.readme("snakemake --cores 8 --resources gpu=2")
def test_two_gpus_run_two_gpu_jobs_at_once(two_gpu_jobs):
    spans = two_gpu_jobs("--resources", "gpu=2")
    assert len(spans) == 2 and overlapping(spans)


@pytest.mark.readme("snakemake --cores 8 --workflow-profile none")
def test_without_the_workflow_profile_rules_keep_their_threads_and_gpu_jobs_no_limit(two_gpu_jobs, tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "no-profile", tiny_config())
    with_profile = snakemake(workdir, "-n", "--cores", "8").stdout
    without = snakemake(workdir, "-n", "--cores", "8", "--workflow-profile", "none").stdout
    threads = [sorted(re.findall(r"threads: \d+", plan)) for plan in (with_profile, without)]  # jobs print unordered
    assert threads[0] == threads[1] and "threads: 4" in threads[0]  # the rules' own (threads_for)
    assert overlapping(two_gpu_jobs("--workflow-profile", "none"))


def test_the_docs_screenshots_show_todays_demo(run):
    """docs/img was taken of a report with today's demo models and sections (tools/report_screenshots.py records
    them beside the images): a new model, renamed model or new section means taking them again."""
    shown = json.loads((REPO / "docs" / "img" / "screenshots.json").read_text())
    page = (run / "results" / "report.html").read_text()
    assert shown["models"] == read_payload(page)["models"]
    assert shown["sections"] == re.findall(r'<section id="(\w+)">', page)
    for name in ("report-top", "report-embedding-hover", "report-triplet-panel", "report-triplet-panel-inbetweens"):
        assert (REPO / "docs" / "img" / f"{name}.png").stat().st_size > 10_000
