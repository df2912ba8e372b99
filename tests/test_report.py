"""The report package on tiny data: the page, its payload and figures, and each piece the sections are built from.
The page's behaviour in a browser is tested in test_report_browser.py."""

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from latent_interp import collapse, compare, embed, encode, metrics, store
from latent_interp.report import ReportInputs, ReportSettings, build_report, context, embeddings, figures, page, tables
from latent_interp.report import finetune as finetune_section
from latent_interp.report import reconstruction
from latent_interp.settings import EmbedSettings, VaeRun
from conftest import ingest_folder


@pytest.fixture(scope="module")
def pretrained_only(frame_tree, micro_vae_dir, tmp_path_factory) -> ReportInputs:
    """train and val through ingest, encode, reconstruct, metrics, the collapse check and a PCA: no fine-tune and
    no latent study, so their sections are left out."""
    root = tmp_path_factory.mktemp("report")
    frames, recon, latents, tables_, splits = {}, {}, {}, {}, ("train", "val")
    for split in splits:
        frames[split] = root / f"frames-{split}.zarr"
        ingest_folder(frame_tree / split, frames[split], split, 32)
        latents[("pretrained", split)] = root / f"latents-{split}.zarr"
        encode.encode_split(frames=frames[split], latents=latents[("pretrained", split)], split=split,
                            vae_run=VaeRun(micro_vae_dir))
        recon[("pretrained", split)] = root / f"recon-{split}.zarr"
        encode.reconstruct_split(latents=latents[("pretrained", split)], recon=recon[("pretrained", split)],
                                 split=split, vae_run=VaeRun(micro_vae_dir))
        tables_[("pretrained", split)] = root / f"metrics-{split}.csv"
        metrics.compute_split_metrics(frames=frames[split], recon=recon[("pretrained", split)],
                                      outputs=metrics.MetricsOutputs(tables_[("pretrained", split)],
                                                                     root / "spec.json"),
                                      model="pretrained", split=split)
    metrics.summarize_tables(tables=list(tables_.values()), summary=root / "summary.csv", resamples=20)
    embed.embed_model(latents=[str(p) for p in latents.values()], model="pretrained", method="pca",
                      outputs=embed.EmbedOutputs(root / "pca.csv", root / "pca.png", root / "pca.json"),
                      settings=EmbedSettings())
    with open(frames["val"].with_suffix(".skipped.csv"), "a") as skipped:
        skipped.write("val,triplet,Japan_broken,/data/val/Japan_broken/frame2.jpg,unreadable image (truncated)\n")
    collapse.collapse_check(frames=frames["val"], recon=recon[("pretrained", "val")], figures=root / "collapse.json")
    return ReportInputs(config={"vaes": {"pretrained": "micro"}}, vaes={"pretrained": "micro"}, models=["pretrained"],
                        splits=list(splits),
                        frames=frames, skipped={s: p.with_suffix(".skipped.csv") for s, p in frames.items()},
                        recon=recon, latents=latents, metric_tables=tables_, metrics_summary=root / "summary.csv",
                        metrics_spec=root / "spec.json", collapse={"pretrained": root / "collapse.json"},
                        embeddings=[("pretrained", "pca", root / "pca.csv", root / "pca.json")],
                        settings=ReportSettings(grid_triplets_per_origin=1, gallery_rows=2, image_width=24))


def test_the_report_is_one_self_contained_page_with_its_figures_beside_it(pretrained_only, tmp_path):
    out = tmp_path / "results" / "report.html"
    out.parent.mkdir()
    build_report(out, tmp_path / "results" / "figures", pretrained_only)
    html = out.read_text()
    sections = re.findall(r'<section id="(\w+)">', html)
    assert sections == ["overview", "data", "reconstruction", "embeddings", "provenance"]  # no fine-tune, no study
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)  # the scripts' own strings are not requests
    assert not re.search(r"""(src|href)=["'](https?:)?//""", markup)  # nothing leaves the page
    assert not re.search(r"""<(img|script|link)[^>]+(src|href)=["'](?!data:)""", markup)  # all inline
    from plotly.offline import get_plotlyjs

    assert html.count(get_plotlyjs()) == 1 and html.count("<script>") == 2  # plotly.js inlined once, and the page's
    assert "Japan_broken/frame2.jpg" in html and "unreadable image (truncated)" in html
    verdict = json.loads(pretrained_only.collapse["pretrained"].read_text())["collapsed"]
    assert ("The pretrained model has collapsed" in html) == verdict
    overall = pd.read_csv(pretrained_only.metrics_summary).query("split == 'val' and origin == 'all'").iloc[0]
    assert f"{overall.psnr:.2f}" in html  # the headline and the table
    digest = store.open_store(pretrained_only.latents[("pretrained", "val")]).attrs["vae"]["sha256"]
    assert digest[:16] in html and f'title="{digest}"' in html and "micro" in html

    payload = page.read_payload(html)
    assert [r["key"] for r in payload["triplets"]] == [f"{s}/{n}" for s in ("train", "val") for n in
                                                       store.names(store.open_store(pretrained_only.frames[s]))]
    table = pd.read_csv(pretrained_only.metric_tables[("pretrained", "val")])
    first = payload["triplets"][4]  # the first val triplet
    expected = table[table["triplet"] == first["name"]].sort_values("frame")[["psnr", "ssim"]].to_numpy()
    shown = np.stack([expected[:, 0].round(2), expected[:, 1].round(4)], axis=1)  # PSNR to 0.01 dB, SSIM to 1e-4
    np.testing.assert_allclose(first["recon"]["pretrained"], shown, atol=1e-9)
    # Panels: the 2 worst reconstructed triplets of each split and the drawn trajectories; thumbnails: every plotted
    # frame (all 21)
    drawn = set(json.loads(pretrained_only.embeddings[0][3].read_text())["trajectories"])
    worst = set()
    for split in ("train", "val"):
        means = pd.read_csv(pretrained_only.metric_tables[("pretrained", split)]).groupby("triplet")["psnr"].mean()
        worst |= {f"{split}/{name}" for name in means.sort_values().index[:2]}
    assert set(payload["images"]) == drawn | worst and len(worst) == 4
    assert len(payload["thumbs"]) == 21
    uri = next(iter(payload["images"].values()))["frames"][0]
    assert base64.b64decode(uri.split(",", 1)[1])[:2] == b"\xff\xd8"  # a JPEG
    assert payload["embeddings"][0]["method"] == "pca" and len(payload["embeddings"][0]["x"]) == 21

    written = {p.name for p in (tmp_path / "results" / "figures").iterdir()}
    assert written == {f"{name}.{kind}" for name in ("reconstructions_train", "reconstructions_val",
                                                     "embedding_pretrained_pca") for kind in ("png", "svg")}
    assert 'href="figures/embedding_pretrained_pca.svg"' in html  # links relative to the report


def test_a_collapsed_model_is_named_and_flagged(tmp_path):
    check = {"split": "val", "variance_ratio": 0.001, "model_psnr_pooled": 14.0, "mean_image_psnr": 14.1,
             "psnr_gain_db": -0.1, "collapsed": True, "rule": "collapsed when variance_ratio < 0.1"}
    (tmp_path / "c.json").write_text(json.dumps(check))
    (tmp_path / "ok.json").write_text(json.dumps({**check, "variance_ratio": 0.9, "psnr_gain_db": 9.0,
                                                  "collapsed": False}))
    inputs = ReportInputs(config={}, models=["pretrained", "finetuned"], splits=[], frames={}, skipped={}, recon={},
                          latents={}, metric_tables={}, metrics_summary="", metrics_spec="",
                          collapse={"finetuned": tmp_path / "c.json", "pretrained": tmp_path / "ok.json"})
    table, collapsed, rule = reconstruction.health_table(context.Context(inputs, tmp_path / "f", tmp_path / "r.html"))
    assert collapsed == ["finetuned"] and rule == "when variance_ratio < 0.1"
    verdicts = [(row[0].text, row[-1].text, row[-1].tone) for row in table.rows]
    assert verdicts == [("finetuned", "COLLAPSED", "bad"), ("pretrained", "ok", "")]
    assert table.rows[0][5].text == "-0.10"


def test_finetune_section_shows_the_run_the_curves_and_the_differences(frame_tree, micro_vae_dir, tmp_path):
    from latent_interp import finetune

    stores = []
    for split in ("train", "val"):
        stores.append(tmp_path / f"{split}.zarr")
        ingest_folder(frame_tree / split, stores[-1], split, 32)
    finetune.finetune(inputs=finetune.FinetuneInputs(*stores[:2]), model_dir=tmp_path / "finetuned",
                      checkpoint=tmp_path / "last.pt",
                      base=VaeRun(micro_vae_dir, device="cpu"),
                      settings={"vae": "pretrained", "recipe": "default", "epochs": 1, "crop": None},
                      finetune="finetuned")
    rng = np.random.default_rng(0)
    rows = [dict(model=model, split="val", triplet=f"t{i // 3}", origin="Japan", frame=i % 3 + 1,
                 mse=0.001, psnr=30 + (2 if model == "finetuned" else 0) + rng.normal(0, 0.1), ssim=0.9)
            for model in ("pretrained", "finetuned", "other") for i in range(30)]
    # the fine-tune section shows its own pair only, not another VAE's comparison with the baseline
    metrics.compare_models(pd.DataFrame(rows), [("finetuned", "pretrained"), ("other", "pretrained")],
                           resamples=100).to_csv(tmp_path / "comparison.csv", index=False)
    # what compare writes: the fine-tune 1 dB better on latent_flow, 0.05 lower in equivariance error
    triplet_measures = [m for m, (_, _, unit) in compare.FINETUNE_MEASURES.items() if unit == "triplet"]
    per_triplet = {model: pd.DataFrame({"split": "val", "triplet": [f"t{i}" for i in range(20)],
                                        **{m: 30 + gain + rng.normal(0, 0.1, 20) for m in triplet_measures}})
                   for model, gain in (("pretrained", 0), ("finetuned", 1))}
    per_frame = {model: ("val", pd.DataFrame({"shift_error_1px": 0.2 - drop + rng.normal(0, 0.01, 8),
                                              "shift_error_subcell": 0.3 - drop + rng.normal(0, 0.01, 8),
                                              "shift_error_cell": 0.1 - drop + rng.normal(0, 0.01, 8),
                                              "moved_psnr_1px": 25 + 20 * drop + rng.normal(0, 0.1, 8)}), True)
                 for model, drop in (("pretrained", 0), ("finetuned", 0.05))}
    finetunes = {"finetuned": {"vae": "pretrained", "recipe": "default"}}
    compare.finetune_effects(per_triplet, per_frame, finetunes, 200, 0).to_csv(tmp_path / "effects.csv", index=False)
    inputs = ReportInputs(config={}, models=["pretrained", "finetuned"], splits=["val"], frames={}, skipped={},
                          recon={}, latents={}, metric_tables={}, metrics_summary="", metrics_spec="", collapse={},
                          comparison=tmp_path / "comparison.csv", finetune_effects=tmp_path / "effects.csv",
                          finetunes={"finetuned": {**finetunes["finetuned"], "dir": tmp_path / "finetuned"}})
    ctx = context.Context(inputs, tmp_path / "figures", tmp_path / "report.html")
    html = page.render_section(finetune_section.section(ctx))
    effects = html.split("<h3>")[0]  # the one table of every fine-tune's effects
    assert effects.count(">finetuned (default, from pretrained)<") == len(compare.FINETUNE_MEASURES)
    assert re.search(r'latent_flow PSNR \(frame 2\) \(dB, higher is better\).*?<td class="num good"', effects, re.S)
    cell = r'one-cell shift \(relative, lower is better\).*?<td class="num good" data-sort="-0\.0[3-6]'
    assert re.search(cell, effects, re.S)
    # the reading: what it was for first, with its interval
    assert re.search(r"<li>finetuned against pretrained on val: equivariance error, sub-cell shifts 0\.\d{4} -&gt; "
                     r"0\.\d{4} \(-0\.0[4-6]\d\d \[-0\.\d{4}, -0\.\d{4}\]\); reconstruction PSNR", html)
    assert "Recipe <b>default</b> (overrides: epochs=1, crop=None)" in html
    assert "2 steps of batch 8 on 12 train frames" in html
    assert re.search(r'<td class="num good" data-sort="2\.0\d*">\+2\.0', html)  # a gain wholly above zero, in green
    assert "pretrained and finetuned, image by image" in html and ">other<" not in html
    assert html.count("data:image/png;base64,") == 1 and "Validation by epoch" in html
    ctx.figures.close()  # the figures are drawn by worker processes
    assert (tmp_path / "figures" / "finetune_curves_finetuned.svg").stat().st_size > 1000


def test_a_left_out_section_needs_none_of_its_inputs(tmp_path):
    inputs = ReportInputs(config={}, models=[], splits=[], frames={}, skipped={}, recon={}, latents={},
                          metric_tables={}, metrics_summary="", metrics_spec="", collapse={})
    ctx = context.Context(inputs, tmp_path / "f", tmp_path / "r.html")
    assert finetune_section.section(ctx) is None and embeddings.section(ctx) is None


def test_numbers_carry_their_interval_sign_and_sort_value():
    cell = tables.number(1.23456, 2, 1.0, 1.5, signed=True)
    assert (cell.text, cell.sort, cell.numeric) == ("+1.23 [+1.00, +1.50]", 1.23456, True)
    assert tables.number(float("nan")).text == "n/a" and tables.number(None).sort is None
    assert tables.number(0.0042, 3, scale=1e3).text == "4.200"
    assert tables.difference_tone(0.1, 0.5) == "good" and tables.difference_tone(-0.5, -0.1) == "bad"
    assert tables.difference_tone(-0.1, 0.5) == "" and tables.difference_tone(0.1, 0.5, higher_is_better=False) == "bad"


def test_the_payload_cannot_close_its_script_element_and_has_no_nan():
    text = page.script_json({"name": "</script><script>alert(1)</script>",
                             "values": [float("nan"), np.float32(1.5), np.int64(3), float("inf")]})
    assert "</" not in text and json.loads(text) == {"name": "</script><script>alert(1)</script>",
                                                     "values": [None, 1.5, 3, None]}
    with pytest.raises(ValueError, match="not a latent-interp report"):
        page.read_payload("<html></html>")


def test_embeddings_plot_whole_triplets_and_keep_the_chosen_ones():
    table = pd.DataFrame({"split": "test", "triplet": [f"t{i // 3:03d}" for i in range(300)],
                          "frame": [i % 3 + 1 for i in range(300)]})
    chosen = embeddings.plotted_triplets(table, 30, keep={"test/t050", "test/t099"}, seed=0)
    assert len(chosen) == 10 and {"test/t050", "test/t099"} <= chosen
    assert chosen == embeddings.plotted_triplets(table, 30, keep={"test/t050", "test/t099"}, seed=0)
    assert len(embeddings.plotted_triplets(table, 300, keep=set(), seed=0)) == 100  # all fit: all plotted


def test_figures_are_written_as_png_and_svg_and_names_are_unique(tmp_path):
    import matplotlib.pyplot as plt

    writer = figures.FigureWriter(tmp_path / "results" / "figures", tmp_path / "results")
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0], label="a line")
    shown = writer.save(figure, "a/b c", "caption")
    assert (shown.png, shown.svg) == ("figures/a_b_c.png", "figures/a_b_c.svg")
    with pytest.raises(ValueError, match="two report figures"):
        writer.save(plt.figure(), "a/b c", "again")
    other = writer.save(plt.figure(), "other", "not embedded", embed=False)
    # worker processes draw both files; a figure's uri waits for its own, close for them all
    assert shown.uri.startswith("data:image/png;base64,") and (tmp_path / "results" / "figures" / "a_b_c.png").is_file()
    writer.close()
    svg = (tmp_path / "results" / "figures" / "a_b_c.svg").read_text()
    assert svg.rstrip().endswith("</svg>") and "<path" in svg
    assert other.uri == "" and (tmp_path / "results" / "figures" / "other.svg").is_file()


def test_images_are_shrunk_to_the_width_asked_never_enlarged():
    from io import BytesIO

    from PIL import Image

    image = np.zeros((64, 128, 3), np.uint8)
    small = Image.open(BytesIO(base64.b64decode(figures.jpeg_uri(image, 32).split(",", 1)[1])))
    large = Image.open(BytesIO(base64.b64decode(figures.jpeg_uri(image, 500).split(",", 1)[1])))
    assert small.size == (32, 16) and large.size == (128, 64)


def test_the_fields_table_sets_every_method_beside_the_published_rows(tmp_path):
    from latent_interp import interp
    from latent_interp.report import field

    rng = np.random.default_rng(0)
    names, methods = [f"t{i}" for i in range(6)], ["latent_lerp", "pixel_flow", "vae_ceiling"]
    table = pd.DataFrame([{
        "model": "vae-a", "split": "test", "triplet": name, "origin": "Japan", "method": method, "level": i % 3,
        "psnr": rng.uniform(20, 30), "ssim": rng.uniform(0.8, 0.9), "animeinterp_psnr": rng.uniform(20, 30),
        "animeinterp_ssim": rng.uniform(0.9, 1), "animeinterp_roi_psnr": rng.uniform(15, 25),
        "animeinterp_roi_ssim": rng.uniform(0.8, 0.9), "eisai_chamfer": rng.uniform(1e-5, 1e-4),
        "eisai_lpips": np.nan, "motion_px": np.nan} for i, name in enumerate(names) for method in methods])
    table.to_csv(tmp_path / "test.csv", index=False)
    summary = interp.summarize_interp(tables=[tmp_path / "test.csv"], summary=tmp_path / "summary.csv", resamples=10)
    shown = field.field_table(summary, "test", "128 x 128 (squash)")
    assert shown.columns[:4] == ["model", "method", "rows", "PSNR dB ↑"]
    assert {"easy PSNR", "medium SSIM", "hard PSNR", "LPIPS ↓", "chamfer ↓"} <= set(shown.columns)
    run_rows = [row for row in shown.rows if row[2].text.startswith("this run")]
    published = [row for row in shown.rows if row[0].text == "published, not rerun here"]
    assert [row[1].text for row in run_rows] == ["pixel_flow", "latent_lerp", "vae_ceiling †"]  # METHODS' order
    assert len(published) == len(field.PUBLISHED) and all("readme.md" in row[0].title for row in published)
    psnr = shown.columns.index("PSNR dB ↑")
    lerp = summary[(summary["method"] == "latent_lerp") & (summary["level"] == "all") & (summary["origin"] == "all")]
    assert run_rows[1][psnr].sort == pytest.approx(lerp["animeinterp_psnr"].item())
    assert published[0][psnr].text == "29.29" and published[0][shown.columns.index("chamfer ↓")].text == "4.3505e-05"
    assert run_rows[1][shown.columns.index("LPIPS ↓")].text == ""  # not computed here: empty, never 0
    assert "128 x 128 (squash)" in shown.caption and "960 x 540" in shown.caption
    standard_only = summary.drop(columns=[c for c in summary if c.startswith(("animeinterp", "eisai"))])
    assert field.field_table(standard_only, "test", "") is None
