"""Re-timed clips (rule inbetween, latent_interp.inbetween): a video's drawings with F - 1 in-betweens between each
two, at their times; known answers on videos the tests encode themselves."""

import json

import av
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from latent_interp import data, inbetween, interp, vae, video
from latent_interp.settings import Preprocess, VaeRun
from test_video import shots, write_held

SIZE = 32


def decoded(path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of a clip (RGB uint8) and its time (s), as a player reads them."""
    with av.open(str(path)) as container:
        frames = [(frame.to_ndarray(format="rgb24"), float(frame.time)) for frame in container.decode(video=0)]
    return np.stack([f for f, _ in frames]), np.array([t for _, t in frames])


@pytest.fixture(scope="module")
def twos(tmp_path_factory):
    """Two shots of 8 drawings on twos, cut together, and their extraction."""
    folder = tmp_path_factory.mktemp("retime")
    path = folder / "twos.mp4"
    write_held(path, shots(1), "twos", "libx264")
    extraction = folder / "extraction"
    video.extract_video(video=path, extraction=extraction, settings={})
    return path, extraction


def retime(twos, micro_vae_dir, out, **settings):
    path, extraction = twos
    settings = {"method": "latent_lerp", "factor": 2, "codec": "lossless", **settings}
    return inbetween.retime_video(inputs=inbetween.ClipInputs(path, extraction), clip=out, model="micro",
                                  vae_run=VaeRun(micro_vae_dir, device="cpu"), preprocess=Preprocess(SIZE),
                                  settings=settings)


def test_the_extraction_lists_every_drawing_with_its_time_and_scene(twos):
    _, extraction = twos
    drawings = video.read_drawings(extraction)
    assert drawings["drawing"].tolist() == list(range(16)) and drawings["frame"].tolist() == list(range(0, 32, 2))
    np.testing.assert_allclose(drawings["time"], np.arange(16) * 2 / 24, atol=1e-6)
    assert drawings["scene"].tolist() == [0] * 8 + [1] * 8


def test_the_plan_puts_f_minus_one_inbetweens_between_drawings_and_holds_across_a_cut(twos):
    drawings = video.read_drawings(twos[1])
    frames = inbetween.plan(drawings, 3)
    assert len(frames) == 3 * (16 - 1) + 1 and frames["frame"].tolist() == list(range(len(frames)))
    assert (frames["kind"] == "drawing").sum() == 16 and (frames["kind"] == "held").sum() == 2  # the cut's 2 slots
    assert frames.loc[frames["kind"] == "held", "drawing"].tolist() == [7, 7]
    between = frames[frames["drawing"] == 3]
    np.testing.assert_allclose(between["t"], [0, 1 / 3, 2 / 3])
    np.testing.assert_allclose(between["time"], 3 * 2 / 24 + np.array([0, 1, 2]) * 2 / 24 / 3)
    assert np.all(np.diff(frames["time"]) > 0)


def test_a_video_on_twos_at_factor_2_has_2n_minus_1_frames_with_the_drawings_where_the_manifest_says(
        twos, micro_vae_dir, tmp_path):
    path, extraction = twos
    record = retime(twos, micro_vae_dir, tmp_path / "clip")
    manifest = pd.read_csv(tmp_path / "clip" / inbetween.MANIFEST, keep_default_na=False)
    frames, times = decoded(tmp_path / "clip" / inbetween.CLIP)
    assert record["counts"] == {"drawings": 16, "frames": 31, "inbetweens": 14, "held": 1, "pairs_without_flow": 0}
    assert len(frames) == len(manifest) == 2 * 16 - 1 and frames.shape[1:] == (SIZE, SIZE, 3)
    np.testing.assert_allclose(times, manifest["time"], atol=1e-4)  # the clip keeps the video's timing
    drawings = video.read_drawings(extraction)
    sources = [data.preprocess_frame(Image.fromarray(image), SIZE)
               for image in video.frames_at(path, drawings["frame"])]
    for row in manifest[manifest["kind"] == "drawing"].itertuples():
        np.testing.assert_array_equal(frames[row.frame], sources[row.drawing])  # lossless: the drawing itself
    assert manifest.loc[1, ["drawing", "next_drawing"]].tolist() == [0, "1"]  # whole numbers, empty for drawings
    assert manifest.loc[0, "next_drawing"] == ""
    held = manifest[manifest["kind"] == "held"].iloc[0]
    np.testing.assert_array_equal(frames[held["frame"]], sources[7])
    assert "scene cut" in held["note"]
    # an in-between is latent_lerp at t = 0.5 of its two drawings, as rule interp computes it
    model, vae_record = vae.load_vae(str(micro_vae_dir), torch.device("cpu"))
    made, _ = inbetween.make_inbetweens(np.stack([sources[2], sources[3]])[None], [0.5], "latent_lerp", model,
                                        vae_record, {}, torch.device("cpu"), 8)
    slot = manifest[(manifest["drawing"] == 2) & (manifest["kind"] == "inbetween")]["frame"].item()
    np.testing.assert_array_equal(frames[slot], made[0.5][0])
    compare, _ = decoded(tmp_path / "clip" / inbetween.COMPARE)
    assert compare.shape == (31, SIZE + inbetween.LABEL_BAND, 3 * SIZE, 3)
    np.testing.assert_array_equal(compare[slot, inbetween.LABEL_BAND:, :SIZE], sources[2])  # the source holds 2
    blend = interp.pixel_blend(sources[2][None], sources[3][None], np.array([0.5]))[0]
    np.testing.assert_array_equal(compare[slot, inbetween.LABEL_BAND:, 2 * SIZE:], blend)
    saved = json.loads((tmp_path / "clip" / inbetween.RECORD).read_text())
    assert saved["settings"]["method"] == "latent_lerp" and saved["vae"]["sha256"] and saved["skipped"] is None


@pytest.mark.parametrize("method", ["pixel_flow", "decoder_flow@1", "recon_flow"])
def test_flow_methods_at_thirds_give_3n_minus_2_frames_in_h264(twos, micro_vae_dir, tmp_path, method):
    record = retime(twos, micro_vae_dir, tmp_path / "clip", method=method, factor=3, codec="h264")
    frames, _ = decoded(tmp_path / "clip" / inbetween.CLIP)
    manifest = pd.read_csv(tmp_path / "clip" / inbetween.MANIFEST, keep_default_na=False)
    assert len(frames) == record["counts"]["frames"] == 3 * 16 - 2
    assert sorted(manifest.loc[manifest["kind"] == "inbetween", "t"].round(4).unique()) == [0.3333, 0.6667]


def test_pairs_whose_flow_is_not_finite_fall_back_to_the_pixel_blend_and_say_so(twos, micro_vae_dir, tmp_path,
                                                                                monkeypatch):
    """A flow that fails for a pair of drawings cannot be known before the job: its in-betweens are pixel_blend's,
    the manifest notes each one and the record counts the pairs."""
    from latent_interp import flow

    real = flow.estimator

    def failing(settings):  # the flow of the pairs from drawing 4 on (first frame 8) is NaN
        estimate = real(settings)
        calls = iter(range(10 ** 6))
        return lambda a, b: estimate(a, b) if next(calls) < 2 * 4 else np.full((*a.shape, 2), np.nan, np.float32)

    monkeypatch.setattr(flow, "estimator", failing)
    record = retime(twos, micro_vae_dir, tmp_path / "clip", method="pixel_flow")
    manifest = pd.read_csv(tmp_path / "clip" / inbetween.MANIFEST, keep_default_na=False)
    frames, _ = decoded(tmp_path / "clip" / inbetween.CLIP)
    sources = np.stack([frames[row.frame] for row in manifest[manifest["kind"] == "drawing"].itertuples()])
    noted = manifest[manifest["note"].str.contains("pixel_blend")]
    assert record["counts"]["pairs_without_flow"] == 14 - 4  # 14 pairs within the two scenes, 4 with a flow
    assert sorted(noted["drawing"]) == [k for k in range(4, 15) if k != 7] and (noted["kind"] == "inbetween").all()
    for row in noted.itertuples():
        blend = interp.pixel_blend(sources[row.drawing][None], sources[row.drawing + 1][None], np.array([0.5]))[0]
        np.testing.assert_array_equal(frames[row.frame], blend)


def test_a_video_of_one_drawing_gets_no_clip_and_says_why(micro_vae_dir, tmp_path):
    path = tmp_path / "still.mp4"
    write_held(path, [shots(1)[0][:1]], "twos", "libx264")
    extraction = tmp_path / "extraction"
    video.extract_video(video=path, extraction=extraction, settings={})
    record = retime((path, extraction), micro_vae_dir, tmp_path / "clip")
    assert record["skipped"].startswith("1 drawing in its extraction")
    assert sorted(p.name for p in (tmp_path / "clip").iterdir()) == [inbetween.RECORD]


def test_the_schema_offers_every_method_that_does_not_see_frame_2():
    from latent_interp import schema

    offered = schema.section("inbetween.method")["enum"]
    assert offered == [name for name in interp.METHODS if name not in interp.SEES_FRAME2]


def test_the_report_lists_each_clip_with_its_files_and_each_video_without_one_with_why(twos, micro_vae_dir,
                                                                                        tmp_path):
    from types import SimpleNamespace

    from latent_interp.report import clips

    retime(twos, micro_vae_dir, tmp_path / "results" / "inbetween" / "micro" / "twos.mp4")
    (tmp_path / "results" / "inbetween" / "micro" / "still.mp4").mkdir(parents=True)
    (tmp_path / "results" / "inbetween" / "micro" / "still.mp4" / inbetween.RECORD).write_text(json.dumps(
        {"skipped": "1 drawing in its extraction: an in-between needs two", "settings": {}}))
    ctx = SimpleNamespace(report_dir=tmp_path / "results", inputs=SimpleNamespace(clips={
        ("micro", name): tmp_path / "results" / "inbetween" / "micro" / name for name in ("twos.mp4", "still.mp4")}))
    table, skipped = clips.clips_table(ctx)
    assert skipped == ["still.mp4 (micro): no clip, 1 drawing in its extraction: an in-between needs two."]
    (row,) = table.rows
    assert [cell.text for cell in row[:8]] == ["twos.mp4", "micro", "16", "31", "14", "1", "latent_lerp", "2"]
    assert row[8].links[0] == ("inbetween.mp4", "inbetween/micro/twos.mp4/inbetween.mp4")
