"""The real study's configs on a small ATD-12K-shaped tree, as a user runs them (the repository's config.yaml, and
config/atd12k.yaml with its two paths set, with config/atd12k-540p.yaml laid over it): a dry run of each, the test
split's metrics with annotations, then the whole study at the field's geometry (960 x 540 scaled down 30 times, so
18 rows: no multiple of 8, padded for the VAE) to its report; on a Slurm cluster as a dry run. The 540p run is
atd12k.yaml's in every key but the frames' size and fit."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from latent_interp import assign, data, interp, store, synthetic
from latent_interp.report.page import read_payload
from conftest import REPO, job_counts, require_tier

pytestmark = pytest.mark.workflow

TRAIN_TRIPLETS = 12


def _write_triplet(folder, spec, ext, size):
    folder.mkdir(parents=True)
    for k, frame in enumerate(synthetic.render_triplet(spec, *size), start=1):
        Image.fromarray(frame).save(folder / f"frame{k}.{ext}")


@pytest.fixture(scope="module")
def atd_tree(tmp_path_factory):
    """train_10k (jpg), test_2k_540p (png, 960x540 scaled down 10x) with annotations, as released."""
    root = tmp_path_factory.mktemp("atd12k")
    for spec in synthetic.triplet_specs(0, "train", TRAIN_TRIPLETS):
        _write_triplet(root / "train_10k" / spec.name, spec, "jpg", (64, 36))
    for spec in synthetic.triplet_specs(0, "test", 4):
        _write_triplet(root / "test_2k_540p" / spec.name, spec, "png", (96, 54))
        annotation = root / "test_2k_annotations" / spec.name / f"{spec.name}.json"
        annotation.parent.mkdir(parents=True)
        annotation.write_text(json.dumps({
            "level": int(spec.seed[2] % 3), "motion_RoI": {"x": 240, "y": 135, "width": 480, "height": 270},
            "image_size": [960, 540], "general_motion_type": spec.motion, "behavior": "others"}))
    return root


@pytest.fixture(scope="module")
def workdir(atd_tree, micro_vae_dir, tmp_path_factory):
    """A working directory as a user has it: the repository's config.yaml, and config/atd12k.yaml with the two
    paths set (and, for the suite's time, its predictors stopped at 5 epochs, its fine-tunes at 2, and its embeddings
    PCA only)."""
    workdir = tmp_path_factory.mktemp("study")
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    config = yaml.safe_load((REPO / "config" / "atd12k.yaml").read_text())
    config["data"]["root"] = str(atd_tree)
    config["data"]["val_fraction"] = 0.25
    config["vaes"]["kl-f8-anime2"] = str(micro_vae_dir)
    config["vae"]["device"] = "cpu"
    config["preprocess"]["size"] = 32
    # the real study's predictor schedule (200 epochs, patience 20) is minutes on 12 tiny triplets and tests
    # nothing more than 5 epochs do, nor do the fine-tunes' 10 epochs more than 2; UMAP and t-SNE are the demo's too,
    # and the suite's tiny demo run embeds with both
    for name in ("mlp", "unet", "flow_unet"):
        config["interp"][name]["epochs"] = 5
    for entry in config["finetunes"].values():
        if entry:  # the demo's fine-tunes are left out with null
            entry["epochs"] = 2
    assert config["embed"]["methods"] == ["pca", "umap", "tsne"]
    config["embed"]["methods"] = ["pca"]
    (workdir / "atd12k.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    field = yaml.safe_load((REPO / "config" / "atd12k-540p.yaml").read_text())
    assert field["preprocess"]["size"] == [960, 540]
    field["preprocess"]["size"] = FIELD_SIZE
    (workdir / "atd12k-540p.yaml").write_text(yaml.safe_dump(field, sort_keys=False))
    return workdir


FIELD_SIZE = [32, 18]  # the 540p config's [960, 540] over 30, as the tree's 96 x 54 test frames are over 10
AT_540P = ("atd12k.yaml", "atd12k-540p.yaml")


def snakemake(workdir, *args, cores=("--cores", "2"), configs=AT_540P):
    require_tier("workflow", "Snakemake")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", *(str(workdir / name) for name in configs), *cores, *args]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def planned_jobs(workdir, configs=AT_540P):
    jobs = job_counts(snakemake(workdir, "-n", configs=configs))
    assert "synthesize_train" not in jobs and jobs["ingest"] == 3 and jobs["report"] == 1
    # Only kl-f8-anime2 and its three fine-tunes (atd12k.yaml leaves the demo's VAEs and fine-tunes out with null).
    # Three latent spaces: the decoder-only fine-tune shares kl-f8-anime2's latents, the equivariant and anti-aliased
    # ones have their own; reconstructed and scored per model.
    assert jobs["finetune"] == 3 and jobs["encode"] == 3 * 3 and jobs["reconstruct"] == 4 * 3
    assert jobs["interp_train"] == 3 and jobs["interp"] == 4 * 2 and jobs["geometry"] == 3
    return jobs


@pytest.mark.readme("snakemake --cores 16 --configfile config/atd12k.yaml")
def test_real_config_dry_runs(workdir):
    """Both real-study configs plan the same jobs; the one at 256 px runs here as a dry run, since the 540p run
    (test_the_real_study_reaches_its_report) is it in every key but preprocess."""
    assert planned_jobs(workdir, configs=("atd12k.yaml",)) == planned_jobs(workdir)


@pytest.mark.readme("snakemake --profile profiles/slurm --configfile config/atd12k.yaml")
def test_real_config_dry_runs_on_slurm(workdir):
    """The cluster command plans the same jobs; it needs a cluster, so it is a dry run here (tests/test_slurm.py runs
    the demo on a real one)."""
    on_slurm = snakemake(workdir, "-n", cores=("--profile", str(REPO / "profiles" / "slurm")),
                         configs=("atd12k.yaml",))
    assert job_counts(on_slurm) == planned_jobs(workdir)


def test_val_is_carved_from_train_10k_by_name(workdir, atd_tree):
    snakemake(workdir, "results/frames/train.zarr", "results/frames/val.zarr")
    train = store.names(store.open_store(workdir / "results" / "frames" / "train.zarr"))
    val = store.names(store.open_store(workdir / "results" / "frames" / "val.zarr"))
    assert sorted(train + val) == sorted(p.name for p in (atd_tree / "train_10k").iterdir())
    assert val and all(assign.hash_fraction(name) < 0.25 for name in val)
    assert all(assign.hash_fraction(name) >= 0.25 for name in train)


def test_test_split_metrics_carry_annotations_and_roi(workdir):
    snakemake(workdir, "results/metrics/kl-f8-anime2/test.csv")
    frames = store.open_store(workdir / "results" / "frames" / "test.zarr")
    assert frames[store.FRAMES].shape == (4, 3, 18, 32, 3)  # 96x54 png at 32 x 18: same aspect, nothing stretched
    assert frames.attrs["preprocess"]["size"] == FIELD_SIZE and frames.attrs["preprocess"]["fit"] == "crop"
    latents = store.open_store(workdir / "results" / "latents" / "kl-f8-anime2" / "test.zarr")
    assert latents.attrs["vae_pad"]["frame_size"] == [18, 32] and latents[store.MEAN].shape[-2:] == (3, 4)
    recon = store.open_store(workdir / "results" / "recon" / "kl-f8-anime2" / "test.zarr")
    assert recon[store.FRAMES].shape == frames[store.FRAMES].shape  # decoded at 24 rows, cropped back to 18
    table = pd.read_csv(workdir / "results" / "metrics" / "kl-f8-anime2" / "test.csv")
    assert {"roi_psnr", "roi_ssim", "level", "general_motion_type", "behavior"} <= set(table.columns)
    assert table["roi_psnr"].notna().all() and set(table["behavior"]) == {"others"}
    assert np.isfinite(table["roi_ssim"]).all()


def test_the_latent_study_reports_the_annotated_test_split_by_level_and_roi(workdir):
    snakemake(workdir, "results/interp/kl-f8-anime2/test.csv", "results/geometry/kl-f8-anime2/geometry.json")
    table = pd.read_csv(workdir / "results" / "interp" / "kl-f8-anime2" / "test.csv")
    assert {"roi_psnr", "roi_ssim", "level", "general_motion_type"} <= set(table.columns)
    assert table["roi_psnr"].notna().all() and len(table) == 4 * len(interp.METHODS)
    field_columns = ["animeinterp_psnr", "animeinterp_ssim", "animeinterp_roi_psnr", "animeinterp_roi_ssim",
                     "eisai_chamfer"]
    assert table[field_columns].notna().all().all() and table["eisai_lpips"].isna().all()  # no LPIPS backbone
    summary = interp.summarize_interp(tables=[workdir / "results" / "interp" / "kl-f8-anime2" / "test.csv"],
                                      summary=workdir / "summary.csv", resamples=20)
    levels = {str(level) for level in table["level"].unique()}
    assert set(summary["level"]) == {"all", *levels} and summary["roi_psnr_vs_lerp"].notna().any()
    geometry = json.loads((workdir / "results" / "geometry" / "kl-f8-anime2" / "geometry.json").read_text())
    assert set(geometry["trajectories"]["by_level"]) == levels
    assert geometry["probes"]["origin"]["train_split"] == "train" and geometry["probes"]["origin"]["test_frames"] == 12


@pytest.mark.readme("snakemake --cores 8 --configfile config/atd12k.yaml config/atd12k-540p.yaml")
def test_the_real_study_reaches_its_report(workdir):
    """The whole study at the field's geometry, as `snakemake --cores N --configfile config/atd12k.yaml
    config/atd12k-540p.yaml` runs it, to results/report.html: only kl-f8-anime2 and its fine-tunes are in it (the
    demo's VAEs and fine-tunes are left out with null), and the report sets its protocols' figures beside the
    published ones."""
    snakemake(workdir)
    results = workdir / "results"
    page = (results / "report.html").read_text()
    payload = read_payload(page)
    models = ["kl-f8-anime2", "kl-f8-anime2-finetuned", "kl-f8-anime2-equivariant", "kl-f8-anime2-antialias"]
    assert payload["models"] == models
    assert "tiny-kl" not in page and "tiny-taesd" not in page  # nor in the provenance's config
    # the decoder-only fine-tune decodes kl-f8-anime2's latents; the equivariant and anti-aliased ones have their own
    assert sorted(p.name for p in (results / "latents").iterdir()) == ["kl-f8-anime2", "kl-f8-anime2-antialias",
                                                                      "kl-f8-anime2-equivariant"]
    summary = pd.read_csv(results / "interp" / "summary.csv", keep_default_na=False)
    assert set(summary["model"]) == set(models)
    assert {"0", "1", "2"} & set(summary.loc[summary["split"] == "test", "level"].astype(str))  # by difficulty
    compare = pd.read_csv(results / "compare" / "vaes.csv")
    assert set(compare["model"]) == set(models) and set(compare["baseline"]) == {"kl-f8-anime2"}
    assert 'id="interp-field-table"' in page and "published, not rerun here" in page and "29.29" in page
    assert "frames 32 x 18 (crop)" in page  # the run's geometry, beside the published one
    # the anti-aliased fine-tune: its filters kept in config.json, its sub-cell shift error tabled against its base
    antialiased = json.loads((results / "models" / "kl-f8-anime2-antialias" / "config.json").read_text())
    assert antialiased["latent_interp_antialias"]["blur"] == 3
    effects = pd.read_csv(results / "compare" / "finetunes.csv").query("finetune == 'kl-f8-anime2-antialias'")
    assert {"shift_error_subcell", "recon_psnr", "latent_flow_gap_db"} <= set(effects["measure"])
    layers = pd.read_csv(results / "geometry" / "kl-f8-anime2-antialias" / "equivariance_layers.csv")
    assert set(layers["part"]) == {"encoder", "decoder"} and "kl-f8-anime2-antialias against kl-f8-anime2" in page
    assert "Nothing to be done" in snakemake(workdir, "-n")
