"""Many VAEs side by side: which latent space serves in-betweening best (rule compare_vaes).

Every model's own tables are read as they are (its reconstruction metrics, interpolation scores, latent geometry and
the benchmark files of its encode and reconstruct jobs); nothing is recomputed, so adding a VAE reruns only its own
jobs and this aggregate. Figures in pixel space (PSNR, SSIM, gaps in dB) compare directly across VAEs; figures in
latent space are made comparable first: trajectory deviations are ratios to the chord (scale-free), and the
distance from the prior is taken on the latents a diffusion model sees, ``(z - shift_factor) * scaling_factor``.

Table ``results/compare/vaes.csv``, one row per model, split and group (``origin`` Disney/Japan/``all``; on
annotated splits also ``level`` 0/1/2, ``all`` where not split by it):
    ``model``, ``family`` (AutoencoderKL, AutoencoderTiny), ``posterior`` (gaussian, deterministic),
    ``latent_shape`` (``C x h x w``), ``latent_bytes`` (float32 bytes of one frame's latent), ``latent_space`` (the
    model whose latents it decodes: itself, or a decoder-only fine-tune's base), ``baseline``, ``split``,
    ``origin``, ``level``, ``n_triplets``;
    ``recon_psnr``, ``recon_ssim``: reconstruction, the mean over a triplet's three frames, then over triplets;
    ``lerp_gap_db``: vae_ceiling PSNR - latent_lerp PSNR on frame 2 (how far latent lerp stays below decoding the
    true latent2, in this VAE's own ceiling); ``best_learned``: the learned predictor with the highest mean PSNR on
    val (chosen there, so test scores stay unseen), ``best_gap_db`` its gap likewise (empty on train, where the
    predictors fit, and without learned predictors);
    ``midpoint_deviation``: |latent2 - (latent1 + latent3) / 2| / |latent3 - latent1| (``geometry``), mean;
    ``prior_kl``: mean over channels of KL(N(m, s^2) || N(0, 1)) of each scaled latent channel over every split's
    frames (geometry's ``scaled_aggregate_kl``; per model, the same on each of its rows): 0 for a latent space
    shaped like the diffusion prior;
    ``shift_error_subcell``, ``shift_error_cell``: the latent space's equivariance to shifts (``equivariance.json``,
    per model like ``prior_kl``): the error of a latent moved by the shift's cells against the shifted frame's own
    latent, relative to the latents' variance, mean over the shifts below one cell (1, 2, 4 px, f/2) and over the
    multiples of f (f, 2f); ``shift_psnr_lost_subcell``: how much lower the decoded moved latent scores than the
    shifted frame's reconstruction, dB, over the shifts below one cell;
    ``encode_ms_per_image``, ``decode_ms_per_image``: wall time of the model's encode (reconstruct) jobs per frame,
    model loading included, from ``results/benchmarks`` (empty for a model that is never encoded);
    for each of ``COMPARED``: ``<m>_vs_baseline`` (model - baseline on the triplets both have), with
    ``<m>_vs_baseline_ci_low`` / ``_ci_high``, a 95% paired bootstrap over those triplets; empty on the baseline.
``results/compare/vaes.json``: the settings, the baseline, each model's VAE record (geometry.json's ``vae``), its
    selected learned predictor, its ``prior_kl`` per channel, and provenance.

Table ``results/compare/finetunes.csv``: what each fine-tune changed against the VAE it started from, one row per
fine-tune, split and measure (``FINETUNE_MEASURES``):
    ``finetune``, ``base``, ``recipe``, ``split``, ``measure``, ``unit`` (dB, or ``relative`` for latent errors),
    ``better`` (higher or lower), ``paired`` (triplets or frames both have), ``base_value``, ``value`` (means over
    those), ``difference`` (value - base_value) with ``ci_low`` / ``ci_high``, a 95% paired bootstrap. Per triplet:
    reconstruction PSNR, latent_lerp and latent_flow PSNR of frame 2, the VAE's ceiling (vae_ceiling) and the gap of
    each to it; per shifted test frame (``equivariance_frames.csv``, means over the two directions): the
    equivariance error at 1 px and at one latent cell, and the PSNR of decoding the latent moved by 1 px against the
    shifted frame (what the equivariant recipe trains: decode(T(z)) against T(x)); rule equivariance runs once per
    latent space with that space's own model, so a decoder-only fine-tune has its base's errors and no PSNR of its
    own decoder here (its row is left out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from latent_interp import metrics, store

# Per-triplet figures compared against the baseline, and which way is better (the report marks the best per column).
COMPARED = {"recon_psnr": True, "recon_ssim": True, "lerp_gap_db": False, "best_gap_db": False,
            "latent_flow_gap_db": False, "midpoint_deviation": False}
# Per model (the latent space's equivariance.json): name -> (shift class, figure)
EQUIVARIANCE = {"shift_error_subcell": ("subcell", "latent_error"), "shift_error_cell": ("cell", "latent_error"),
                "shift_psnr_lost_subcell": ("subcell", "psnr_lost")}
BETTER = {**COMPARED, "prior_kl": False, "latent_bytes": False, "encode_ms_per_image": False,
          "decode_ms_per_image": False, **{name: False for name in EQUIVARIANCE}}
KEYS = ["split", "triplet"]


def reconstruction_per_triplet(metrics_tables: list[pd.DataFrame]) -> pd.DataFrame:
    """model, split, triplet, origin, level -> recon_psnr, recon_ssim (means over the triplet's frames)."""
    table = pd.concat(metrics_tables, ignore_index=True)
    table["psnr"] = table["psnr"].replace(np.inf, np.nan)  # an exact frame has no finite PSNR
    if "level" not in table:
        table["level"] = np.nan
    grouped = table.groupby(["model", *KEYS], sort=False).agg(
        origin=("origin", "first"), level=("level", "first"), recon_psnr=("psnr", "mean"),
        recon_ssim=("ssim", "mean"))
    return grouped.reset_index()


def best_learned(interp: pd.DataFrame, val_split: str, learned) -> str | None:
    """The ``learned`` predictor with the highest mean PSNR on ``val_split`` (None when there is none)."""
    val = interp[(interp["split"] == val_split) & interp["method"].isin(list(learned))]
    if val.empty:
        return None
    return str(val.groupby("method")["psnr"].mean().idxmax())


def interpolation_per_triplet(interp: pd.DataFrame, best: str | None) -> pd.DataFrame:
    """split, triplet -> lerp_gap_db and best_gap_db (ceiling PSNR minus the method's) of one model."""
    psnr = interp.assign(psnr=interp["psnr"].replace(np.inf, np.nan)).pivot_table(
        index=KEYS, columns="method", values="psnr", aggfunc="first")
    gaps = pd.DataFrame(index=psnr.index)
    gaps["lerp_gap_db"] = psnr["vae_ceiling"] - psnr["latent_lerp"]
    gaps["best_gap_db"] = psnr["vae_ceiling"] - psnr[best] if best in psnr else np.nan
    gaps["latent_flow_gap_db"] = psnr["vae_ceiling"] - psnr["latent_flow"] if "latent_flow" in psnr else np.nan
    for method, column in (("latent_lerp", "lerp_psnr"), ("latent_flow", "latent_flow_psnr"),
                           ("vae_ceiling", "ceiling_psnr")):
        gaps[column] = psnr[method] if method in psnr else np.nan
    return gaps.reset_index()


def benchmark_ms_per_image(paths: list[str], frames: int) -> float:
    """Summed wall time (column ``s``) of the given Snakemake benchmark files, per frame, in ms."""
    if not paths or not frames:
        return float("nan")
    seconds = sum(float(pd.read_csv(path, sep="\t")["s"].iloc[0]) for path in paths)
    return 1000.0 * seconds / frames


def paired_difference(model_values: pd.Series, baseline_values: pd.Series, resamples: int,
                      seed: int) -> tuple[float, float, float]:
    """Mean of model - baseline over the triplets where both are defined, with a 95% bootstrap interval."""
    paired = pd.concat([model_values, baseline_values], axis=1, join="inner").dropna()
    if paired.empty:
        return float("nan"), float("nan"), float("nan")
    difference = (paired.iloc[:, 0] - paired.iloc[:, 1]).to_numpy(float)
    if len(difference) < 2 or resamples == 0:
        return float(difference.mean()), float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(len(difference), size=(resamples, len(difference)))
    low, high = metrics.bootstrap_ci(difference, np.ones_like(difference), picks)  # the mean of each resample
    return float(difference.mean()), low, high


def _groups(table: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(split, origin, level) groups: each split with its origins and, where annotated, its levels."""
    groups = []
    for split, by_split in table.groupby("split", sort=False):
        groups.append(((split, "all", "all"), by_split))
        groups += [((split, origin, "all"), g) for origin, g in by_split.groupby("origin", sort=True)]
        levels = by_split.dropna(subset=["level"])
        groups += [((split, "all", str(int(level))), g) for level, g in levels.groupby("level", sort=True)]
    return groups


class CompareOutputs(NamedTuple):
    """Rule compare_vaes's outputs."""
    table: str  # results/compare/vaes.csv
    summary: str  # its vaes.json
    finetunes_table: str | None = None  # finetunes.csv: the fine-tunes' effects


def compare_vaes(*, models: dict, baseline: str, val_split: str, outputs: CompareOutputs, learned,
                 finetunes: dict | None = None, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Rule compare_vaes: the table of ``outputs``, its summary and, for the fine-tunes, their table. ``models``
    maps each model to its inputs: ``metrics`` (table paths), ``interp`` (table paths), ``latent_space`` (the
    model whose latents it decodes), ``geometry`` (that space's geometry.json), ``channels`` and ``trajectories``
    (its channels.csv and trajectories.csv), ``equivariance`` (its equivariance.json), ``equivariance_frames`` (its
    equivariance_frames.csv), ``encode_benchmarks`` and ``decode_benchmarks`` (benchmark file paths). ``learned``:
    the learned predictors' method names (``interp.predictors``), given by name so that this job needs no torch.
    ``finetunes``: name -> {vae, recipe} of the fine-tunes among ``models``, whose effects go to the fine-tunes'
    table."""
    out_table, out_json, out_finetunes = outputs
    per_model, records, shift_summaries = {}, {}, {}  # shift_summaries: each model's equivariance.json
    for model, inputs in models.items():
        recon = reconstruction_per_triplet([pd.read_csv(path) for path in inputs["metrics"]])
        interp = pd.concat([metrics.study_rows(pd.read_csv(path)) for path in inputs["interp"]], ignore_index=True)
        best = best_learned(interp, val_split, learned)
        trajectories = pd.read_csv(inputs["trajectories"])[[*KEYS, "midpoint_deviation"]]
        triplets = (recon.merge(interpolation_per_triplet(interp, best), on=KEYS, how="left")
                    .merge(trajectories, on=KEYS, how="left"))
        geometry = json.loads(Path(inputs["geometry"]).read_text())
        record = geometry["vae"]
        if model != inputs["latent_space"]:  # a decoder-only fine-tune: its own decoder, its base's latents
            record = {**record, "decoded_by": "its own decoder (latents of " + inputs["latent_space"] + ")"}
        prior = pd.read_csv(inputs["channels"])["scaled_aggregate_kl"].to_numpy(float)
        shifts = json.loads(Path(inputs["equivariance"]).read_text())
        shift_summaries[model] = shifts
        frames = 3 * len(recon)
        shape = geometry["latent_shape"]
        per_model[model] = triplets
        records[model] = {
            "family": record.get("family", "AutoencoderKL"), "posterior": record.get("posterior", "gaussian"),
            "latent_shape": " x ".join(str(n) for n in shape), "latent_bytes": int(np.prod(shape)) * 4,
            "latent_space": inputs["latent_space"], "best_learned": best, "prior_kl": float(prior.mean()),
            "encode_ms_per_image": benchmark_ms_per_image(inputs["encode_benchmarks"], frames),
            "decode_ms_per_image": benchmark_ms_per_image(inputs["decode_benchmarks"], frames),
            **{name: shifts.get(group, {}).get(figure, float("nan"))
               for name, (group, figure) in EQUIVARIANCE.items()},
            "prior_kl_per_channel": prior.tolist(), "vae": record}
    if baseline not in per_model:
        raise ValueError(f"config key compare.baseline: {baseline!r} is not among the compared models "
                         f"({', '.join(per_model)})")
    base = per_model[baseline].set_index(KEYS)
    rows = []
    for model, triplets in per_model.items():
        info = records[model]
        for (split, origin, level), group in _groups(triplets):
            row = {"model": model, **{k: info[k] for k in ("family", "posterior", "latent_shape", "latent_bytes",
                                                           "latent_space")},
                   "baseline": baseline, "split": split, "origin": origin, "level": level,
                   "n_triplets": len(group), "best_learned": info["best_learned"]}
            indexed = group.set_index(KEYS)
            for metric in COMPARED:
                row[metric] = float(indexed[metric].mean()) if indexed[metric].notna().any() else float("nan")
                if model == baseline:
                    row.update({f"{metric}_vs_baseline{s}": float("nan") for s in ("", "_ci_low", "_ci_high")})
                    continue
                difference = paired_difference(indexed[metric], base[metric], resamples, seed)
                row.update(zip([f"{metric}_vs_baseline{s}" for s in ("", "_ci_low", "_ci_high")], difference))
            if split == "train":  # the predictors fit here: their gap on train says nothing about in-betweening
                row["best_gap_db"] = row["best_gap_db_vs_baseline"] = float("nan")
                row["best_gap_db_vs_baseline_ci_low"] = row["best_gap_db_vs_baseline_ci_high"] = float("nan")
            row.update({k: info[k] for k in ("prior_kl", *EQUIVARIANCE, "encode_ms_per_image",
                                             "decode_ms_per_image")})
            rows.append(row)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table.to_csv(out_table, index=False, float_format="%.6g")
    if out_finetunes is not None:
        frames = {model: (shift_summaries[model]["settings"]["split"],
                          shift_errors_per_frame(inputs["equivariance_frames"]), model == inputs["latent_space"])
                  for model, inputs in models.items()}
        finetune_effects(per_model, frames, finetunes or {}, resamples, seed).to_csv(out_finetunes, index=False,
                                                                                     float_format="%.6g")
    settings = {"baseline": baseline, "val_split": val_split, "bootstrap_resamples": resamples, "seed": seed}
    Path(out_json).write_text(json.dumps({
        "settings": settings, "better": {k: "higher" if v else "lower" for k, v in BETTER.items()},
        "models": records, "provenance": store.provenance("compare_vaes", settings)}, indent=2, default=str) + "\n")
    return table


TABLE_COLUMNS = (["model", "family", "posterior", "latent_shape", "latent_bytes", "latent_space", "baseline", "split",
                  "origin", "level", "n_triplets", "best_learned"]
                 + [f"{metric}{suffix}" for metric in COMPARED
                    for suffix in ("", "_vs_baseline", "_vs_baseline_ci_low", "_vs_baseline_ci_high")]
                 + ["prior_kl", *EQUIVARIANCE, "encode_ms_per_image", "decode_ms_per_image"])


# What finetunes.csv reports per fine-tune: measure -> (unit, higher is better, per "triplet" or per shifted "frame")
FINETUNE_MEASURES = {
    "recon_psnr": ("dB", True, "triplet"), "lerp_psnr": ("dB", True, "triplet"),
    "latent_flow_psnr": ("dB", True, "triplet"), "ceiling_psnr": ("dB", True, "triplet"),
    "lerp_gap_db": ("dB", False, "triplet"), "latent_flow_gap_db": ("dB", False, "triplet"),
    "shift_error_1px": ("relative", False, "frame"), "shift_error_subcell": ("relative", False, "frame"),
    "shift_error_cell": ("relative", False, "frame"),
    "moved_psnr_1px": ("dB", True, "frame"),
}
DECODED_FRAME_MEASURES = {"moved_psnr_1px"}  # made by the latent space's own decoder (see the module docstring)
FINETUNE_COLUMNS = ["finetune", "base", "recipe", "split", "measure", "unit", "better", "paired", "base_value",
                    "value", "difference", "ci_low", "ci_high"]


def shift_errors_per_frame(path) -> pd.DataFrame:
    """frame -> shift_error_1px, shift_error_subcell and shift_error_cell (the equivariance error at a 1 px shift, over
    every shift below a cell, and at the smallest whole-cell shift) and moved_psnr_1px (decoding the latent moved by
    1 px), means over the shifts and the two directions, from an ``equivariance_frames.csv``."""
    table = pd.read_csv(path).replace(np.inf, np.nan)  # an exact decode has no finite PSNR
    cell = table.loc[table["whole_cells"], "shift_px"].min()
    one_px, one_cell = table[table["shift_px"] == 1].groupby("frame"), table[table["shift_px"] == cell].groupby("frame")
    subcell = table[table["shift_px"] < cell].groupby("frame")
    return pd.DataFrame({"shift_error_1px": one_px["latent_error"].mean(),
                         "shift_error_subcell": subcell["latent_error"].mean(),
                         "shift_error_cell": one_cell["latent_error"].mean(),
                         "moved_psnr_1px": one_px["moved_psnr"].mean()})


def finetune_effects(per_triplet: dict[str, pd.DataFrame], per_frame: dict[str, tuple[str, pd.DataFrame]],
                     finetunes: dict, resamples: int, seed: int) -> pd.DataFrame:
    """The finetunes.csv table (module docstring): each fine-tune against its base, measure by measure, paired.
    ``per_triplet``: model -> compare's per-triplet table; ``per_frame``: model -> (the split its shifted frames come
    from, ``shift_errors_per_frame``, whether they are its own: false for a decoder-only fine-tune)."""
    rows = []
    for name, entry in finetunes.items():
        base = entry["vae"]
        for measure, (unit, higher, unit_of_pairing) in FINETUNE_MEASURES.items():
            if unit_of_pairing == "frame":
                split, frames, own = per_frame[name]
                if measure in DECODED_FRAME_MEASURES and not own:
                    continue
                groups = [(split, frames[measure], per_frame[base][1][measure])]
            else:
                model, reference = (per_triplet[m].set_index(KEYS)[measure] for m in (name, base))
                groups = [(split, model.xs(split, level="split"), reference.xs(split, level="split"))
                          for split in model.index.unique("split")]
            for split, values, base_values in groups:
                paired = pd.concat([values, base_values], axis=1, join="inner").dropna()
                if paired.empty:
                    continue
                difference = paired_difference(values, base_values, resamples, seed)
                rows.append([name, base, entry.get("recipe", "default"), split, measure, unit,
                             "higher" if higher else "lower", len(paired), float(paired.iloc[:, 1].mean()),
                             float(paired.iloc[:, 0].mean()), *difference])
    return pd.DataFrame(rows, columns=FINETUNE_COLUMNS)
