"""Figures and images for the report: every matplotlib figure is written to ``results/figures/<name>.png`` and
``.svg`` (for papers) and embedded as its PNG; frames are embedded as small JPEGs (the report's size budget)."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # jobs run without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from latent_interp.atomic import worker_pool  # noqa: E402


@dataclass
class Figure:
    """What a template needs to show a figure: the embedded PNG (``uri``, which waits for the worker drawing it), its
    caption and the files beside the report."""
    drawn: concurrent.futures.Future  # the data URI the page embeds, once a worker has drawn both files
    caption: str
    png: str   # paths relative to the report, so the links work wherever results/ is copied
    svg: str

    @property
    def uri(self) -> str:
        return self.drawn.result()


def _draw(pickled_figure: bytes, png: str, svg: str, embed: bool) -> str:
    """Draw a pickled figure to ``png`` and ``svg``; the data URI the page embeds ("" unless ``embed``)."""
    figure = pickle.loads(pickled_figure)
    figure.savefig(png, dpi=100)
    figure.savefig(svg)
    return "data:image/png;base64," + base64.b64encode(embedded_png(Path(png))).decode() if embed else ""


class FigureWriter:
    def __init__(self, folder, report_dir, linked_folder=None, workers: int = 2):
        """Figures go to ``folder``; the page links them where they will be, ``linked_folder`` (default
        ``folder``; the rule writes both under temporary names, latent_interp.atomic). ``close`` waits for them.

        Drawing is most of the report's time (each savefig draws the whole figure again; with this process drawing the
        PNGs, the demo's 46 figures were two thirds of its report's time on 2 cores), so ``workers`` processes draw
        both files while this one builds the next figure. The workers are forked now, before the report opens a store
        (latent_interp.atomic.worker_pool)."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.relative = Path(os.path.relpath(linked_folder or self.folder, report_dir))
        self.written: list[str] = []
        self.pool = worker_pool(workers)
        self.pending: list[concurrent.futures.Future] = []

    def close(self) -> None:
        """Wait for every figure (raising the first error) and stop the workers."""
        try:
            for future in self.pending:
                future.result()
        finally:
            self.pool.shutdown()

    def save(self, figure: plt.Figure, name: str, caption: str, embed: bool = True) -> Figure:
        """Have ``figure`` written as ``<name>.png`` and ``.svg`` and close it; ``name`` is made file-safe."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        if name in self.written:
            raise ValueError(f"two report figures are named {name!r}")
        self.written.append(name)
        png, svg = self.folder / f"{name}.png", self.folder / f"{name}.svg"
        self.pending.append(self.pool.submit(_draw, pickle.dumps(figure), str(png), str(svg), embed))
        plt.close(figure)
        return Figure(self.pending[-1], caption, str(self.relative / png.name), str(self.relative / svg.name))


PLOT_COLOURS = 8192  # a plot's PNG holds a few thousand colours (its anti-aliased lines); one showing frames, 100,000s


def embedded_png(path: Path) -> bytes:
    """The bytes the page embeds for the PNG at ``path``: a plot as a 256-colour palette PNG, a third of the size
    and alike to the eye (the report's size budget); a figure of frames, and the file beside the report, as drawn."""
    image = Image.open(path).convert("RGB")
    if image.getcolors(maxcolors=PLOT_COLOURS) is None:
        return path.read_bytes()
    buffer = io.BytesIO()
    image.quantize(256, dither=Image.Dither.NONE).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def jpeg_uri(image: np.ndarray, width: int, quality: int = 85) -> str:
    """An RGB uint8 [H, W, 3] image, resized to ``width`` px wide (never enlarged), as a JPEG data URI."""
    picture = Image.fromarray(np.ascontiguousarray(image))
    if picture.width > width:
        picture = picture.resize((width, max(1, round(picture.height * width / picture.width))), Image.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
