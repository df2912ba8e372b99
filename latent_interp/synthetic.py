"""A synthetic, ATD-12K-shaped data set of cartoon frame triplets.

The demo must run on a fresh machine with no downloads, so the workflow draws its own frames: flat-colour shapes with
dark outlines that move between frame 1 and frame 3 by a known translation, rotation or scaling, so frame 2 is the
exact in-between (t = 0.5). Two visibly different styles stand in for ATD-12K's two origins:

- ``Disney``: a plain pastel background, saturated flat shapes, thick black outlines;
- ``Japan``: a vertical two-colour gradient background, cel-shaded shapes (a darker shadow crescent), thin outlines.

Every triplet is drawn from its own random generator seeded by ``(seed, split, index)``, so growing a split never
changes the triplets it already had, and two runs give identical files.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

ORIGINS = ("Disney", "Japan")
MOTION_TYPES = ("translation", "rotation", "scaling")
SHAPE_KINDS = ("ellipse", "rectangle", "triangle", "star")
FRAME_TIMES = (0.0, 0.5, 1.0)
SUPERSAMPLE = 2  # shapes are drawn at twice the size and reduced, which anti-aliases their edges
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class TripletSpec:
    """Everything needed to draw one triplet: its name, origin, motion type and random stream."""

    name: str
    origin: str
    motion: str
    seed: tuple[int, ...]


def _split_code(split: str) -> int:
    # Splits other than the usual three still get a stable code, derived from the name's bytes.
    return SPLIT_CODES.get(split, 3 + sum(split.encode()) % 997)


def triplet_specs(seed: int, split: str, count: int) -> list[TripletSpec]:
    """The ``count`` triplets of ``split``: names in ATD-12K style (``Disney_v4_0_000024_s2``), origins alternating."""
    specs = []
    for index in range(count):
        stream = (int(seed), _split_code(split), index)
        rng = np.random.default_rng(stream)
        origin = ORIGINS[index % 2]  # alternate so even a 2-triplet split holds both origins
        motion = MOTION_TYPES[int(rng.integers(len(MOTION_TYPES)))]
        name = f"{origin}_v{int(rng.integers(1, 6))}_{_split_code(split)}_{index:06d}_s{int(rng.integers(1, 4))}"
        specs.append(TripletSpec(name=name, origin=origin, motion=motion, seed=stream))
    return specs


def _shape_outline(kind: str, size: float) -> np.ndarray:
    """Vertices (K, 2) of a shape centred on the origin, radius about ``size``."""
    if kind == "ellipse":
        angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        return np.stack([np.cos(angles) * size, np.sin(angles) * size * 0.7], axis=1)
    if kind == "rectangle":
        return np.array([[-1, -0.6], [1, -0.6], [1, 0.6], [-1, 0.6]]) * size
    if kind == "triangle":
        angles = np.array([-90, 30, 150]) * math.pi / 180
        return np.stack([np.cos(angles), np.sin(angles)], axis=1) * size
    angles = np.arange(10) * math.pi / 5 - math.pi / 2  # a five-pointed star
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45) * size
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)


def _place(vertices: np.ndarray, centre: np.ndarray, angle: float, scale: float) -> list[tuple[float, float]]:
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    placed = vertices @ rotation.T * scale + centre
    return [tuple(point) for point in placed]


def _saturated_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    colour = rng.integers(40, 256, size=3)
    colour[rng.integers(3)] = rng.integers(0, 60)  # one weak channel keeps colours saturated, not grey
    return tuple(int(c) for c in colour)


def _background(rng: np.random.Generator, origin: str, width: int, height: int) -> Image.Image:
    if origin == "Disney":
        colour = tuple(int(c) for c in rng.integers(170, 256, size=3))
        return Image.new("RGB", (width, height), colour)
    top, bottom = rng.integers(60, 256, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    gradient = top[None, None, :] * (1 - ramp) + bottom[None, None, :] * ramp
    return Image.fromarray(np.broadcast_to(gradient, (height, width, 3)).round().astype(np.uint8))


def _scene(spec: TripletSpec, width: int, height: int):
    """The triplet's background, outline width, supersampled unit and shapes (each with its motion), drawn from the
    triplet's random stream in a fixed order."""
    rng = np.random.default_rng(spec.seed)
    rng.integers(1, 6, size=3)  # consume the draws that made the name, so shape draws do not repeat them
    big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
    unit = min(big_w, big_h)
    background = _background(rng, spec.origin, big_w, big_h)
    outline_width = max(1, round(unit * (0.035 if spec.origin == "Disney" else 0.014)))
    shapes = []
    for _ in range(int(rng.integers(2, 5))):
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        size = unit * rng.uniform(0.12, 0.28)
        centre = rng.uniform([0.2 * big_w, 0.2 * big_h], [0.8 * big_w, 0.8 * big_h])
        # Every shape moves by the triplet's motion type; the amounts are drawn per shape.
        shift = rng.uniform(-0.18, 0.18, size=2) * unit if spec.motion == "translation" else np.zeros(2)
        turn = rng.uniform(-0.9, 0.9) if spec.motion == "rotation" else 0.0
        grow = rng.uniform(-0.35, 0.45) if spec.motion == "scaling" else 0.0
        shapes.append(
            dict(
                vertices=_shape_outline(kind, size),
                centre=centre,
                angle=rng.uniform(0, 2 * math.pi),
                colour=_saturated_colour(rng),
                shift=shift,
                turn=turn,
                grow=grow,
            )
        )
    return background, outline_width, unit, shapes


def _polygon_at(shape: dict, t: float) -> list[tuple[float, float]]:
    return _place(shape["vertices"], shape["centre"] + t * shape["shift"], shape["angle"] + t * shape["turn"],
                  1.0 + t * shape["grow"])


def render_triplet(spec: TripletSpec, width: int, height: int) -> list[np.ndarray]:
    """Draw the three frames of ``spec`` as uint8 arrays (height, width, 3)."""
    return render_drawings(spec, width, height, FRAME_TIMES)


def render_drawings(spec: TripletSpec, width: int, height: int, times) -> list[np.ndarray]:
    """Draw ``spec``'s scene at each time (0: frame 1, 1: frame 3 of its triplet) as uint8 arrays (height, width,
    3): a shot whose drawings move along the triplet's motion."""
    background, outline_width, unit, shapes = _scene(spec, width, height)
    frames = []
    for t in times:
        canvas = background.copy()
        for shape in shapes:
            _draw_shape(canvas, _polygon_at(shape, t), shape["colour"], spec.origin, outline_width, unit)
        frames.append(np.asarray(canvas.reduce(SUPERSAMPLE)))
    return frames


def true_motion(spec: TripletSpec, width: int, height: int, size: int, margin: float = 2.0):
    """The drawing's true flow F_1->3 [size, size, 2] (x, y in pixels of the frames squashed to ``size`` x ``size``,
    as ingest makes them) and where it is known [size, size] bool: inside a shape at frame 1 (the topmost one at that
    pixel), at least ``margin`` pixels from its outline (outlines and anti-aliased edges are left out). Each shape
    moves rigidly: p -> centre + shift + (1 + grow) R(turn) (p - centre)."""
    from matplotlib.path import Path as PolygonPath  # only the flow checks need it

    _, _, _, shapes = _scene(spec, width, height)
    scale_x, scale_y = width * SUPERSAMPLE / size, height * SUPERSAMPLE / size  # supersampled px per frame px
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    points = np.stack([(xs + 0.5) * scale_x, (ys + 0.5) * scale_y], axis=-1).reshape(-1, 2)
    flow = np.zeros((size * size, 2))
    owner = np.full(size * size, -1)
    for index, shape in enumerate(shapes):  # later shapes are drawn on top
        outline = np.array(_polygon_at(shape, 0.0))
        inside = PolygonPath(outline).contains_points(points)
        owner[inside] = index
        turn = shape["turn"]
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        relative = points[inside] - shape["centre"]
        moved = shape["centre"] + shape["shift"] + (1 + shape["grow"]) * relative @ rotation.T
        flow[inside] = moved - points[inside]
    flow = (flow / [scale_x, scale_y]).reshape(size, size, 2)
    owner = owner.reshape(size, size)
    reach = int(math.ceil(margin))
    known = owner >= 0
    for dy in range(-reach, reach + 1):  # the same owner all around: away from every outline
        for dx in range(-reach, reach + 1):
            if dx * dx + dy * dy <= margin * margin:
                shifted = np.full_like(owner, -2)
                shifted[max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)] = \
                    owner[max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
                known &= shifted == owner
    return flow.astype(np.float32), known


def _draw_shape(canvas: Image.Image, polygon, colour, origin: str, outline_width: int, unit: int) -> None:
    draw = ImageDraw.Draw(canvas)
    draw.polygon(polygon, fill=colour)
    if origin == "Japan":
        # Cel shading: the part of the shape not covered by a copy of itself moved up-left is its shadow side.
        mask = Image.new("L", canvas.size, 0)
        ImageDraw.Draw(mask).polygon(polygon, fill=255)
        offset = unit * 0.04
        lit = Image.new("L", canvas.size, 0)
        ImageDraw.Draw(lit).polygon([(x - offset, y - offset) for x, y in polygon], fill=255)
        shadow = ImageChops.subtract(mask, lit)
        canvas.paste(tuple(int(c * 0.6) for c in colour), mask=shadow)
    draw.polygon(polygon, outline=(20, 16, 24), width=outline_width)


def frame_relpaths(specs: list[TripletSpec], ext: str = "jpg") -> list[str]:
    """``<triplet>/frame{1,2,3}.<ext>`` for every triplet, the order the frames are written in."""
    return [f"{spec.name}/frame{k}.{ext}" for spec in specs for k in (1, 2, 3)]


MANIFEST_COLUMNS = ("path", "bytes", "sha256")


def write_manifest(split_dir: str | Path, relpaths: list[str], path: str | Path) -> None:
    """The drawn split's one output file (rule synthesize_<split>): every file drawn, relative to the split's
    folder, with its size and sha256. Snakemake then matches ingest's one input against one output instead of
    30,000 frames against 30,000 (bench P4: 26x slower at 10,000 triplets than at 100)."""
    import hashlib

    import pandas as pd

    rows = []
    for relpath in relpaths:
        data = (Path(split_dir) / relpath).read_bytes()
        rows.append((relpath, len(data), hashlib.sha256(data).hexdigest()))
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(path, index=False)


def write_split(out_dir: str | Path, seed: int, split: str, count: int, width: int, height: int,
                quality: int = 95) -> list[TripletSpec]:
    """Write ``count`` triplets of ``split`` as ``out_dir/<triplet>/frame{1,2,3}.jpg`` (ATD-12K's train layout)."""
    out_dir = Path(out_dir)
    specs = triplet_specs(seed, split, count)
    for spec in specs:
        triplet_dir = out_dir / spec.name
        triplet_dir.mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(render_triplet(spec, width, height), start=1):
            Image.fromarray(frame).save(triplet_dir / f"frame{k}.jpg", quality=quality, subsampling=0)
    return specs


# The demo's videos (data.layout: video with data.source: synthetic): each a few shots cut together, a shot being
# one scene's drawings along its motion, each drawing held for some frames the way animation is timed. The timing,
# container and codec go round these lists with the video's index, so a split of three videos holds all of them.
VIDEO_TIMINGS = {"twos": (2,), "threes": (3,), "irregular": (2, 3, 1, 3, 2, 2, 1, 3)}  # frames each drawing is held
VIDEO_FORMATS = (("mp4", "libx264"), ("mkv", "ffv1"), ("avi", "mpeg4"))
VIDEO_RATE = 24
SHOTS_PER_VIDEO, DRAWINGS_PER_SHOT = 2, 8


@dataclass(frozen=True)
class VideoSpec:
    """One demo video: its file name, its shots (one scene each), how its drawings are held, how it is encoded."""

    name: str
    shots: tuple[TripletSpec, ...]
    timing: str
    codec: str


def video_specs(seed: int, split: str, count: int) -> list[VideoSpec]:
    """The ``count`` demo videos of ``split``; a video's shots are drawn like the triplets of a split of its own, all in
    the video's style (origins alternating by video), and its file name starts with that origin."""
    specs = []
    for index in range(count):
        origin = ORIGINS[index % 2]
        shots = tuple(replace(shot, origin=origin) for shot in triplet_specs(seed, f"{split}-video{index}",
                                                                             SHOTS_PER_VIDEO))
        extension, codec = VIDEO_FORMATS[index % len(VIDEO_FORMATS)]
        timing = list(VIDEO_TIMINGS)[index % len(VIDEO_TIMINGS)]
        specs.append(VideoSpec(f"{origin}_{split}_{index:03d}.{extension}", shots, timing, codec))
    return specs


def held_frames(drawings: list[np.ndarray], timing: str) -> list[np.ndarray]:
    """Each drawing repeated for its hold, the timing's pattern going round."""
    pattern = VIDEO_TIMINGS[timing]
    return [drawing for k, drawing in enumerate(drawings) for _ in range(pattern[k % len(pattern)])]


def write_video(path: str | Path, frames: list[np.ndarray], codec: str = "libx264", rate: int = VIDEO_RATE,
                pts: list[int] | None = None, time_base=None, rotation: int = 0, flips: tuple[str, ...] = (),
                pix_fmt: str | None = None, options: dict | None = None) -> None:
    """Encode uint8 RGB frames (height, width, 3) with PyAV: at ``rate`` frames a second, or at the given ``pts`` in
    ``time_base`` units (a variable frame rate); ``rotation`` sets the stream's display rotation (degrees
    counter-clockwise), ``flips`` ("hflip", "vflip") the mirrors its display matrix applies after it."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        # FFV1 in RGB is lossless; the others in the 4:2:0 YUV every player takes
        stream.pix_fmt = pix_fmt or ("bgr0" if codec == "ffv1" else "yuv420p")
        # near-lossless, so a held drawing decodes as the same picture and a new one as a new one
        stream.options = options or ({"crf": "12"} if codec == "libx264" else {})
        if codec == "mpeg4":
            stream.codec_context.qscale = 2
        if time_base is not None:  # the frames' pts count in it, not in 1 / rate
            stream.time_base = stream.codec_context.time_base = time_base
        if rotation or flips:
            stream.set_display_rotation(rotation, hflip="hflip" in flips, vflip="vflip" in flips)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[index], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def drawing_positions(timing: str, count: int = DRAWINGS_PER_SHOT) -> np.ndarray:
    """Where each of a shot's drawings is along its motion (0 the first, 1 the last): where its time puts it, the shot
    moving at one speed, as an animator spaces the drawings of an even motion on uneven timing. So a triplet's t (when
    its middle drawing appears, from the timestamps) is also where that drawing is; on twos and threes, evenly."""
    pattern = VIDEO_TIMINGS[timing]
    starts = np.cumsum([0, *(pattern[k % len(pattern)] for k in range(count - 1))], dtype=np.float64)
    return starts / starts[-1]


def render_video(spec: VideoSpec, path: str | Path, width: int, height: int) -> None:
    """Write ``spec`` to ``path``: its shots' drawings (``drawing_positions``), each held by the video's timing."""
    times = drawing_positions(spec.timing)
    shots = [render_drawings(shot, width, height, times) for shot in spec.shots]
    write_video(path, [frame for drawings in shots for frame in held_frames(drawings, spec.timing)], spec.codec)


def write_videos(out_dir: str | Path, seed: int, split: str, count: int, width: int, height: int) -> list[VideoSpec]:
    """Write ``count`` demo videos of ``split`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = video_specs(seed, split, count)
    for spec in specs:
        render_video(spec, out_dir / spec.name, width, height)
    return specs


# The drawer's mark on a data.root it made: it writes (and, drawing a split anew, deletes) only under a root that is
# empty, missing, or marked, so a root pointed at real data under data.source synthetic is refused, not drawn into.
OWNER_MARK = ".latent-interp-synthetic.json"


def check_root(root: str | Path) -> None:
    """Refuse, before any job, a data.root the synthetic drawer did not make: it must be missing, empty, or hold the
    drawer's mark (``OWNER_MARK``)."""
    root = Path(root)
    if not root.exists() or (root / OWNER_MARK).is_file():
        return
    if not root.is_dir():
        raise ValueError(f"config key data.root = {str(root)!r} is a file; data.source: synthetic draws the demo "
                         "into a folder")
    held = sorted(entry.name for entry in root.iterdir()
                  if not entry.name.startswith(OWNER_MARK) and _holds_a_file(entry))
    if held:
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise ValueError(
            f"config key data.root = {str(root)!r} holds files the synthetic drawer did not make ({shown}), and "
            "config key data.source: synthetic would draw the demo into it. To read that folder, set data.source: "
            "files; to draw the demo, point data.root at an empty or missing folder (a demo folder drawn before "
            f"the drawer marked its folders has no {OWNER_MARK}: delete it and it is drawn anew)")


def _holds_a_file(path: Path) -> bool:
    """Whether ``path`` is, or holds at any depth, something other than a folder. Snakemake makes the folders of a
    job's outputs before the job runs (``<root>/<split>/`` of a drawn video), so a tree of empty folders is no one's
    data, and a root holding only such a tree is the drawer's to claim."""
    if not path.is_dir() or path.is_symlink():
        return True
    return any(_holds_a_file(child) for child in path.iterdir())


def claim_root(root: str | Path) -> None:
    """Mark ``root`` as the drawer's (``check_root``), after checking it once more: a job may start long after the
    workflow checked the config."""
    root = Path(root)
    check_root(root)
    root.mkdir(parents=True, exist_ok=True)
    mark = root / OWNER_MARK
    if mark.is_file():
        return
    # The splits are drawn by parallel jobs: each writes its own temporary (which check_root counts as the mark's)
    # and renames it into place, so no job sees a half-written mark or removes another's temporary.
    temporary = root / f"{OWNER_MARK}.{uuid.uuid4().hex}"
    temporary.write_text(json.dumps({"made_by": "latent-interp's synthetic drawer (data.source: synthetic)",
                                     "note": "the drawer writes and deletes splits under this folder"}) + "\n")
    os.replace(temporary, mark)


def draw_split(*, drawn, split_dir: str | Path, layout: str, seed: int, split: str, how_many: int,
               raw_size: list[int]) -> list:
    """Rule synthesize_<split>: draw one split of the demo under ``split_dir``: ``how_many`` triplets at ``raw_size``
    and their manifest ``drawn`` (the one file ingest reads the split by), or, with ``layout`` video, ``how_many``
    videos (``drawn`` lists their files). The split is drawn whole, and its files move into place once all are
    drawn, so no triplet of a larger earlier draw stays behind and a killed job leaves none half-written."""
    from latent_interp.atomic import remove, staged, staged_tree  # not at the top: the Snakefile imports this module

    videos = layout == "video"
    out_dir = Path(split_dir)
    claim_root(out_dir.parent)
    if not videos:
        remove(out_dir)
    with staged_tree(out_dir) as partial_dir:
        specs = (write_videos if videos else write_split)(partial_dir, seed, split, how_many, *raw_size)
    if not videos:
        with staged([drawn]) as out:
            write_manifest(out_dir, frame_relpaths(specs), out[0])
    print(f"wrote {len(specs)} {'videos' if videos else 'triplets'} of split {split} under {out_dir}")
    return specs
