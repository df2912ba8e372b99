"""Rule interp: every method of the registry on one model's split, scored against the true frame 2 in each
protocol of ``metrics.protocol``, streamed chunk by chunk; the gallery of decoded in-betweens kept on the way. The
table, spec and store it writes are described in docs/outputs.md."""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from latent_interp import encode, metrics, perceptual, store, vae, warp
# by other names: rule interp's inputs are called flow and predictors
from latent_interp import flow as optical_flow, predictors as learned_predictors
from latent_interp.settings import InterpSettings, VaeRun, at_true_time
from latent_interp.interp.depth import DecoderWarps
from latent_interp.interp.methods import (HIGHER_IS_BETTER, KEY_COLUMNS, LPIPS_INPUTS, PROTOCOL_ROI_COLUMNS,
                                          REGISTRY, Chunk, active_methods, table_columns)


class InterpInputs(NamedTuple):
    """Rule interp's inputs: the split's stores and the folder of the learned predictors."""
    frames: str
    latents: str
    recon: str
    predictors: str
    flow: str | None = None  # the split's flow store; without it the methods that read flow are left out


class InterpOutputs(NamedTuple):
    """Rule interp's outputs (docs/outputs.md)."""
    table: str
    spec: str
    predicted: str  # the store of decoded in-betweens


class Scorer:
    """Scores of predicted frames 2 against the true one, in every protocol asked for (``table_columns``)."""

    def __init__(self, annotations, size, protocols, lpips_model=None, device=None):
        self.annotations, self.size, self.lpips_model, self.device = annotations, size, lpips_model, device
        self.protocols = set(protocols)
        self.columns, self.roi_columns = table_columns(protocols, annotations is not None)

    def lpips(self, truth: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
        """LPIPS of uint8 [B, H, W, 3] pairs for each LPIPS column of the protocols (``LPIPS_INPUTS``), NaN when no
        LPIPS weights were configured."""
        wanted = [column for column in LPIPS_INPUTS if column in self.columns]
        if self.lpips_model is None:
            return {column: np.full(len(truth), np.nan) for column in wanted}
        with torch.no_grad():
            return {column: self.lpips_model(*(torch.from_numpy(np.ascontiguousarray(LPIPS_INPUTS[column](x)))
                                               .to(self.device) for x in (truth, predicted))).float().cpu().numpy()
                    for column in wanted}

    def scores(self, index: int, truth: np.ndarray, predicted: np.ndarray, latent_error: float, lpips: dict) -> dict:
        """column -> value of the prediction of triplet ``index`` of the split (``self.columns`` and
        ``self.roi_columns``); ``lpips``: its LPIPS values by column."""
        scores = dict(lpips)
        if "standard" in self.protocols:
            scores["latent_mse"] = latent_error
            scores["mse"], scores["psnr"], scores["ssim"] = metrics.image_metrics(truth, predicted)
        if "animeinterp" in self.protocols:
            scores["animeinterp_psnr"], scores["animeinterp_ssim"] = metrics.animeinterp_metrics(truth, predicted)
        if "eisai" in self.protocols:
            scores["eisai_chamfer"] = perceptual.chamfer_distance(truth, predicted)
        if self.annotations is not None:
            annotation = self.annotations.iloc[index]
            if "standard" in self.protocols:
                (top, bottom), (left, right) = metrics.roi_box(annotation, self.size)
                scores.update(zip(metrics.ROI_COLUMNS, metrics.image_metrics(truth[top:bottom, left:right],
                                                                             predicted[top:bottom, left:right])))
            if "animeinterp" in self.protocols:
                (top, bottom), (left, right) = metrics.animeinterp_roi_box(annotation, self.size)
                scores.update(zip(PROTOCOL_ROI_COLUMNS["animeinterp"], metrics.animeinterp_metrics(
                    truth[top:bottom, left:right], predicted[top:bottom, left:right])))
        return scores


def interp_spec(lpips_record: str | None, predictors_dir, methods: list[str], flow_settings: dict | None,
                protocols=("standard",)) -> dict:
    return {
        "target": "the true frame 2 (uint8 frames store); every prediction is uint8 before scoring",
        "protocols": [name for name in metrics.PROTOCOLS if name in protocols],
        "methods": {name: {"formula": REGISTRY[name].formula, "reads": list(REGISTRY[name].reads),
                           "sees_frame2": REGISTRY[name].sees_frame2, "learned": REGISTRY[name].learned}
                    for name in methods},
        "predictors": str(predictors_dir),
        "flow": flow_settings,
        "standard: mse, psnr, ssim, roi_*": metrics.metric_spec(),
        "standard: latent_mse": "mean over C*h*w of (predicted latent2 - encoded latent2)^2, unscaled latent units; "
                                "repeat uses latent1; empty for the other pixel-space methods; 0 for vae_ceiling",
        "standard: lpips": (lpips_record + "; inputs uint8 / 127.5 - 1") if lpips_record
        else "skipped: no LPIPS backbone configured (interp.lpips.backbone)",
        "animeinterp_*": metrics.ANIMEINTERP_SPEC,
        "eisai_chamfer": perceptual.CHAMFER_SPEC,
        "eisai_lpips": (lpips_record + "; inputs uint8 / 255 in [0, 1], fed as they are, as EISAI's evaluate.py does")
        if lpips_record else "skipped: no LPIPS backbone configured (interp.lpips.backbone)",
        "motion_px": "the flow table's motion_px of the triplet: mean |F_1->3| in pixels",
        "at": "t: predicted at the triplet's own time t (column t, the frames store's; interp.time: true); midpoint: "
              "at 0.5, every row under interp.time: midpoint, and under true a second row for each triplet whose t "
              "is not 0.5, which only the comparison with the midpoint reads",
        "better": {metric: "higher" if up else "lower" for metric, up in HIGHER_IS_BETTER.items()},
    }


def score_split(*, inputs: InterpInputs, outputs: InterpOutputs, model: str, split: str, vae_run: VaeRun,
                settings: InterpSettings, threads: int = 1) -> pd.DataFrame:
    """Rule interp: every method on one model's split -> the table, its spec and the store of predictions, scored
    in ``settings.protocols`` (``metrics.protocol``)."""
    frames_path, latents_path, recon_path, predictors_dir, flow_path = inputs
    table_path, spec_path, store_path = outputs
    model_name = model
    vae_source, batch_size, device = vae_run.source, vae_run.batch_size, vae_run.device
    vae_options, compile_setting = vae_run.options, vae_run.compile
    gallery_triplets, sample_triplets, seed = settings.gallery, settings.sample, settings.seed
    lpips_weights, protocols = settings.lpips, settings.protocols
    vae.prepare_torch(threads)
    torch_device = vae.pick_device(device)
    frames_group = store.open_store(frames_path, "frames")
    latents_group = store.open_store(latents_path, "latents")
    recon_group = store.open_store(recon_path, "recon")
    names = store.require_same_triplets(frames_group, latents_group, frames_path, latents_path)
    store.require_same_triplets(frames_group, recon_group, frames_path, recon_path)
    flow_group = None
    if flow_path is not None:
        flow_group = store.open_store(flow_path, "flow")
        store.require_same_triplets(frames_group, flow_group, frames_path, flow_path)
    model, vae_record = vae.load_vae(vae_source, torch_device, **(vae_options or {}))
    model = encode.prepare_model(model, torch_device)
    batch_size = encode.resolve_batch_size(model, torch_device, batch_size, frames_group[store.FRAMES].shape[2:4],
                                           vae_record)["batch_size"]
    if vae_record["sha256"] != recon_group.attrs["vae"]["sha256"]:
        raise ValueError(f"{recon_path} was decoded by {recon_group.attrs['vae']['source']}, not by {vae_source}")
    vae.require_same_latent_space(latents_group.attrs["vae"], vae_record, str(latents_path),
                                  f"the decoding VAE {vae_source}")
    learned, predictors_record = learned_predictors.load_predictors(predictors_dir, torch_device)
    if predictors_record["vae"]["sha256"] != latents_group.attrs["vae"]["sha256"]:
        raise ValueError(f"{predictors_dir} was trained on latents of {predictors_record['vae']['source']}, "
                         f"but {latents_path} holds latents of {latents_group.attrs['vae']['source']}")
    lpips_model = lpips_record = None
    if lpips_weights and lpips_weights.get("backbone"):
        lpips_model = perceptual.load_lpips(lpips_weights["backbone"], lpips_weights.get("linear"), torch_device)
        lpips_record = perceptual.lpips_spec(lpips_weights["backbone"], lpips_weights.get("linear"))
    else:
        print("LPIPS skipped: interp.lpips.backbone names no weight file")
    decoder, guard = None, encode.NonFiniteGuard()
    if flow_group is not None:
        decoder = DecoderWarps(model, batch_size, vae_record["dtype"], frames_group[store.FRAMES].shape[2:4], guard)
    methods = active_methods(learned, flow_group is not None, decoder.count if decoder else 0)
    latent_methods = [m for m in methods if REGISTRY[m].output == "latent"]
    # what this job decodes, every latent method's frame 2 of every triplet, decides vae.compile auto
    compiled = encode.compile_for_job(model, torch_device, compile_setting, {
        "decoder": len(names) * len(latent_methods) * int(np.prod(frames_group[store.FRAMES].shape[2:4])) / 1e6})
    flow_settings = dict(flow_group.attrs["flow"]) if flow_group is not None else None
    frames, recon, mean = frames_group[store.FRAMES], recon_group[store.FRAMES], latents_group[store.MEAN]
    annotations = store.read_annotations(frames_group)
    scorer = Scorer(annotations, frames.shape[2:4], protocols, lpips_model, torch_device)
    origins = store.origins(frames_group)
    flow_ok = flow_group["ok"][:] if flow_group is not None else np.ones(len(names), bool)
    motion = flow_group["motion_px"][:] if flow_group is not None else np.full(len(names), np.nan)
    middle_times = warp.snapped(store.middle_times(frames_group))
    group = store.create(store_path, "interp", split, {
        "model": model_name, "methods": methods, "latent_methods": latent_methods,
        "sees_frame2": [m for m in methods if REGISTRY[m].sees_frame2], "vae": vae_record,
        "latents_vae": dict(latents_group.attrs["vae"]), "flow": flow_settings,
        "predictors": {"folder": str(predictors_dir),
                       "selected": {k: v["selected"] for k, v in predictors_record["predictors"].items()}},
        "time": "true" if at_true_time(settings.time) else "midpoint",
        "provenance": store.provenance("interp", {"batch_size": batch_size, "device": torch_device.type,
                                                  "compile": compiled,
                                                  "gallery_triplets": gallery_triplets,
                                                  "sample_triplets": sample_triplets, "seed": seed,
                                                  "flow": str(flow_path) if flow_path else None})},
        names, origins)
    predicted_store = store.add_array(group, "predicted_latents", (len(latent_methods), *mean.shape[2:]), np.float32)
    keeper = GalleryKeeper(names, gallery_triplets, sample_triplets, seed)
    columns = [*KEY_COLUMNS, "at", *scorer.columns, "motion_px", "t", *scorer.roi_columns]
    at_true = at_true_time(settings.time)
    rows = []

    def score_rows(chunk: Chunk, images: dict, latent_errors: dict, indices: np.ndarray, at: str) -> None:
        """The table's rows of ``chunk``'s triplets (``indices`` in the split), method by method, predicted ``at``
        their own t (``t``) or the ``midpoint``."""
        truth = chunk.frames[:, 1]
        for method in methods:
            lpips = scorer.lpips(truth, images[method])
            unscored = REGISTRY[method].reads_flow
            for offset, index in enumerate(indices):
                scores = ({} if unscored and not flow_ok[index] else  # a failed flow: no score
                          scorer.scores(index, truth[offset], images[method][offset], latent_errors[method][offset],
                                        {column: values[offset] for column, values in lpips.items()}))
                rows.append({"model": model_name, "split": split, "triplet": names[index], "origin": origins[index],
                             "method": method, "at": at, "motion_px": motion[index], "t": middle_times[index],
                             **scores})

    def chunk_of(frames_rows, recon_rows, latent_rows, flow_rows, times) -> Chunk:
        return Chunk(frames_rows, recon_rows, latent_rows, flow_rows, learned, torch_device, flow_settings or {},
                     vae_record["downsampling"], decoder, times)

    with tqdm(total=len(names), desc=f"interp {model_name}/{split}", unit="triplet") as progress:
        for start, stop in store.chunk_ranges(mean):
            times = middle_times[start:stop]
            off_middle = np.flatnonzero(times != warp.T_MIDDLE) if at_true else np.empty(0, int)
            # at the midpoint every method runs as it always has: no per-triplet times at all
            chunk = chunk_of(frames[start:stop], recon[start:stop], mean[start:stop],
                             optical_flow.read_rows(flow_group, start, stop) if flow_group is not None else None,
                             times if len(off_middle) else None)
            images, latent_errors, predicted = _predict_chunk(chunk, methods, model, batch_size, vae_record["dtype"],
                                                              guard, names[start:stop])
            predicted_store[start:stop] = np.stack([predicted[m] for m in latent_methods], axis=1)
            lerp_first = len(rows) + methods.index("latent_lerp") * (stop - start)  # rows go method by method
            score_rows(chunk, images, latent_errors, np.arange(start, stop), "t" if at_true else "midpoint")
            for offset, row in enumerate(rows[lerp_first:lerp_first + stop - start]):
                keeper.offer(names[start + offset], row.get("psnr", np.nan),
                             lambda offset=offset: np.stack([images[m][offset] for m in methods]))
            if len(off_middle):  # the same methods at the midpoint, for the paired comparison (summary, report),
                # on the chunk's rows already read
                midpoint = chunk_of(chunk.frames[off_middle], chunk.recon[off_middle], chunk.latents[off_middle],
                                    None if chunk.flow_rows is None else
                                    {name: values[off_middle] for name, values in chunk.flow_rows.items()}, None)
                scored = _predict_chunk(midpoint, methods, model, batch_size, vae_record["dtype"], guard,
                                        [names[start + i] for i in off_middle])
                score_rows(midpoint, scored[0], scored[1], start + off_middle, "midpoint")
            progress.update(stop - start)
    table = pd.DataFrame(rows, columns=columns)
    if annotations is not None:
        table = table.merge(annotations[["triplet", *metrics.ANNOTATION_COLUMNS]], on="triplet", how="left")
    table.to_csv(table_path, index=False, float_format="%.8g")
    Path(spec_path).write_text(json.dumps(interp_spec(lpips_record, predictors_dir, methods, flow_settings,
                                                      protocols), indent=2) + "\n")
    _write_gallery(group, methods, frames.shape[2:], keeper, gallery_order(table, gallery_triplets, sample_triplets,
                                                                           seed))
    group.attrs["non_finite"] = guard.record()
    store.seal(group)
    return table


class GalleryKeeper:
    """The in-betweens the gallery will hold, kept while the split streams by, so that none is decoded twice: the
    fixed-seed sample (known from the names alone) and the ``count`` worst latent_lerp PSNRs so far (the order
    ``gallery_order`` gives: lowest PSNR first, NaN last, ties by name). Memory: at most count + sample triplets."""

    def __init__(self, names: list[str], count, sample: int, seed: int):
        everyone = sorted(names)
        drawn = np.random.default_rng(seed).permutation(len(everyone))[:sample]  # as gallery_order draws them
        self.sampled = {everyone[i] for i in drawn}
        self.count = len(names) if count == "all" else int(count)
        self.worst: list[tuple] = []  # (key, name), the count lowest keys so far, sorted
        self.images: dict[str, np.ndarray] = {}

    def offer(self, name: str, psnr: float, images) -> None:
        """Consider triplet ``name`` (its latent_lerp PSNR); ``images()`` gives its methods' frames if it is kept."""
        key = (bool(np.isnan(psnr)), psnr, name)
        if self.count and (len(self.worst) < self.count or key < self.worst[-1][0]):
            bisect.insort(self.worst, (key, name))
            if len(self.worst) > self.count:
                _, dropped = self.worst.pop()
                if dropped not in self.sampled:
                    self.images.pop(dropped, None)
            self.images[name] = images()
        elif name in self.sampled:
            self.images[name] = images()

    def __getitem__(self, name: str) -> np.ndarray:
        return self.images[name]


def _predict_chunk(chunk: Chunk, methods: list[str], model, batch_size: int, dtype: str = "auto",
                   guard: encode.NonFiniteGuard | None = None, names: list[str] | None = None):
    """For a chunk of triplets (``names``, for errors): every method's frame 2 (uint8 [B, H, W, 3]), every method's
    latent MSE [B], and every latent method's predicted latent2 (decoded with the non-finite ``guard``)."""
    count, second = len(chunk.latents), chunk.latents[:, 1]
    predicted = {m: REGISTRY[m].predict(chunk) for m in methods if REGISTRY[m].output == "latent"}
    images = {m: REGISTRY[m].predict(chunk) for m in methods if REGISTRY[m].output == "frame"}
    if predicted:
        try:
            decoded = encode.decode_latents(model, np.concatenate(list(predicted.values())), chunk.device,
                                            batch_size, dtype, chunk.frames.shape[2:4], guard)
        except encode.NonFiniteError as error:
            bad = [f"{names[i % count] if names else i % count} ({list(predicted)[i // count]})" for i in error.frames]
            raise encode.NonFiniteError(f"{error} even in float32, predicted frame 2 of: {', '.join(bad[:10])}",
                                        error.frames) from None
        for position, method in enumerate(predicted):
            images[method] = decoded[position * count:(position + 1) * count]
    errors = {}
    for method in methods:
        stands_for = REGISTRY[method].stands_for
        errors[method] = (_latent_mse(predicted[method], second) if method in predicted
                          else _latent_mse(chunk.latents[:, stands_for], second) if stands_for is not None
                          else np.full(count, np.nan))
    return images, errors, predicted


def _latent_mse(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return ((predicted.astype(np.float64) - truth) ** 2).reshape(len(truth), -1).mean(axis=1)


def gallery_order(table: pd.DataFrame, count, sample: int = 0, seed: int = 0) -> tuple[list[str], int]:
    """Triplets whose in-betweens are kept, and how many of them lead as the worst: lowest ``latent_lerp`` PSNR first
    (the largest interpolation error), ``count`` of them or all with ``count == "all"``, ties by name; then
    ``sample`` names drawn with ``seed`` from all triplets (so every model keeps the same typical ones), less those
    already picked, by name."""
    table = metrics.study_rows(table)  # the rows at each triplet's t, those the gallery keeps
    lerp = table[table["method"] == "latent_lerp"].sort_values(["psnr", "triplet"])
    ordered = lerp["triplet"].tolist()
    worst = ordered if count == "all" else ordered[:int(count)]
    everyone = sorted(ordered)
    drawn = np.random.default_rng(seed).permutation(len(everyone))[:sample]
    typical = sorted(set(everyone[i] for i in drawn) - set(worst))
    return worst + typical, len(worst)


def _write_gallery(group, methods, frame_shape, keeper: GalleryKeeper, order: tuple[list[str], int]) -> None:
    picked, worst = order
    group.attrs["gallery_worst"] = worst
    store.write_strings(group, "gallery_triplets", picked)
    gallery = store.add_array(group, "gallery", (len(methods), *frame_shape), np.uint8, count=len(picked))
    for start in range(0, len(picked), gallery.chunks[0]):  # whole chunks, in gallery order
        gallery[start:start + gallery.chunks[0]] = np.stack([keeper[name]
                                                             for name in picked[start:start + gallery.chunks[0]]])
