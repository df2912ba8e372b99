"""The geometry of one model's latent space over every split: trajectories, channels, clusters and linear probes.

Each frame's latent is its posterior mean (C x h x w, unscaled); a triplet's trajectory is latent1 -> latent2 ->
latent3. Everything is loaded in memory once (ATD-12K at 256 px: 36,000 x 4,096 floats, about 0.6 GB).

Table ``trajectories.csv``, one row per triplet:
    ``model``, ``split``, ``triplet``, ``origin``; ``step_1`` = |latent2 - latent1|, ``step_2`` = |latent3 - latent2|,
    ``chord`` = |latent3 - latent1| (L2 norms over the flattened latent); ``midpoint_deviation`` = |latent2 -
    (latent1 + latent3) / 2| / chord (0: latent2 is the lerp midpoint); ``line_deviation`` = the distance of latent2
    from the straight line through latent1 and latent3, / chord (0: on the line, wherever along it);
    ``angle_deg`` = the angle between the two steps (0: straight on, 180: back); ``step_ratio`` = step_1 / step_2
    (1: halfway); ``pixel_motion`` = mean |frame3 - frame1| over pixels and channels, frames in [0, 1]; annotated
    splits fill ``level``, ``general_motion_type``, ``behavior``. Undefined ratios (a zero chord or step) are empty.
Table ``channels.csv``, one row per latent channel: ``model``, ``channel``, ``mean``, ``std``, ``skew``,
    ``kurtosis`` (excess: 0 for a Gaussian), ``min``, ``max``, ``aggregate_kl`` = KL(N(mean, std^2) || N(0, 1)) of
    the channel's values over all frames and positions, ``posterior_kl`` = the mean per element of KL(q(z|x) ||
    N(0, 1)) from the posterior mean and logvar, the quantity the VAE's KL term pulls down (nats); empty for a
    deterministic encoder (AutoencoderTiny), which has no posterior variance; ``scaled_mean``, ``scaled_std``,
    ``scaled_aggregate_kl``: the same moments of the latents a diffusion model sees, ``(z - shift_factor) *
    scaling_factor`` (the store's VAE record), comparable across VAEs.
Table ``histograms.csv``: ``model``, ``channel``, ``bin_low``, ``bin_high``, ``count`` (``bins`` equal bins from the
    smallest to the largest value of all channels: no value falls outside).
Table ``correlation.csv``: ``channel`` and one column per channel: Pearson correlations over frames and positions.
Table ``clusters.csv``, one row per frame: ``model``, ``split``, ``triplet``, ``origin``, ``frame``, ``cluster``
    (k-means with k = ``kmeans_k`` on the first ``pca_components`` principal components of the flattened latents).
``geometry.json``: the headline figures (trajectory medians, per origin and level; Spearman correlations with pixel
    motion; the adjusted Rand index of the clusters against origin and the share of triplets whose three frames share
    a cluster; the probes' accuracies beside chance), settings, inputs and versions.
Probes: logistic regression on the standardised flattened latents, fitted on the ``probe_train`` split's frames (at
most ``probe_max_points``, a fixed-seed sample) and scored on the ``probe_test`` split's: ``origin`` (Disney or
Japan) and ``frame`` (1, 2 or 3: does a latent alone say where in the triplet its frame is?).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from latent_interp import schema, store

# config geometry's defaults; equivariance_frames is rule equivariance's, not this stage's
DEFAULTS = {key: value for key, value in schema.defaults("geometry").items() if key != "equivariance_frames"}
TRAJECTORY_COLUMNS = ["model", "split", "triplet", "origin", "step_1", "step_2", "chord", "midpoint_deviation",
                      "line_deviation", "angle_deg", "step_ratio", "pixel_motion", "level", "general_motion_type",
                      "behavior"]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def trajectory_stats(latents: np.ndarray) -> pd.DataFrame:
    """The trajectory columns (module docstring) of latents [N, 3, ...]."""
    z = latents.reshape(len(latents), 3, -1).astype(np.float64)
    step_1, step_2, chord = z[:, 1] - z[:, 0], z[:, 2] - z[:, 1], z[:, 2] - z[:, 0]
    norm = lambda v: np.linalg.norm(v, axis=1)  # noqa: E731
    chord_length = norm(chord)
    # Along-chord position of latent2, then the perpendicular remainder: the distance from the line.
    along = _ratio(np.einsum("ij,ij->i", step_1, chord), chord_length ** 2)
    perpendicular = step_1 - np.nan_to_num(along)[:, None] * chord
    cosine = _ratio(np.einsum("ij,ij->i", step_1, step_2), norm(step_1) * norm(step_2))
    return pd.DataFrame({
        "step_1": norm(step_1), "step_2": norm(step_2), "chord": chord_length,
        "midpoint_deviation": _ratio(norm(z[:, 1] - (z[:, 0] + z[:, 2]) / 2), chord_length),
        "line_deviation": _ratio(norm(perpendicular), chord_length),
        "angle_deg": np.degrees(np.arccos(np.clip(cosine, -1, 1))),
        "step_ratio": _ratio(norm(step_1), norm(step_2)),
    })


def gaussian_kl(mean: float, std: float) -> float:
    """KL(N(mean, std^2) || N(0, 1)) in nats."""
    return 0.5 * (std ** 2 + mean ** 2 - 1 - np.log(max(std ** 2, 1e-30)))


def channel_stats(values: np.ndarray, posterior_kl: np.ndarray, scaling_factor: float = 1.0,
                  shift_factor: float = 0.0) -> pd.DataFrame:
    """Per-channel moments of latents [F, C, h, w] and their distance from the N(0, 1) prior, as stored and as a
    diffusion model sees them (one channel in float64 at a time: ATD-12K's whole latent set in float64 would be
    1.2 GB more)."""
    rows = []
    for channel in range(values.shape[1]):
        x = values[:, channel].astype(np.float64).ravel()
        mean, std = x.mean(), x.std()
        scaled_mean, scaled_std = (mean - shift_factor) * scaling_factor, std * scaling_factor
        rows.append({"channel": channel, "mean": mean, "std": std, "skew": stats.skew(x),
                     "kurtosis": stats.kurtosis(x), "min": x.min(), "max": x.max(),
                     "aggregate_kl": gaussian_kl(mean, std), "posterior_kl": posterior_kl[channel],
                     "scaled_mean": scaled_mean, "scaled_std": scaled_std,
                     "scaled_aggregate_kl": gaussian_kl(scaled_mean, scaled_std)})
    return pd.DataFrame(rows)


def channel_correlation(values: np.ndarray, frames_per_step: int = 1024) -> np.ndarray:
    """Pearson correlations [C, C] of the channels over frames and positions, accumulated a block of frames at a
    time in float64."""
    channels = values.shape[1]
    total, products, count = np.zeros(channels), np.zeros((channels, channels)), 0
    for start in range(0, len(values), frames_per_step):
        block = np.moveaxis(values[start:start + frames_per_step], 1, 0).reshape(channels, -1).astype(np.float64)
        total += block.sum(axis=1)
        products += block @ block.T
        count += block.shape[1]
    mean = total / count
    covariance = products / count - np.outer(mean, mean)
    deviation = np.sqrt(np.clip(np.diag(covariance), 1e-30, None))
    return covariance / np.outer(deviation, deviation)


def channel_histograms(values: np.ndarray, bins: int) -> pd.DataFrame:
    low, high = float(values.min()), float(values.max())
    edges = np.linspace(low, high if high > low else low + 1, bins + 1)
    rows = []
    for channel in range(values.shape[1]):
        counts, _ = np.histogram(values[:, channel], bins=edges)
        rows += [(channel, edges[i], edges[i + 1], int(c)) for i, c in enumerate(counts)]
    return pd.DataFrame(rows, columns=["channel", "bin_low", "bin_high", "count"])


def linear_probe(train_x, train_y, test_x, test_y, seed: int) -> dict:
    """Accuracy of a logistic regression fitted on train and scored on test, beside the majority-class share."""
    if len(set(train_y)) < 2 or len(test_y) == 0:
        return {"skipped": f"needs two classes in train and some test frames (train classes {sorted(set(train_y))}, "
                           f"{len(test_y)} test frames)"}
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train_x, train_y)
    predicted = probe.predict(test_x)
    majority = pd.Series(test_y).value_counts(normalize=True).iloc[0]
    return {"accuracy": float(np.mean(predicted == np.asarray(test_y))), "chance": float(majority),
            "train_frames": int(len(train_y)), "test_frames": int(len(test_y))}


def load_split(latents_path, frames_path) -> dict:
    """One split's latents (mean, and the per-channel posterior KL sums), names and per-triplet pixel motion."""
    latents_group = store.open_store(latents_path, "latents")
    frames_group = store.open_store(frames_path, "frames")
    names = store.require_same_triplets(latents_group, frames_group, latents_path, frames_path)
    mean = latents_group[store.MEAN][:]
    channels = mean.shape[2]
    kl_sums, motion = np.zeros(channels), []
    if store.LOGVAR not in latents_group:  # a deterministic encoder: no posterior, so no posterior KL
        kl_sums[:] = np.nan
    else:
        logvar = latents_group[store.LOGVAR]
        # KL(N(mu, s^2) || N(0, 1)) per element = (mu^2 + s^2 - 1 - ln s^2) / 2, summed per channel
        for start, stop in store.chunk_ranges(logvar):
            lv, mu = logvar[start:stop].astype(np.float64), mean[start:stop].astype(np.float64)
            kl_sums += (0.5 * (mu ** 2 + np.exp(lv) - 1 - lv)).sum(axis=(0, 1, 3, 4))
    frames = frames_group[store.FRAMES]
    for start, stop in store.chunk_ranges(frames):
        chunk = frames[start:stop].astype(np.float32) / 255.0
        motion.append(np.abs(chunk[:, 2] - chunk[:, 0]).reshape(stop - start, -1).mean(axis=1))
    return {"split": latents_group.attrs["split"], "names": names, "origins": store.origins(latents_group),
            "mean": mean, "kl_sums": kl_sums, "pixel_motion": np.concatenate(motion) if motion else np.empty(0),
            "annotations": store.read_annotations(frames_group), "vae": dict(latents_group.attrs["vae"])}


def _medians(table: pd.DataFrame, by: str) -> dict:
    columns = ["midpoint_deviation", "line_deviation", "angle_deg", "step_ratio"]
    return {str(key): {c: float(g[c].median()) for c in columns} | {"triplets": len(g)}
            for key, g in table.dropna(subset=[by]).groupby(by)}


def trajectory_summary(table: pd.DataFrame) -> dict:
    summary = {"all": _medians(table.assign(all="all"), "all")["all"], "by_origin": _medians(table, "origin")}
    if table["level"].notna().any():
        summary["by_level"] = _medians(table.assign(level=table["level"].astype("Int64")), "level")
        summary["by_motion_type"] = _medians(table, "general_motion_type")
    correlations = {}
    for column in ("midpoint_deviation", "line_deviation", "angle_deg"):
        pair = table[[column, "pixel_motion"]].dropna()
        if len(pair) > 2 and pair[column].nunique() > 1 and pair["pixel_motion"].nunique() > 1:
            rho, p_value = stats.spearmanr(pair[column], pair["pixel_motion"])
            correlations[column] = {"spearman_rho": float(rho), "p_value": float(p_value), "triplets": len(pair)}
    summary["spearman_with_pixel_motion"] = correlations
    return summary


class GeometryOutputs(NamedTuple):
    """Rule geometry's outputs: the tables above and geometry.json (``summary``)."""
    trajectories: str
    channels: str
    histograms: str
    correlation: str
    clusters: str
    summary: str


def analyse_geometry(*, latents: list[str], frames: list[str], outputs: GeometryOutputs, model: str,
                     settings: dict | None = None, probe_test: str = "test") -> dict:
    """Rule geometry: every split's latents of one latent space (the stores ``latents``, with their ``frames``) ->
    the tables and the JSON summary of ``outputs`` (docs/outputs.md). The probes fit on train and are scored on
    ``probe_test``."""
    return _analyse(latents, frames, outputs, model, {**DEFAULTS, **(settings or {})}, "train", probe_test)


def _analyse(latent_paths: list[str], frames_paths: list[str], outputs: GeometryOutputs, model: str,
             settings: dict, probe_train: str, probe_test: str) -> dict:
    splits = [load_split(lp, fp) for lp, fp in tqdm(list(zip(latent_paths, frames_paths)), desc="load", unit="split")]
    if len({s["vae"]["sha256"] for s in splits}) > 1:
        raise ValueError(f"{latent_paths}: the splits were encoded by different VAEs")
    record = splits[0]["vae"]
    trajectories = []
    for s in splits:
        table = trajectory_stats(s["mean"])
        table.insert(0, "model", model)
        table.insert(1, "split", s["split"])
        table.insert(2, "triplet", s["names"])
        table.insert(3, "origin", s["origins"])
        table["pixel_motion"] = s["pixel_motion"]
        if s["annotations"] is not None:
            table = table.merge(s["annotations"][["triplet", "level", "general_motion_type", "behavior"]],
                                on="triplet", how="left")
        trajectories.append(table)
    trajectories = pd.concat(trajectories, ignore_index=True).reindex(columns=TRAJECTORY_COLUMNS)
    trajectories.to_csv(outputs.trajectories, index=False, float_format="%.6g")

    values = np.concatenate([s["mean"].reshape(-1, *s["mean"].shape[2:]) for s in splits])  # [F, C, h, w]
    positions = len(values) * int(np.prod(values.shape[2:]))
    channels = channel_stats(values, sum(s["kl_sums"] for s in splits) / max(positions, 1),
                             record.get("scaling_factor", 1.0), record.get("shift_factor") or 0.0)
    channels.insert(0, "model", model)
    channels.to_csv(outputs.channels, index=False, float_format="%.6g")
    histograms = channel_histograms(values, settings["histogram_bins"])
    histograms.insert(0, "model", model)
    histograms.to_csv(outputs.histograms, index=False, float_format="%.6g")
    correlation = channel_correlation(values)
    pd.DataFrame(correlation, columns=[str(c) for c in range(len(correlation))]).rename_axis("channel").to_csv(
        outputs.correlation, float_format="%.6g")

    frames_table = pd.DataFrame([(s["split"], name, origin, frame) for s in splits
                                 for name, origin in zip(s["names"], s["origins"]) for frame in (1, 2, 3)],
                                columns=["split", "triplet", "origin", "frame"])
    flat = values.reshape(len(values), -1)
    clustering = cluster_frames(flat, frames_table, settings)
    frames_table.insert(0, "model", model)
    frames_table["cluster"] = clustering.pop("labels")
    frames_table.to_csv(outputs.clusters, index=False)

    probes = {}
    train_rows = np.flatnonzero(frames_table["split"] == probe_train)
    test_rows = np.flatnonzero(frames_table["split"] == probe_test)
    if len(train_rows) > settings["probe_max_points"]:
        train_rows = np.sort(np.random.default_rng(settings["seed"]).choice(
            train_rows, settings["probe_max_points"], replace=False))
    for target in ("origin", "frame"):
        labels = frames_table[target].to_numpy()
        probes[target] = linear_probe(flat[train_rows], labels[train_rows], flat[test_rows], labels[test_rows],
                                      settings["seed"])
        probes[target].update(train_split=probe_train, test_split=probe_test)

    summary = {"model": model, "frames": int(len(values)), "triplets": int(len(trajectories)),
               "latent_shape": list(values.shape[1:]), "trajectories": trajectory_summary(trajectories),
               "channels": {"mean_abs_correlation_off_diagonal": float(
                   np.abs(correlation[~np.eye(len(correlation), dtype=bool)]).mean()) if len(correlation) > 1 else 0.0,
                   "aggregate_kl_total": float(channels["aggregate_kl"].sum()),
                   "scaled_aggregate_kl_mean": float(channels["scaled_aggregate_kl"].mean()),
                   # NaN for a deterministic encoder: it has no posterior to measure (not zero)
                   "posterior_kl_total": float(channels["posterior_kl"].sum(min_count=1)),
                   "posterior": record.get("posterior", "gaussian")},
               "clusters": clustering, "probes": probes, "settings": settings, "latents": list(latent_paths),
               "vae": {k: v for k, v in splits[0]["vae"].items() if k != "config"},
               "provenance": store.provenance("geometry", settings)}
    Path(outputs.summary).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def cluster_frames(flat: np.ndarray, frames_table: pd.DataFrame, settings: dict) -> dict:
    """k-means on the first principal components; how the clusters line up with origin and with triplets."""
    components = max(1, min(settings["pca_components"], len(flat) - 1, flat.shape[1]))
    reduced = PCA(n_components=components, random_state=settings["seed"]).fit_transform(flat)
    k = min(settings["kmeans_k"], len(flat))
    labels = KMeans(n_clusters=k, n_init=4, random_state=settings["seed"]).fit_predict(reduced)
    per_triplet = pd.Series(labels).groupby([frames_table["split"], frames_table["triplet"]]).nunique()
    return {"labels": labels, "k": int(k), "pca_components": int(components),
            "adjusted_rand_index_origin": float(adjusted_rand_score(frames_table["origin"], labels)),
            "triplets_in_one_cluster": float((per_triplet == 1).mean()),
            "sizes": np.bincount(labels, minlength=k).tolist()}

