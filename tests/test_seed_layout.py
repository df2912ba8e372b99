import subprocess
import sys

import numpy as np
import pytest

from latent_interp import encode, seed_layout, store
from latent_interp.settings import VaeRun
from conftest import REPO, ingest_folder


@pytest.fixture
def latents(frame_tree, micro_vae_dir, tmp_path):
    ingest_folder(frame_tree / "val", tmp_path / "frames.zarr", "val", 32)
    encode.encode_split(frames=tmp_path / "frames.zarr", latents=tmp_path / "latents.zarr", split="val",
                        vae_run=VaeRun(micro_vae_dir))
    return tmp_path / "latents.zarr"


def test_export_then_import_round_trips(latents, tmp_path):
    assert seed_layout.export_latents(latents, tmp_path / "seed") == 3
    original = store.open_store(latents)
    name = store.names(original)[1]
    saved = np.load(tmp_path / "seed" / "val" / name / "latent2.npy")
    assert saved.dtype == np.float32 and saved.shape == (4, 4, 4)
    np.testing.assert_array_equal(saved, original[store.MEAN][1, 1])
    seed_layout.import_latents(tmp_path / "seed" / "val", tmp_path / "back.zarr", "val", "micro")
    back = store.open_store(tmp_path / "back.zarr", "latents")
    assert store.names(back) == store.names(original) and store.origins(back) == store.origins(original)
    np.testing.assert_array_equal(back[store.MEAN][:], original[store.MEAN][:])
    assert np.isnan(back[store.LOGVAR][:]).all() and "no log-variance" in str(back.attrs["provenance"])


def test_import_names_missing_files(tmp_path):
    (tmp_path / "val" / "Disney_a").mkdir(parents=True)
    np.save(tmp_path / "val" / "Disney_a" / "latent1.npy", np.zeros((4, 32, 32), np.float32))
    with pytest.raises(FileNotFoundError, match="latent2.npy"):
        seed_layout.import_latents(tmp_path / "val", tmp_path / "x.zarr", "val", "seed")


@pytest.mark.readme("python tools/seed_latents.py import|export ...")
def test_command_line_tool(latents, tmp_path):
    tool = [sys.executable, str(REPO / "tools" / "seed_latents.py")]
    result = subprocess.run([*tool, "export", str(latents), str(tmp_path / "out")], capture_output=True, text=True,
                            check=True)
    assert "exported 3 triplets" in result.stdout
    assert len(list((tmp_path / "out" / "val").glob("*/latent3.npy"))) == 3
    subprocess.run([*tool, "import", str(tmp_path / "out" / "val"), str(tmp_path / "back.zarr"), "--split", "val",
                    "--vae", "seed"], capture_output=True, text=True, check=True)
    back, original = store.open_store(tmp_path / "back.zarr"), store.open_store(latents)
    assert store.names(back) == store.names(original)
    np.testing.assert_array_equal(back[store.MEAN][:], original[store.MEAN][:])
