"""The study on videos (data.layout: video), as a user runs config/video-example.yaml: the workflow renders its demo
videos, extracts each in a job of its own, and goes on to the report; then the same videos read as files, where a
new video extracts alone and reruns only its split, and a broken one stops a data.on_error: fail run naming it.

The example runs laid over a tiny copy of the demo config (one VAE, no fine-tune, PCA only) with a last overlay that
keeps it small: 96 x 54 videos, at most 4 triplets each."""

import json
import shutil

import av
import numpy as np
import pandas as pd
import pytest
import yaml

from latent_interp import inbetween, store, video
from latent_interp.report.page import read_payload
from conftest import REPO, job_counts, new_workdir, snakemake, tiny_config

pytestmark = pytest.mark.workflow

EXAMPLE = REPO / "config" / "video-example.yaml"
VIDEOS = {"train": 2, "val": 1, "test": 3}  # test: on twos, on threes, and irregular
CAP = 4


def small(workdir, **data):
    """The overlay that keeps the example small, with ``data`` keys over it."""
    overlay = {"data": {"synthetic": {"videos": VIDEOS, "raw_size": [96, 54]}, "video": {"max_triplets": CAP}, **data}}
    (workdir / "small.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return [workdir / "config.yaml", EXAMPLE, workdir / "small.yaml"]


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    config = tiny_config()
    config["vaes"] = {"tiny-kl": config["vaes"]["tiny-kl"]}
    config["finetunes"] = None
    config["compare"]["baseline"] = "tiny-kl"
    config["embed"]["methods"] = ["pca"]
    workdir = new_workdir(tmp_path_factory, "videos", config)
    snakemake(workdir, configfiles=small(workdir))
    return workdir


@pytest.mark.readme("snakemake --cores 8 --configfile config/video-example.yaml")
def test_the_example_goes_from_videos_to_the_report(video_run):
    results = video_run / "results"
    extractions = sorted((results / "videos").glob("*/*"))
    assert [p.relative_to(results / "videos").as_posix() for p in extractions] == [
        "test/Disney_test_000.mp4", "test/Disney_test_002.avi", "test/Japan_test_001.mkv",
        "train/Disney_train_000.mp4", "train/Japan_train_001.mkv", "val/Disney_val_000.mp4"]
    for extraction in extractions:
        record, manifest = video.read_record(extraction), video.read_manifest(extraction)
        assert record["skipped"] is None and record["counts"]["cuts"] == 1 and record["counts"]["kept"] == CAP
        assert record["counts"]["dropped"]["cap"] > 0 and len(record["video"]["sha256"]) == 64
        split, name = extraction.parent.name, extraction.name
        assert (results / "logs" / "extract_video" / split / f"{name}.log").is_file()
        assert (results / "benchmarks" / "extract_video" / split / f"{name}.tsv").is_file()
        frames = store.open_store(results / "frames" / f"{split}.zarr", "frames")
        kept = manifest[manifest["kept"]]
        middle = dict(zip(store.names(frames), store.middle_times(frames)))
        assert {name: middle[name] for name in kept["triplet"]} == dict(zip(kept["triplet"], kept["t"]))
    train = store.open_store(results / "frames" / "train.zarr", "frames")
    assert train.attrs["counts"]["ingested"] == 2 * CAP and train.attrs["t_source"] == "video timestamps"
    assert set(store.origins(train)) == {"Disney", "Japan"}
    # the irregular timing of the third test video reaches the interpolation tables
    table = pd.read_csv(results / "interp" / "tiny-kl" / "test.csv")
    test = store.open_store(results / "frames" / "test.zarr", "frames")
    expected = dict(zip(store.names(test), store.middle_times(test)))
    np.testing.assert_allclose(table["t"], table["triplet"].map(expected))
    irregular = table[table["triplet"].str.startswith("Disney_test_002.avi")]
    assert len(irregular) and (irregular["t"] != 0.5).any() and (table["t"] == 0.5).any()
    # every method at each triplet's t, and the off-midpoint triplets once more at the midpoint for the comparison
    main, again = table[table["at"] == "t"], table[table["at"] == "midpoint"]
    assert len(main) == len(store.names(test)) * main["method"].nunique()
    assert set(again["triplet"]) == set(main.loc[(main["t"] - 0.5).abs() > 1e-6, "triplet"])
    summary = pd.read_csv(results / "interp" / "summary.csv", keep_default_na=False, na_values=[""])
    overall = summary[(summary["split"] == "test") & (summary["origin"] == "all") & (summary["motion"] == "all")]
    assert (overall["n_off_midpoint"] == again["triplet"].nunique()).all()
    assert overall.set_index("method").loc["pixel_blend", "psnr_vs_midpoint"] != 0
    assert overall["n_triplets"].eq(main["triplet"].nunique()).all()
    report = (results / "report.html").read_text()
    assert "<h3>Videos</h3>" in report and "Disney_train_000.mp4" in report and "cut 2, cap 8" in report
    assert "test: at the true time against the midpoint" in report and "off the midpoint" in report
    # every test video re-timed at factor 2: (n - 1) 2 + 1 frames for n drawings, the drawings where the manifest says
    for name in ("Disney_test_000.mp4", "Disney_test_002.avi", "Japan_test_001.mkv"):
        clip = results / "inbetween" / "tiny-kl" / name
        drawings = video.read_drawings(results / "videos" / "test" / name)
        manifest = pd.read_csv(clip / inbetween.MANIFEST, keep_default_na=False)
        with av.open(str(clip / inbetween.CLIP)) as container:
            count = sum(1 for _ in container.decode(video=0))
        assert count == len(manifest) == 2 * (len(drawings) - 1) + 1
        assert manifest.loc[manifest["kind"] == "drawing", "drawing"].tolist() == drawings["drawing"].tolist()
        assert (clip / inbetween.COMPARE).stat().st_size > 0
        assert json.loads((clip / inbetween.RECORD).read_text())["settings"]["method"] == "latent_flow"
    assert '<h3 id="interp-clips">Re-timed clips</h3>' in report and "Disney_test_002.avi" in report
    assert (results / "figures" / "video_middle_time.png").is_file()
    assert read_payload(report)  # the page's data parses


def test_a_new_video_extracts_alone_and_reruns_only_its_split(video_run):
    """The rendered videos read as files (data.source: files): nothing to redo but the report, which records the
    config; a video added to test is extracted alone and reruns the test split's jobs and the aggregates, nothing of
    train or val."""
    configs = small(video_run, source="files")
    assert set(job_counts(snakemake(video_run, "-n", configfiles=configs).stdout)) <= {"all", "report"}
    folder = video_run / "results" / "synthetic-videos" / "test"
    shutil.copy(video_run / "results" / "synthetic-videos" / "train" / "Japan_train_001.mkv",
                folder / "Japan_added.mkv")
    dry_run = snakemake(video_run, "-n", configfiles=configs).stdout
    jobs = job_counts(dry_run)
    assert jobs["extract_video"] == 1 and jobs["ingest"] == 1 and "results/videos/test/Japan_added.mkv" in dry_run
    assert "encode" in jobs and not {"interp_train", "synthesize_test"} & set(jobs)
    assert jobs["inbetween"] == 1 and "results/inbetween/tiny-kl/Japan_added.mkv" in dry_run  # its clip alone
    assert "split=test" in dry_run and "split=train" not in dry_run and "split=val" not in dry_run
    # a broken file: with data.on_error fail the extraction stops naming it
    (folder / "Disney_broken.mp4").write_bytes(b"")
    failing = small(video_run, source="files", on_error="fail")
    result = snakemake(video_run, "results/videos/test/Disney_broken.mp4", configfiles=failing, check=False)
    log = (video_run / "results" / "logs" / "extract_video" / "test" / "Disney_broken.mp4.log").read_text()
    assert result.returncode != 0 and "Disney_broken.mp4: empty file (config key data.on_error is 'fail'" in log
    assert not (video_run / "results" / "videos" / "test" / "Disney_broken.mp4").exists()
