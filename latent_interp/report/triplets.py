"""The triplet index and the panels: what the page knows about every triplet, and the images of some.

``payload["triplets"]``: one record per triplet of every split, in split then store order:
    ``key`` ("split/name"), ``split``, ``name``, ``origin``, ``level`` and ``motion`` (annotated splits, else null),
    ``motion_px`` (the flow table's mean |F_1->3|, null where the flow failed),
    ``recon``: {model: [[PSNR dB, SSIM] of frames 1, 2, 3]},
    ``interp``: {model: [[PSNR dB, SSIM, EISAI chamfer, latent MSE, LPIPS] per method of ``payload["methods"]``]} on the
    interpolated splits (null where a metric is empty).
``payload["images"]``: for the panel triplets only, JPEG data URIs: ``frames`` [3], ``recon`` {model: [3]},
``interp`` {model: {method: uri}} (``repeat`` is frame 1 and ``vae_ceiling`` the reconstruction of frame 2: the page
takes those from ``frames`` and ``recon`` instead of storing them twice; an image equal to an earlier model's is
``{"as": that model}``: the pixel-space methods, the same for every model, are stored once), ``flow``: [F_1->3 on the
colour wheel, occlusion and still mask, largest motion px] (``motion.add_flow_images``).
``payload["oracles"]``: the methods that see frame 2 (marked wherever a method is named).
``payload["panel_methods"]``: the methods whose in-betweens a panel shows as images: all but the warps inside the
decoder (``decoder_flow@k`` and their oracles), whose depth sweep the figures and the score tables hold; eight more
images a model and triplet would have made the demo's page a third larger.

Panel triplets: the worst-first and sampled ones whose in-betweens the interp stores keep (``interp.gallery_triplets``,
``interp.sample_triplets``), the ``report.gallery_rows`` worst reconstructed triplets of each split, and the
trajectories drawn on the embeddings. The images come from the stores in chunk order, each chunk read once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from latent_interp import interp, store
from latent_interp.report.context import Context
from latent_interp.report.figures import jpeg_uri

INTERP_VALUES = ("psnr", "ssim", "eisai_chamfer", "latent_mse", "lpips")
REUSED = {"repeat", "vae_ceiling"}  # in-betweens that are frame 1 and the reconstruction of frame 2


def in_panel(method: str) -> bool:
    """Whether a panel shows ``method``'s in-between as an image (module docstring: ``panel_methods``)."""
    return interp.decoder_level(method) is None


def _rounded(value, digits: int):
    return None if pd.isna(value) else round(float(value), digits)


def add_triplet_index(ctx: Context) -> None:
    """``payload["triplets"]``, ``["models"]``, ``["methods"]`` and ``["interp_values"]`` (module docstring)."""
    recon = ctx.metric_rows.sort_values(["model", "split", "triplet", "frame"])
    recon_scores = {key: rows[["psnr", "ssim"]].round({"psnr": 2, "ssim": 4}).to_numpy().tolist()
                    for key, rows in recon.groupby(["split", "triplet", "model"], sort=False)}
    methods = ctx.interp_methods
    interp_scores = {}
    if ctx.interp_rows is not None:
        table = ctx.interp_rows.copy()
        for column in INTERP_VALUES:
            if column not in table:
                table[column] = np.nan
        table["order"] = table["method"].map({m: i for i, m in enumerate(methods)})
        for key, rows in table.sort_values("order").groupby(["split", "triplet", "model"], sort=False):
            interp_scores[key] = [[_rounded(v, d) for v, d in zip(values, (2, 4, 6, 5, 4))]
                                  for values in rows[list(INTERP_VALUES)].to_numpy()]
    records = []
    for split in ctx.inputs.splits:
        group = ctx.frames_store(split)
        annotations = store.read_annotations(group)
        motion = (pd.read_csv(ctx.inputs.flow_tables[split]).set_index("triplet")["motion_px"].to_dict()
                  if split in ctx.inputs.flow_tables else {})
        for index, (name, origin) in enumerate(zip(store.names(group), store.origins(group))):
            record = {"key": f"{split}/{name}", "split": split, "name": name, "origin": origin,
                      "level": None, "motion": None, "motion_px": _rounded(motion.get(name), 2),
                      "recon": {m: recon_scores[(split, name, m)] for m in ctx.inputs.models
                                if (split, name, m) in recon_scores},
                      "interp": {m: interp_scores[(split, name, m)] for m in ctx.inputs.models
                                 if (split, name, m) in interp_scores}}
            if annotations is not None:
                record["level"] = int(annotations[store.LEVEL].iloc[index])
                record["motion"] = annotations[store.MOTION_TYPE].iloc[index]
            records.append(record)
    ctx.payload.update(triplets=records, models=list(ctx.inputs.models), methods=methods,
                       panel_methods=[m for m in methods if in_panel(m)], interp_values=list(INTERP_VALUES),
                       oracles=[m for m in methods if m in interp.SEES_FRAME2])


def worst_reconstructed(ctx: Context, split: str, count: int) -> list[str]:
    """Names of the ``count`` triplets of ``split`` with the lowest mean PSNR over their frames, under the first
    model (the first VAE of the config), ties by name."""
    rows = ctx.metric_rows[(ctx.metric_rows["split"] == split) & (ctx.metric_rows["model"] == ctx.inputs.models[0])]
    means = rows.groupby("triplet")["psnr"].mean().reset_index().sort_values(["psnr", "triplet"])
    return means["triplet"].head(count).tolist()


def interp_gallery(ctx: Context, model: str, split: str) -> tuple[list[str], int]:
    """The triplets whose in-betweens the interp store of (model, split) keeps, and how many lead as the worst."""
    group = store.open_store(ctx.inputs.interp_stores[(model, split)], "interp")
    kept = [str(v) for v in group["gallery_triplets"][:]]
    return kept, int(group.attrs.get("gallery_worst", len(kept)))


def panel_keys(ctx: Context, extra: list[str] = ()) -> list[str]:
    """The keys of the triplets that get images (module docstring), in a stable order."""
    keys = set(extra)
    for split in ctx.inputs.splits:
        keys |= {f"{split}/{name}" for name in worst_reconstructed(ctx, split, ctx.settings.gallery_rows)}
    for model, split in ctx.inputs.interp_stores:
        keys |= {f"{split}/{name}" for name in interp_gallery(ctx, model, split)[0]}
    return sorted(keys)


def read_rows(array, indices: list[int]) -> dict[int, np.ndarray]:
    """``array[i]`` for each wanted index, reading every chunk that holds one exactly once."""
    wanted, found = sorted(set(indices)), {}
    for start, stop in store.chunk_ranges(array):
        inside = [i for i in wanted if start <= i < stop]
        if inside:
            chunk = array[start:stop]
            found.update({i: chunk[i - start] for i in inside})
    return found


def add_panel_images(ctx: Context, keys: list[str]) -> None:
    """``payload["images"]`` for ``keys`` (module docstring)."""
    width, images = ctx.settings.image_width, {}
    by_split: dict[str, list[str]] = {}
    for key in keys:
        split, name = key.split("/", 1)
        by_split.setdefault(split, []).append(name)
    for split, names in by_split.items():
        position = {name: i for i, name in enumerate(ctx.triplet_names[split])}
        indices = [position[name] for name in names]
        frames = read_rows(ctx.frames_store(split)[store.FRAMES], indices)
        for name, index in zip(names, indices):
            images[f"{split}/{name}"] = {"frames": [jpeg_uri(f, width) for f in frames[index]], "recon": {},
                                         "interp": {}}
        for model in ctx.inputs.models:
            recon = read_rows(store.open_store(ctx.inputs.recon[(model, split)], "recon")[store.FRAMES], indices)
            for name, index in zip(names, indices):
                images[f"{split}/{name}"]["recon"][model] = [jpeg_uri(f, width) for f in recon[index]]
            if (model, split) not in ctx.inputs.interp_stores:
                continue
            group = store.open_store(ctx.inputs.interp_stores[(model, split)], "interp")
            kept, _ = interp_gallery(ctx, model, split)
            rows = [kept.index(name) for name in names if name in kept]
            gallery = read_rows(group["gallery"], rows)
            methods = group.attrs["methods"]
            for row in rows:
                shown = images[f"{split}/{kept[row]}"]["interp"]
                shown[model] = {method: _stored_once(shown, method, jpeg_uri(gallery[row][k], width))
                                for k, method in enumerate(methods) if method not in REUSED and in_panel(method)}
    ctx.payload["images"] = images


def _stored_once(shown: dict, method: str, uri: str):
    """``uri``, or a reference to the first model in ``shown`` ({model: {method: uri}}) whose image it equals."""
    first = next((model for model, uris in shown.items() if uris.get(method) == uri), None)
    return uri if first is None else {"as": first}
