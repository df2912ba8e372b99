import json

import numpy as np
import pandas as pd
import pytest

from latent_interp import embed, store
from latent_interp.settings import EmbedSettings


def outputs(folder):
    """Rule embed's three outputs, in ``folder``."""
    return embed.EmbedOutputs(table=folder / "e.csv", plot=folder / "e.png", record=folder / "e.json")


def _latents_store(path, split, count, seed):
    rng = np.random.default_rng(seed)
    names = [f"{'Disney' if i % 2 == 0 else 'Japan'}_v1_0_{seed:03d}{i:03d}_s1" for i in range(count)]
    group = store.create(path, "latents", split, {}, names, [n.split("_")[0] for n in names])
    # Two clusters by origin, so an embedding has structure to find.
    values = rng.normal(size=(count, 3, 4, 4, 4)).astype(np.float32)
    values[::2] += 4.0
    store.add_array(group, store.MEAN, (3, 4, 4, 4), np.float32)[:] = values
    store.seal(group)
    return path


@pytest.fixture
def latent_paths(tmp_path):
    return [str(_latents_store(tmp_path / f"{s}.zarr", s, n, i)) for i, (s, n) in enumerate([("train", 8),
                                                                                                 ("val", 4)])]


def test_points_carry_their_labels(latent_paths):
    points, table = embed.load_latent_points(latent_paths)
    assert points.shape == (36, 64) and len(table) == 36
    assert list(table["frame"][:3]) == [1, 2, 3] and set(table["split"]) == {"train", "val"}
    raw = store.open_store(latent_paths[1])[store.MEAN][2, 1].ravel()
    np.testing.assert_array_equal(points[24 + 2 * 3 + 1], raw)


@pytest.mark.parametrize("method", embed.METHODS)
def test_each_method_writes_table_settings_and_plot(latent_paths, tmp_path, method):
    table = embed.embed_model(latents=latent_paths, model="pretrained", method=method, outputs=outputs(tmp_path),
                              settings=EmbedSettings(seed=0))
    on_disk = pd.read_csv(tmp_path / "e.csv")
    assert list(on_disk.columns) == ["model", "split", "triplet", "origin", "frame", "x", "y"]
    assert len(on_disk) == 36 and np.isfinite(on_disk[["x", "y"]].to_numpy()).all()
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    settings = json.loads((tmp_path / "e.json").read_text())
    assert settings["points_embedded"] == settings["points_total"] == 36
    # The origin clusters separate along some direction of the embedding.
    disney = table[table.origin == "Disney"][["x", "y"]].mean()
    japan = table[table.origin == "Japan"][["x", "y"]].mean()
    spread = table[["x", "y"]].std().mean()
    assert np.linalg.norm(disney - japan) > spread


def test_umap_is_imported_with_its_numba_functions_cached_and_numba_left_as_it_was():
    import numba

    plain = numba.njit
    umap = embed.import_umap()
    from umap import layouts

    assert type(layouts.rdist._cache).__name__ == "FunctionCache"  # numba's NullCache when uncached
    assert numba.njit is plain and embed.import_umap() is umap


def test_subsample_above_max_points_keeps_whole_triplets_and_is_recorded(latent_paths, tmp_path):
    embed.embed_model(latents=latent_paths, model="m", method="pca", outputs=outputs(tmp_path),
                      settings=EmbedSettings(max_points=10))
    settings = json.loads((tmp_path / "e.json").read_text())
    assert settings["points_total"] == 36 and settings["points_embedded"] == 9  # 3 whole triplets
    table = pd.read_csv(tmp_path / "e.csv")
    assert table.groupby(["split", "triplet"]).size().eq(3).all()
    assert len(settings["trajectories"]) == 3


def test_geometry_columns_and_trajectories_join_by_name(latent_paths, tmp_path):
    _, labels = embed.load_latent_points(latent_paths)
    clusters = labels.assign(cluster=np.arange(len(labels)) % 4)
    clusters.to_csv(tmp_path / "clusters.csv", index=False)
    triplets = labels.drop_duplicates(["split", "triplet"]).assign(level=1, general_motion_type="translation")
    triplets.to_csv(tmp_path / "trajectories.csv", index=False)
    table = embed.embed_model(latents=latent_paths, model="m", method="pca", outputs=outputs(tmp_path),
                              clusters=tmp_path / "clusters.csv", trajectories=tmp_path / "trajectories.csv",
                              settings=EmbedSettings(trajectories=5))
    merged = table.merge(clusters, on=["split", "triplet", "frame"], suffixes=("", "_expected"))
    assert (merged["cluster"] == merged["cluster_expected"]).all() and (table["level"] == 1).all()
    drawn = json.loads((tmp_path / "e.json").read_text())["trajectories"]
    assert len(drawn) == 5 and drawn == embed.trajectory_sample(table, 5, 0)


def test_triplet_closeness_known_answers():
    # Two triplets at x = 0, 1, 2 each: a triplet's spread (mean pairwise distance) is 4/3; two random frames are
    # 0 apart with chance 12/36, 1 with 16/36, 2 with 8/36, so their median distance is 1.
    rows = [("train", f"t{k}", frame, float(frame), 0.0) for k in range(2) for frame in (0, 1, 2)]
    table = pd.DataFrame(rows, columns=["split", "triplet", "frame", "x", "y"])
    assert embed.triplet_closeness(table) == pytest.approx(0.75)
    # Ten tight triplets far apart: frames of a triplet are far closer to each other than to the rest.
    rows = [("train", f"t{k}", frame, 100.0 * k + 0.01 * frame, 0.0) for k in range(10) for frame in (0, 1, 2)]
    assert embed.triplet_closeness(pd.DataFrame(rows, columns=["split", "triplet", "frame", "x", "y"])) > 1000


def test_deterministic_for_a_seed(latent_paths):
    points, _ = embed.load_latent_points(latent_paths)
    first, _ = embed.embed_points(points, "tsne", seed=3)
    second, _ = embed.embed_points(points, "tsne", seed=3)
    np.testing.assert_array_equal(first, second)


def test_unknown_method_names_the_config_key(latent_paths):
    points, _ = embed.load_latent_points(latent_paths)
    with pytest.raises(ValueError, match="embed.methods"):
        embed.embed_points(points, "isomap")
