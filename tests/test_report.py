import base64
import json
import re

import numpy as np
import pandas as pd

from latent_interp import embed, encode, metrics, report, store
from conftest import ingest_folder


def test_pick_grid_triplets_takes_the_first_of_each_origin_by_name():
    names = ["Japan_b", "Disney_b", "Japan_a", "Disney_a", "Disney_c"]
    origins = [n.split("_")[0] for n in names]
    assert report.pick_grid_triplets(names, origins, 2) == [3, 1, 2, 0]


def test_report_is_one_self_contained_page(frame_tree, micro_vae_dir, tmp_path):
    frames_paths, recon_paths, latents_paths, tables, splits = {}, {}, {}, {}, ("train", "val")
    for split in splits:
        frames_paths[split] = tmp_path / f"frames-{split}.zarr"
        ingest_folder(frame_tree / split, frames_paths[split], split, 32)
        latents_paths[("pretrained", split)] = tmp_path / f"latents-{split}.zarr"
        encode.encode_split(frames_paths[split], micro_vae_dir, latents_paths[("pretrained", split)], split)
        recon_paths[("pretrained", split)] = tmp_path / f"recon-{split}.zarr"
        encode.reconstruct_split(latents_paths[("pretrained", split)], micro_vae_dir,
                                 recon_paths[("pretrained", split)], split)
        tables[("pretrained", split)] = tmp_path / f"metrics-{split}.csv"
        metrics.compute_split_metrics(frames_paths[split], recon_paths[("pretrained", split)],
                                      tables[("pretrained", split)], tmp_path / "spec.json", "pretrained", split)
    metrics.summarize_tables(list(tables.values()), tmp_path / "summary.csv", resamples=20)
    embed.embed_model([str(p) for p in latents_paths.values()], "pretrained", "pca", tmp_path / "pca.csv",
                      tmp_path / "pca.png", tmp_path / "pca.json")
    with open(frames_paths["val"].with_suffix(".skipped.csv"), "a") as skipped:
        skipped.write("val,triplet,Japan_broken,/data/val/Japan_broken/frame2.jpg,unreadable image (truncated)\n")
    collapse = {"pretrained": tmp_path / "collapse.json"}
    metrics.collapse_check(frames_paths["val"], recon_paths[("pretrained", "val")], collapse["pretrained"])
    out = tmp_path / "report.html"
    report.build_report(out, {"vae": {"pretrained": "micro"}}, tmp_path / "summary.csv", tables,
                        tmp_path / "spec.json", frames_paths, recon_paths, latents_paths,
                        [("pretrained", "pca", tmp_path / "pca.png", tmp_path / "pca.json")],
                        {split: path.with_suffix(".skipped.csv") for split, path in frames_paths.items()},
                        collapse, per_origin=1)
    page = out.read_text()
    assert "<table>" in page and "Reconstruction metrics" in page and "PCA of pretrained latents" in page
    assert "Model health" in page and "mean-image PSNR" in page
    # The micro VAE is untrained: whether or not it is flagged, the verdict is stated in words when it is.
    verdict = json.loads(collapse["pretrained"].read_text())["collapsed"]
    assert ("The pretrained model has collapsed" in page) == verdict
    assert "triplets found" in page and "Japan_broken/frame2.jpg" in page and "unreadable image (truncated)" in page
    assert not re.search(r"""src=['"](?!data:)""", page)  # every image embedded, nothing linked
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 3  # two reconstruction grids, one embedding plot
    assert all(base64.b64decode(image)[:4] == b"\x89PNG" for image in images)
    # The summary's overall PSNR appears, formatted, in the table.
    overall = pd.read_csv(tmp_path / "summary.csv").query("split == 'all'").iloc[0]
    assert f"{overall.psnr:.2f}" in page and np.isfinite(overall.ssim)
    # Provenance: the VAE's digest and the config.
    digest = store.open_store(latents_paths[("pretrained", "val")]).attrs["vae"]["sha256"]
    assert digest in page and "micro" in page


def test_a_collapsed_model_is_named_in_plain_words(tmp_path):
    figures = {"split": "val", "variance_ratio": 0.001, "model_psnr_pooled": 14.0, "mean_image_psnr": 14.1,
               "psnr_gain_db": -0.1, "collapsed": True, "rule": "collapsed when variance_ratio < 0.1"}
    (tmp_path / "c.json").write_text(json.dumps(figures))
    (tmp_path / "ok.json").write_text(json.dumps({**figures, "variance_ratio": 0.9, "psnr_gain_db": 9.0,
                                                  "collapsed": False}))
    section = report.collapse_section({"finetuned": tmp_path / "c.json", "pretrained": tmp_path / "ok.json"})
    assert "The finetuned model has collapsed" in section and "The pretrained model" not in section
    assert section.count("COLLAPSED") == 1 and "-0.10" in section


def test_finetune_section_shows_the_run_the_curves_and_the_differences(frame_tree, micro_vae_dir, tmp_path):
    from latent_interp import finetune

    stores = []
    for split in ("train", "val"):
        stores.append(tmp_path / f"{split}.zarr")
        ingest_folder(frame_tree / split, stores[-1], split, 32)
    finetune.finetune(*stores, micro_vae_dir, tmp_path / "finetuned", tmp_path / "last.pt",
                      {"enabled": True, "recipe": "default", "epochs": 1, "crop": None}, "cpu")
    rng = np.random.default_rng(0)
    rows = [dict(model=model, split="val", triplet=f"t{i // 3}", origin="Japan", frame=i % 3 + 1,
                 mse=0.001, psnr=30 + (2 if model == "finetuned" else 0) + rng.normal(0, 0.1), ssim=0.9)
            for model in ("pretrained", "finetuned") for i in range(30)]
    metrics.compare_models(pd.DataFrame(rows), resamples=100).to_csv(tmp_path / "comparison.csv", index=False)
    section = report.finetune_section(tmp_path / "finetuned", tmp_path / "comparison.csv")
    assert "Recipe <b>default</b> (overrides: epochs=1, crop=None)" in section
    assert "2 steps of batch 8 on 12 train frames" in section
    assert "color:#1b7f3b'>+2.0" in section  # a gain whose whole interval is above zero, in green
    assert section.count("data:image/png;base64,") == 1 and "Validation by epoch" in section
