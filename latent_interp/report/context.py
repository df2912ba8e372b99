"""What the report reads (``ReportInputs``: the stage outputs and the report's settings) and what its sections share
(``Context``: the inputs loaded once, the figure writer and the page's JSON payload)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from latent_interp import metrics, store
from latent_interp.report.figures import FigureWriter


@dataclass
class ReportSettings:
    """``report`` keys of the config (see config.yaml)."""
    grid_triplets_per_origin: int = 2   # the reconstruction grid written to results/figures/
    gallery_rows: int = 6               # worst-first gallery rows per split (and model)
    embedding_points: int = 3000        # frames plotted per embedding at most (whole triplets, fixed seed)
    image_width: int = 192              # px of the frames, reconstructions and in-betweens in triplet panels
    thumbnail_width: int = 80           # px of the hover thumbnails of embedded frames
    seed: int = 0


@dataclass
class ReportInputs:
    """Paths of the stage outputs, keyed by split, model or (model, split). Only ``config`` to ``collapse`` are
    required; a section whose inputs are absent is left out."""
    config: dict   # the run's effective config (runconfig.RunConfig.config), printed under Provenance
    models: list[str]
    splits: list[str]
    frames: dict[str, str]
    skipped: dict[str, str]
    recon: dict[tuple[str, str], str]
    latents: dict[tuple[str, str], str]
    metric_tables: dict[tuple[str, str], str]
    metrics_summary: str
    metrics_spec: str
    collapse: dict[str, str]
    comparison: str | None = None
    vaes: dict[str, str] = field(default_factory=dict)   # the run's VAEs, name -> source (RunConfig.vae_sources)
    # fine-tune name -> {"dir": its results/models folder, "vae": the VAE it started from, "recipe": ...}
    finetunes: dict[str, dict] = field(default_factory=dict)
    finetune_effects: str | None = None   # results/compare/finetunes.csv
    compare_table: str | None = None   # results/compare/vaes.csv
    compare_summary: str | None = None   # results/compare/vaes.json
    # (latent space, method, coordinates csv, settings json), as the embed stage writes them
    embeddings: list[tuple[str, str, str, str]] = field(default_factory=list)
    interp_summary: str | None = None
    interp_tables: dict[tuple[str, str], str] = field(default_factory=dict)
    interp_stores: dict[tuple[str, str], str] = field(default_factory=dict)
    predictor_dirs: dict[str, str] = field(default_factory=dict)   # by latent space
    geometry: dict[str, dict[str, str]] = field(default_factory=dict)   # latent space -> output name -> path
    flow: dict[str, str] = field(default_factory=dict)          # split -> flow store (results/flow/{split}.zarr)
    flow_tables: dict[str, str] = field(default_factory=dict)   # split -> flow table
    equivariance: dict[str, dict[str, str]] = field(default_factory=dict)   # latent space -> curve/triplets/summary
    clips: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, video) -> its re-timed clip's folder
    twins: dict[str, str] = field(default_factory=dict)   # model -> the model whose latents it shares
    lpips_skipped: bool = True
    settings: ReportSettings = field(default_factory=ReportSettings)


class Context:
    """The inputs, loaded lazily and once; ``payload`` is the JSON the page's scripts read (see ``page``)."""

    def __init__(self, inputs: ReportInputs, figures_dir, report_path, linked_figures_dir=None, workers: int = 2):
        self.inputs = inputs
        self.settings = inputs.settings
        self.report_dir = Path(report_path).parent  # where the page is: it links files relative to it
        self.figures = FigureWriter(figures_dir, self.report_dir, linked_figures_dir, workers)
        self.payload: dict = {"tables": {}, "embeddings": [], "thumbs": {}, "images": {}}
        self.panel_keys: list[str] = []  # the triplets whose images are embedded (triplets.panel_keys)

    @cached_property
    def metric_summary(self) -> pd.DataFrame:
        return pd.read_csv(self.inputs.metrics_summary, keep_default_na=False, na_values=[""])

    @cached_property
    def metric_rows(self) -> pd.DataFrame:
        """Every model's per-image metric table, one frame per row (metrics stage columns)."""
        return pd.concat([pd.read_csv(path) for path in self.inputs.metric_tables.values()], ignore_index=True)

    @cached_property
    def interp_summary(self) -> pd.DataFrame | None:
        if self.inputs.interp_summary is None:
            return None
        return pd.read_csv(self.inputs.interp_summary, keep_default_na=False, na_values=[""])

    @cached_property
    def interp_rows(self) -> pd.DataFrame | None:
        """Every model's per-triplet interpolation table (interp stage columns)."""
        if not self.inputs.interp_tables:
            return None
        return pd.concat([metrics.study_rows(pd.read_csv(path)) for path in self.inputs.interp_tables.values()],
                         ignore_index=True)

    def frames_store(self, split: str):
        return store.open_store(self.inputs.frames[split], "frames")

    @cached_property
    def triplet_names(self) -> dict[str, list[str]]:
        return {split: store.names(self.frames_store(split)) for split in self.inputs.splits}

    def read_json(self, path) -> dict:
        return json.loads(Path(path).read_text())

    @cached_property
    def interp_methods(self) -> list[str]:
        """The methods of the interpolation stores, in table order (the same for every model)."""
        for path in self.inputs.interp_stores.values():
            return list(store.open_store(path, "interp").attrs["methods"])
        return []
