import re

import numpy as np
import pytest

from latent_interp import synthetic

ATD_NAME = re.compile(r"^(Disney|Japan)_v\d_\d+_\d{6}_s\d$")


def test_names_are_atd_style_unique_and_alternate_origins():
    specs = synthetic.triplet_specs(0, "train", 10)
    assert all(ATD_NAME.match(spec.name) for spec in specs)
    assert len({spec.name for spec in specs}) == 10
    assert [spec.origin for spec in specs[:4]] == ["Disney", "Japan", "Disney", "Japan"]
    other_split = {spec.name for spec in synthetic.triplet_specs(0, "val", 10)}
    assert not other_split & {spec.name for spec in specs}


def test_growing_a_split_keeps_its_triplets():
    small = synthetic.triplet_specs(3, "val", 4)
    large = synthetic.triplet_specs(3, "val", 9)
    assert large[:4] == small
    for a, b in zip(small, large):
        np.testing.assert_array_equal(synthetic.render_triplet(a, 48, 27)[1], synthetic.render_triplet(b, 48, 27)[1])


def test_render_is_deterministic_and_frames_move():
    spec = synthetic.triplet_specs(1, "test", 1)[0]
    first, again = synthetic.render_triplet(spec, 96, 54), synthetic.render_triplet(spec, 96, 54)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert first[0].shape == (54, 96, 3) and first[0].dtype == np.uint8
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])


def test_frame2_is_the_in_between():
    """For every motion type, frame2 is closer to the average of frames 1 and 3 than either end frame is."""
    for spec in synthetic.triplet_specs(5, "train", 12):
        f1, f2, f3 = (f.astype(float) for f in synthetic.render_triplet(spec, 128, 72))
        to_mid = np.abs(f2 - (f1 + f3) / 2).mean()
        assert to_mid < np.abs(f1 - f3).mean(), spec


def test_styles_differ_between_origins():
    """Disney backgrounds are flat; Japan backgrounds are vertical gradients."""
    gaps = {"Disney": [], "Japan": []}
    for spec in synthetic.triplet_specs(2, "train", 12):
        frame = synthetic.render_triplet(spec, 96, 54)[0].astype(int)
        gaps[spec.origin].append(np.abs(frame[1, 1] - frame[-2, 1]).sum())  # top-left vs bottom-left pixel
    assert max(gaps["Disney"]) <= 3
    assert np.mean(gaps["Japan"]) > 30


def test_write_split_writes_atd_layout(tmp_path):
    specs = synthetic.write_split(tmp_path / "val", seed=0, split="val", count=3, width=40, height=24)
    written = sorted(str(p.relative_to(tmp_path / "val")) for p in (tmp_path / "val").rglob("*.jpg"))
    assert written == sorted(synthetic.frame_relpaths(specs))


def _checksums(folder):
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_drawer_writes_only_into_a_folder_it_made(tmp_path):
    import pytest

    synthetic.check_root(tmp_path / "missing")  # missing and empty roots are the drawer's to make
    (tmp_path / "empty").mkdir()
    synthetic.check_root(tmp_path / "empty")
    root = tmp_path / "demo"
    drawn = tmp_path / "manifest.csv"
    synthetic.draw_split(drawn=drawn, split_dir=root / "val", layout="folders", seed=0, split="val", how_many=2,
                         raw_size=[32, 24])
    assert (root / synthetic.OWNER_MARK).is_file()
    synthetic.check_root(root)  # its own folder: drawn into again
    synthetic.draw_split(drawn=drawn, split_dir=root / "test", layout="folders", seed=0, split="test", how_many=1,
                         raw_size=[32, 24])
    assert sorted(p.name for p in root.iterdir()) == sorted([synthetic.OWNER_MARK, "test", "val"])

    real = tmp_path / "atd"
    (real / "val" / "Japan_v1_0").mkdir(parents=True)
    (real / "val" / "Japan_v1_0" / "frame1.png").write_bytes(b"a user's frame")
    (real / "notes.txt").write_text("mine")
    before = _checksums(real)
    for attempt in (lambda: synthetic.check_root(real),
                    lambda: synthetic.draw_split(drawn=drawn, split_dir=real / "val", layout="folders", seed=0,
                                                 split="val", how_many=1, raw_size=[32, 24])):
        with pytest.raises(ValueError, match=r"data\.root.*notes\.txt, val.*data\.source: synthetic"):
            attempt()
    assert _checksums(real) == before
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="data.root .* is a file"):
        synthetic.check_root(tmp_path / "a-file")


def test_the_output_folders_snakemake_makes_before_a_job_do_not_stop_the_drawer(tmp_path):
    import pytest

    # Snakemake makes <root>/<split>/ for a drawn video before the job runs, for every split's job at once
    root = tmp_path / "videos"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
    synthetic.check_root(root)
    synthetic.draw_split(drawn=[], split_dir=root / "val", layout="video", seed=0, split="val", how_many=1,
                         raw_size=[32, 24])
    assert (root / synthetic.OWNER_MARK).is_file() and any((root / "val").iterdir())
    # a file anywhere below is someone's data
    (tmp_path / "atd" / "val" / "Japan_v1_0").mkdir(parents=True)
    (tmp_path / "atd" / "train").mkdir()
    (tmp_path / "atd" / "val" / "Japan_v1_0" / "frame2.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"holds files the synthetic drawer did not make \(val\)"):
        synthetic.check_root(tmp_path / "atd")


@pytest.mark.parametrize("timing", list(synthetic.VIDEO_TIMINGS))
def test_a_demo_videos_drawings_sit_where_their_times_put_them(timing):
    """One speed along a shot: each drawing's position is its first frame over the last drawing's, so a triplet's t
    from the timestamps, (frame2 - frame1) / (frame3 - frame1), is where its middle drawing is."""
    positions = synthetic.drawing_positions(timing)
    pattern = synthetic.VIDEO_TIMINGS[timing]
    starts = np.cumsum([0] + [pattern[k % len(pattern)] for k in range(len(positions) - 1)])
    for k in range(len(positions) - 2):
        t = (starts[k + 1] - starts[k]) / (starts[k + 2] - starts[k])
        assert (positions[k + 1] - positions[k]) / (positions[k + 2] - positions[k]) == pytest.approx(t)
    if len(set(pattern)) == 1:
        np.testing.assert_allclose(positions, np.linspace(0, 1, len(positions)))
    else:
        assert len({round(b - a, 9) for a, b in zip(positions, positions[1:])}) > 1  # uneven spacing
