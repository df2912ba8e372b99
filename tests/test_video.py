"""Videos in, triplets out (latent_interp.video): known answers on small videos the tests encode themselves with PyAV
(the demo's drawings, held on twos, threes and irregularly, cut together; H.264 in MP4 and Matroska, FFV1, MPEG-4 in
AVI, PNG in QuickTime, GIF; a variable frame rate, a rotation flag, 10-bit and alpha sources), and every kind of bad
file."""

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from latent_interp import data, schema, store, synthetic, video
from latent_interp.settings import Preprocess

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 96, 54
DRAWINGS = 8  # per shot: each shot is one scene, 16 to 24 frames, above the cut detector's 15-frame minimum


def shots(seed: int, count: int = 2) -> list[list[np.ndarray]]:
    """``count`` shots of the demo's drawings, each a scene of its own moving along its motion. The seeds the tests
    use draw shots whose every drawing differs from the one before (seed 6's first does not: a shape that barely
    grows, which extraction rightly takes for one drawing held)."""
    times = np.linspace(0, 1, DRAWINGS)
    specs = synthetic.triplet_specs(seed, "video-tests", count)
    return [synthetic.render_drawings(spec, WIDTH, HEIGHT, times) for spec in specs]


def first_frames(holds: list[int]) -> list[int]:
    """Index of each drawing's first frame, given how long each is held."""
    return list(np.cumsum([0, *holds[:-1]]))


def expected_rows(holds_per_shot: list[list[int]], rate: float = 24) -> pd.DataFrame:
    """The manifest's known answer for shots cut together: every three consecutive drawings, those across the cut
    dropped, t from the holds."""
    starts, scene_of = [], []
    offset = 0
    for scene, holds in enumerate(holds_per_shot):
        starts += [offset + s for s in first_frames(holds)]
        scene_of += [scene] * len(holds)
        offset += sum(holds)
    rows = []
    for k in range(len(starts) - 2):
        f1, f2, f3 = starts[k:k + 3]
        rows.append({"frame1": f1, "frame2": f2, "frame3": f3, "t": (f2 - f1) / (f3 - f1),
                     "kept": scene_of[k] == scene_of[k + 2], "drop_reason": "" if scene_of[k] == scene_of[k + 2]
                     else "cut", "scene": scene_of[k], "time1": f1 / rate})
    return pd.DataFrame(rows)


def write_held(path: Path, drawings_per_shot, timing: str, codec: str, **options) -> list[list[int]]:
    """Encode the shots held by ``timing``; returns each shot's holds."""
    frames, holds = [], []
    for drawings in drawings_per_shot:
        frames += synthetic.held_frames(drawings, timing)
        pattern = synthetic.VIDEO_TIMINGS[timing]
        holds.append([pattern[k % len(pattern)] for k in range(len(drawings))])
    synthetic.write_video(path, frames, codec, **options)
    return holds


def extract(path: Path, tmp_path: Path, **settings) -> tuple[dict, pd.DataFrame, Path]:
    out = tmp_path / "out" / path.name
    record = video.extract_video(video=path, extraction=out, settings=settings)
    return record, video.read_manifest(out), out


def png(out: Path, triplet: str, k: int) -> np.ndarray:
    return np.asarray(Image.open(out / video.TRIPLETS / triplet / f"frame{k}.png").convert("RGB"))


@pytest.mark.parametrize("timing, name, codec", [("twos", "twos.mp4", "libx264"), ("threes", "threes.mkv", "ffv1"),
                                                 ("irregular", "irregular.avi", "mpeg4")])
def test_held_drawings_cuts_and_t_are_found_exactly(tmp_path, timing, name, codec):
    drawings = shots(1)
    holds = write_held(tmp_path / name, drawings, timing, codec)
    record, manifest, out = extract(tmp_path / name, tmp_path)
    expected = expected_rows(holds)
    frames = sum(map(sum, holds))
    assert record["skipped"] is None and record["video"]["codec"] == codec.removeprefix("lib").replace("x264", "h264")
    assert record["counts"] == {"frames": frames, "drawings": 2 * DRAWINGS, "held_frames_merged": frames - 2 * DRAWINGS,
                                "cuts": 1, "scenes": 2, "candidates": 2 * DRAWINGS - 2, "kept": 2 * DRAWINGS - 4,
                                "dropped": {"cut": 2, "too_still": 0, "too_far": 0, "stride": 0, "cap": 0}}
    assert record["cuts"] == [sum(holds[0])]  # the first frame of the second shot
    for column in ("frame1", "frame2", "frame3", "kept", "drop_reason", "scene"):
        assert manifest[column].tolist() == expected[column].tolist(), column
    np.testing.assert_allclose(manifest["t"], expected["t"], atol=1e-9)
    np.testing.assert_allclose(manifest["time1"], expected["time1"], atol=1e-6)
    assert not (manifest["kept"] & (manifest["frame1"] < record["cuts"][0])
                & (manifest["frame3"] >= record["cuts"][0])).any()  # no kept triplet spans the cut
    if timing == "irregular":
        assert set(np.round(manifest["t"], 3)) > {0.25, 0.4, 0.5}  # irregular timing is not 0.5
    # the written frames are the drawings, decoded (lossless codecs exactly, the others closely)
    kept = manifest[manifest["kept"]]
    first = kept.iloc[0]
    assert sorted(p.name for p in out.joinpath(video.TRIPLETS).iterdir()) == kept["triplet"].tolist()
    for k, drawing in enumerate(drawings[0][:3], start=1):
        error = np.abs(png(out, first["triplet"], k).astype(int) - drawing).mean()
        assert error < (0.01 if codec == "ffv1" else 3), (k, error)


def test_variable_frame_rate_timestamps_give_t(tmp_path):
    drawings = shots(2, count=1)[0]
    durations = [40, 80, 40, 120, 40, 40, 80, 40]  # milliseconds each frame is shown
    pts = first_frames(durations)
    synthetic.write_video(tmp_path / "vfr.mkv", drawings, "libx264", pts=pts, time_base=Fraction(1, 1000))
    record, manifest, _ = extract(tmp_path / "vfr.mkv", tmp_path)
    assert record["counts"]["drawings"] == DRAWINGS and record["counts"]["held_frames_merged"] == 0
    times = np.array(pts) / 1000
    np.testing.assert_allclose(manifest["time1"], times[:-2], atol=1e-6)
    np.testing.assert_allclose(manifest["t"], (times[1:-1] - times[:-2]) / (times[2:] - times[:-2]), atol=1e-6)
    assert manifest["t"].round(3).tolist()[:3] == [round(40 / 120, 3), round(80 / 120, 3), round(40 / 160, 3)]


def test_a_rotation_flag_is_applied(tmp_path):
    drawings = shots(3, count=1)[0]
    synthetic.write_video(tmp_path / "rotated.mp4", synthetic.held_frames(drawings, "twos"), "libx264", rotation=90)
    record, manifest, out = extract(tmp_path / "rotated.mp4", tmp_path)
    assert record["video"]["rotation"] == 90 and record["video"]["size"] == [HEIGHT, WIDTH]
    assert record["video"]["stored_size"] == [WIDTH, HEIGHT]
    frame = png(out, manifest["triplet"][0], 1)
    assert frame.shape == (WIDTH, HEIGHT, 3)
    # 90 degrees counter-clockwise, as FFmpeg's player shows it
    assert np.abs(frame.astype(int) - np.rot90(drawings[0])).mean() < 3
    assert np.abs(frame.astype(int) - np.rot90(drawings[0], -1)).mean() > 10


@pytest.mark.parametrize("rotation, flips, as_displayed", [
    (0, ("hflip",), np.fliplr),
    (0, ("vflip",), np.flipud),
    (90, ("hflip",), lambda image: np.fliplr(np.rot90(image))),  # a turn then a mirror: about the anti-diagonal
    (270, ("vflip",), lambda image: np.flipud(np.rot90(image, -1))),
    (90, ("vflip",), lambda image: np.swapaxes(image, 0, 1)),  # about the main diagonal
    (270, ("hflip",), lambda image: np.swapaxes(image, 0, 1)),
    (180, ("hflip",), np.flipud),  # a half turn and a mirror across: upside down
    (0, ("hflip", "vflip"), lambda image: np.rot90(image, 2)),
])
def test_the_display_matrix_flips_are_applied(tmp_path, rotation, flips, as_displayed):
    drawings = shots(3, count=1)[0]
    synthetic.write_video(tmp_path / "flipped.mkv", synthetic.held_frames(drawings, "twos"), "ffv1",
                          rotation=rotation, flips=flips)
    record, manifest, out = extract(tmp_path / "flipped.mkv", tmp_path)
    expected = as_displayed(drawings[0])
    assert record["video"]["size"] == [expected.shape[1], expected.shape[0]]
    frame = png(out, manifest["triplet"][0], 1)
    assert frame.shape == expected.shape
    assert np.array_equal(frame, expected)  # FFV1 in RGB is lossless
    assert not np.array_equal(frame, np.rot90(drawings[0], rotation // 90))  # the flip is not ignored


def test_ten_bit_and_alpha_sources_come_out_as_8_bit_rgb(tmp_path):
    drawings = shots(4, count=1)[0][:4]
    synthetic.write_video(tmp_path / "deep.mkv", synthetic.held_frames(drawings, "twos"), "ffv1",
                          pix_fmt="yuv420p10le")
    record, manifest, out = extract(tmp_path / "deep.mkv", tmp_path)
    assert record["video"]["pixel_format"] == "yuv420p10le"
    assert np.abs(png(out, manifest["triplet"][0], 2).astype(int) - drawings[1]).mean() < 3
    # alpha: the colour channels as stored, the alpha dropped (PNG in QuickTime keeps every value exactly)
    import av

    alpha = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    with av.open(str(tmp_path / "alpha.mov"), "w") as container:
        stream = container.add_stream("png", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "rgba"
        for drawing in synthetic.held_frames(drawings, "twos"):
            frame = av.VideoFrame.from_ndarray(np.dstack([drawing, alpha]), format="rgba")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    record, manifest, out = extract(tmp_path / "alpha.mov", tmp_path)
    assert record["video"]["pixel_format"] == "rgba" and len(manifest) == 2
    np.testing.assert_array_equal(png(out, manifest["triplet"][1], 3), drawings[3])


def test_a_gif_holds_its_drawings_on_its_own_delays(tmp_path):
    """GIF: one palette for every frame (a held drawing is the same indices), delays in hundredths of a second (25
    fps: 4 each, so holds of two give t = 0.5 exactly; at 24 fps they would round to 4 and 5 and t would not)."""
    import av

    drawings = shots(1, count=1)[0][:5]
    palette = Image.fromarray(np.concatenate(drawings)).quantize(colors=256)
    with av.open(str(tmp_path / "loop.gif"), "w") as container:
        stream = container.add_stream("gif", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "pal8"
        for image in synthetic.held_frames(drawings, "twos"):
            indexed = Image.fromarray(image).quantize(palette=palette, dither=Image.Dither.NONE)
            colours = np.zeros((256, 4), np.uint8)
            listed = np.array(indexed.getpalette(), np.uint8).reshape(-1, 3)
            colours[:len(listed), :3], colours[:, 3] = listed[:, ::-1], 255  # FFmpeg's palette entries: B, G, R, A
            frame = av.VideoFrame.from_ndarray((np.asarray(indexed, np.uint8), colours), format="pal8")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    record, manifest, _ = extract(tmp_path / "loop.gif", tmp_path)
    assert record["video"]["codec"] == "gif" and record["counts"]["drawings"] == 5
    assert record["counts"]["held_frames_merged"] == 5 and manifest["frame1"].tolist() == [0, 2, 4]
    np.testing.assert_allclose(manifest["t"], 0.5, atol=1e-9)
    np.testing.assert_allclose(manifest["time1"], [0, 0.08, 0.16], atol=1e-9)


@pytest.fixture(scope="module")
def twos_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("twos") / "twos.mp4"
    write_held(path, shots(1), "twos", "libx264")
    return path


def kept_first_drawings(manifest: pd.DataFrame) -> list[int]:
    return [int(name.rsplit("-", 1)[1]) for name in manifest.loc[manifest["kept"], "triplet"]]


def test_stride_cap_and_motion_bounds_choose_deterministically(twos_video, tmp_path):
    # eligible (not across the cut): drawings 0-5 and 8-13
    _, manifest, _ = extract(twos_video, tmp_path / "stride", stride=3)
    assert kept_first_drawings(manifest) == [0, 3, 8, 11]
    assert set(manifest.loc[~manifest["kept"], "drop_reason"]) == {"cut", "stride"}
    # two per video: one per half of its duration, the first that qualifies (7 spans the cut)
    record, manifest, out = extract(twos_video, tmp_path / "cap", max_triplets=2)
    assert kept_first_drawings(manifest) == [0, 8] and record["counts"]["dropped"]["cap"] == 10
    assert len(list((out / video.TRIPLETS).iterdir())) == 2
    _, still, _ = extract(twos_video, tmp_path / "still", motion={"min": 1.0})
    _, far, _ = extract(twos_video, tmp_path / "far", motion={"max": 0.0})
    assert set(still["drop_reason"]) == {"cut", "too_still"} and set(far["drop_reason"]) == {"cut", "too_far"}
    again = extract(twos_video, tmp_path / "again", stride=3)[1]
    pd.testing.assert_frame_equal(again, extract(twos_video, tmp_path / "stride2", stride=3)[1])


def bad_files(folder: Path, good: Path) -> dict[str, str]:
    """Broken files of every kind -> the start of the reason the extraction gives."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mkv").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (folder / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # its index is at the end
    with av.open(str(folder / "audio.mkv"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    # a codec FFmpeg has no decoder for: C64 multicolour, which it only encodes (in MPEG-TS, which takes any stream)
    with av.open(str(folder / "unsupported.mkv"), "w", format="mpegts") as container:
        stream = container.add_stream("a64multi", rate=24)
        stream.width, stream.height, stream.pix_fmt = 320, 200, "gray"
        for value in (0, 80, 160):
            image = av.VideoFrame.from_ndarray(np.full((200, 320), value, np.uint8), format="gray")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    # a Matroska file cut short: its header gives the whole duration, its stream ends early
    write_held(folder / "short.mkv", shots(5), "twos", "ffv1")
    whole = (folder / "short.mkv").read_bytes()
    (folder / "short.mkv").write_bytes(whole[: len(whole) * 2 // 5])
    return {"empty.mp4": "empty file", "garbage.mkv": "unreadable container", "truncated.mp4": "unreadable container",
            "audio.mkv": "no video stream FFmpeg can decode (audio streams only)", "short.mkv": "stream ends early",
            "unsupported.mkv": "no video stream FFmpeg can decode (data streams only)"}


def test_bad_files_are_skipped_with_the_reason_or_stop_the_run_naming_them(twos_video, tmp_path):
    for name, reason in bad_files(tmp_path / "bad", twos_video).items():
        path = tmp_path / "bad" / name
        record, manifest, out = extract(path, tmp_path)
        assert record["skipped"].startswith(reason), (name, record["skipped"])
        assert manifest.empty and not any((out / video.TRIPLETS).iterdir())
        with pytest.raises(ValueError, match=re.escape(f"extract {path}: {reason}") + ".*data.on_error"):
            video.extract_video(video=path, extraction=tmp_path / "fail" / name, settings={}, on_error="fail")


def test_what_pyav_raises_on_a_frame_skips_the_video_and_our_own_faults_stop_the_run(twos_video, tmp_path,
                                                                                     monkeypatch):
    from latent_interp.video import extract as extraction

    def unconvertible(self, frame):  # PyAV's words for a frame of a form it has no array for
        raise ValueError("Conversion to numpy array with format yuv444p16be is not yet supported")

    monkeypatch.setattr(extraction._Scanner, "add", unconvertible)
    record, manifest, _ = extract(twos_video, tmp_path)
    assert record["skipped"] == ("decoding failed (ValueError: Conversion to numpy array with format yuv444p16be is "
                                 "not yet supported)") and manifest.empty
    monkeypatch.undo()

    def disk_full(path, frame):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(extraction, "_write_png", disk_full)
    with pytest.raises(OSError, match="No space left"):
        video.extract_video(video=twos_video, extraction=tmp_path / "full", settings={}, on_error="skip")


def test_a_video_split_ingests_with_t_the_videos_and_the_skip_list(twos_video, tmp_path):
    folder = tmp_path / "videos" / "test"
    folder.mkdir(parents=True)
    holds = write_held(folder / "Japan_irregular.avi", shots(7), "irregular", "mpeg4")
    # another frame size than the others: fitted like a mixed-size folder
    synthetic.write_video(folder / "Disney_big.mp4", synthetic.held_frames(
        synthetic.render_drawings(synthetic.triplet_specs(8, "x", 1)[0], 160, 120, np.linspace(0, 1, 5)), "twos"))
    (folder / "Disney_broken.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("not a video")
    config = {"root": str(tmp_path / "videos"), "layout": "video"}
    videos = video.split_videos(config, "test")
    assert [p.name for p in videos] == ["Disney_big.mp4", "Disney_broken.mp4", "Japan_irregular.avi"]
    cwd = os.getcwd()
    os.chdir(tmp_path)  # extractions are results/videos/<split>/<video>, relative to the workflow's folder
    try:
        for path in videos:
            video.extract_video(video=path, extraction=video.extraction_dir("test", path), settings={})
        source = data.split_source(config, "test")
        counts = data.ingest_split(source=source, frames=tmp_path / "test.zarr",
                                   skipped=tmp_path / "test.skipped.csv", split="test", preprocess=Preprocess(32))
    finally:
        os.chdir(cwd)
    assert counts == {"found": 12 + 3, "ingested": 15, "skipped": 0, "stray_files": 1, "videos": 3,
                      "videos_skipped": 1}
    group = store.open_store(tmp_path / "test.zarr", "frames")
    names = store.names(group)
    assert group[store.FRAMES].shape == (15, 3, 32, 32, 3) and group.attrs["t_source"] == "video timestamps"
    middle = dict(zip(names, store.middle_times(group)))
    expected = expected_rows(holds)
    kept = expected[expected["kept"]].reset_index(drop=True)
    irregular = sorted(n for n in names if n.startswith("Japan_irregular"))
    np.testing.assert_allclose([middle[n] for n in irregular], kept["t"], atol=1e-9)
    assert store.origins(group)[names.index(irregular[0])] == "Japan"
    skipped = pd.read_csv(tmp_path / "test.skipped.csv", keep_default_na=False)
    assert skipped[["what", "reason"]].values.tolist() == [["file", "stray file, ignored"], ["video", "empty file"]]
    assert skipped["path"].tolist()[1].endswith("Disney_broken.mp4")
    entries = {entry["video"]: entry for entry in group.attrs["videos"]}
    assert entries["Disney_broken.mp4"]["skipped"] == "empty file"
    assert entries["Japan_irregular.avi"]["counts"]["kept"] == 12 and len(entries["Japan_irregular.avi"]["t"]) == 12
    assert entries["Disney_big.mp4"]["size"] == [160, 120]


def test_hash_assignment_puts_each_video_in_one_split_and_adding_one_moves_none(tmp_path):
    for index in range(40):
        (tmp_path / f"clip{index:02d}.mp4").write_bytes(b"x")
    config = {"root": str(tmp_path), "layout": "video", "val_fraction": 0.2,
              "video": {"assign": "hash", "test_fraction": 0.2}}
    splits = {split: [p.name for p in video.split_videos(config, split)] for split in ("train", "val", "test")}
    assert sorted(sum(splits.values(), [])) == sorted(p.name for p in tmp_path.iterdir())
    assert all(len(names) >= 3 for names in splits.values())
    (tmp_path / "new.mkv").write_bytes(b"x")
    after = {split: [p.name for p in video.split_videos(config, split)] for split in splits}
    assert all(set(splits[s]) <= set(after[s]) for s in splits) and sum(map(len, after.values())) == 41
    with pytest.raises(ValueError, match="data.video.assign: hash draws splits train, val and test"):
        video.split_videos(config, "holdout")


def test_a_killed_extraction_leaves_nothing_and_its_rerun_gives_the_clean_bytes(twos_video, tmp_path):
    clean = tmp_path / "clean"
    video.extract_video(video=twos_video, extraction=clean, settings={})
    final = tmp_path / "results" / "twos.mp4"
    script = ("import sys\nfrom latent_interp.atomic import staged\nfrom latent_interp.video import extract_video\n"
              f"with staged([{str(final)!r}]) as out:\n"
              f"    extract_video(video={str(twos_video)!r}, extraction=out[0], settings={{}})\n")
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, "LATENT_INTERP_FAULT":
                                                                  "extract:mid-video:kill"}, capture_output=True)
    assert killed.returncode == -9 and not final.exists()
    assert any(p.name.endswith(".partial.mp4") for p in final.parent.iterdir())  # the half-written extraction
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert [p.name for p in final.parent.iterdir()] == ["twos.mp4"]
    for path in sorted(p for p in clean.rglob("*") if p.is_file() and p.name != video.INFO):
        assert (final / path.relative_to(clean)).read_bytes() == path.read_bytes(), path


def test_the_schema_offers_the_detectors_the_module_knows():
    """The defaults are the schema's own (tests/test_schema.py); the detectors' names live in both."""
    detector = schema.section("data.video.cuts.detector")
    assert set(video.DETECTORS) == set(detector["enum"]) and detector["default"] in video.DETECTORS
