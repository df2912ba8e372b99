"""``results/report.html``: one self-contained page (images embedded) with the run's config, provenance, metric
summaries, original-vs-reconstruction grids and embedding plots."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from latent_interp import store  # noqa: E402

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f0f0f0; } td.text { text-align: left; }
pre { background: #f7f7f7; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }
img { max-width: 100%; } figure { margin: 1rem 0; } figcaption { font-size: 0.85rem; color: #555; }
"""


def _png_data_uri(figure_or_path) -> str:
    if isinstance(figure_or_path, (str, Path)):
        payload = Path(figure_or_path).read_bytes()
    else:
        buffer = io.BytesIO()
        figure_or_path.savefig(buffer, format="png", dpi=100)
        plt.close(figure_or_path)
        payload = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(payload).decode()


def figure_html(figure, caption: str) -> str:
    """A matplotlib figure embedded as a PNG, with its caption."""
    return (f"<figure><img src='{_png_data_uri(figure)}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def pick_grid_triplets(names: list[str], origins: list[str], per_origin: int) -> list[int]:
    """Indices of the first ``per_origin`` triplets of each origin, by name: the same picks every run."""
    picked = []
    for origin in sorted(set(origins)):
        indices = sorted((i for i, o in enumerate(origins) if o == origin), key=lambda i: names[i])
        picked += indices[:per_origin]
    return picked


def recon_grid(frames_path, recon_paths: dict[str, str], metric_tables: dict[str, pd.DataFrame], split: str,
               per_origin: int):
    """A figure: per picked triplet, a row of originals and a row of reconstructions per model."""
    frames_group = store.open_store(frames_path, "frames")
    names, origins = store.names(frames_group), store.origins(frames_group)
    picks = pick_grid_triplets(names, origins, per_origin)
    recon_frames = {model: store.open_store(path, "recon")[store.FRAMES] for model, path in recon_paths.items()}
    rows = []  # (triplet index, "original" or model name, uint8 [3, H, W, 3]): one strip of three frames each
    for index in picks:
        rows.append((index, "original", frames_group[store.FRAMES][index]))
        rows += [(index, model, frames[index]) for model, frames in recon_frames.items()]
    figure, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows)), squeeze=False, layout="constrained")
    for row, (index, label, images) in enumerate(rows):
        for frame in range(3):
            axis = axes[row, frame]
            axis.imshow(images[frame])
            axis.set_xticks([])
            axis.set_yticks([])
            title = f"{label} frame{frame + 1}"
            if label != "original":
                scores = metric_tables[label].query("triplet == @names[@index] and frame == @frame + 1").iloc[0]
                title += f"\n{scores.psnr:.1f} dB, SSIM {scores.ssim:.3f}"
            axis.set_title(title, fontsize=8)
        axes[row, 0].set_ylabel(f"{names[index]}\n({origins[index]})", fontsize=7)
    figure.suptitle(f"{split}: originals and reconstructions", fontsize=10)
    return figure


def _fmt(value, digits: int) -> str:
    return "n/a" if pd.isna(value) else f"{value:.{digits}f}"


def summary_table_html(summary: pd.DataFrame) -> str:
    """The metric summary as an HTML table: mean ± std [95% CI] per model, split and origin."""
    with_roi = summary["roi_psnr"].notna().any()
    header = ("<tr><th>model</th><th>split</th><th>origin</th><th>level</th><th>triplets</th><th>images</th>"
              "<th>MSE</th><th>PSNR dB (mean of images)</th><th>PSNR dB (pooled MSE)</th><th>SSIM</th>"
              + ("<th>RoI PSNR dB</th><th>RoI SSIM</th>" if with_roi else "") + "</tr>")
    body = []
    for row in summary.itertuples():
        roi = f"<td>{_fmt(row.roi_psnr, 2)}</td><td>{_fmt(row.roi_ssim, 4)}</td>" if with_roi else ""
        body.append(
            f"<tr><td class=text>{html.escape(row.model)}</td><td class=text>{html.escape(row.split)}</td>"
            f"<td class=text>{html.escape(row.origin)}</td><td class=text>{html.escape(str(row.level))}</td>"
            f"<td>{row.n_triplets}</td><td>{row.n_images}</td>"
            f"<td>{_fmt(row.mse, 5)} ± {_fmt(row.mse_std, 5)}</td>"
            f"<td>{_fmt(row.psnr, 2)} ± {_fmt(row.psnr_std, 2)} [{_fmt(row.psnr_ci_low, 2)}, "
            f"{_fmt(row.psnr_ci_high, 2)}]</td>"
            f"<td>{_fmt(row.psnr_pooled, 2)} [{_fmt(row.psnr_pooled_ci_low, 2)}, {_fmt(row.psnr_pooled_ci_high, 2)}]</td>"
            f"<td>{_fmt(row.ssim, 4)} ± {_fmt(row.ssim_std, 4)} [{_fmt(row.ssim_ci_low, 4)}, "
            f"{_fmt(row.ssim_ci_high, 4)}]</td>{roi}</tr>")
    return f"<table>{header}{''.join(body)}</table>"


def data_section(frames_paths: dict[str, str], skipped_paths: dict[str, str]) -> str:
    """Counts per split (found = ingested + skipped) and every skipped triplet or stray file, with its reason."""
    rows, listed = [], []
    for split, path in frames_paths.items():
        counts = store.open_store(path, "frames").attrs.get("counts", {})
        rows.append(f"<tr><td class=text>{html.escape(split)}</td><td>{counts.get('found', 'n/a')}</td>"
                    f"<td>{counts.get('ingested', 'n/a')}</td><td>{counts.get('skipped', 'n/a')}</td>"
                    f"<td>{counts.get('stray_files', 'n/a')}</td></tr>")
        skipped = pd.read_csv(skipped_paths[split], keep_default_na=False)
        for row in skipped.itertuples(index=False):  # columns: split, what, triplet, path, reason
            listed.append("<tr>" + "".join(f"<td class=text>{html.escape(str(v))}</td>" for v in row) + "</tr>")
    section = ("<h2>Data</h2><table><tr><th>split</th><th>triplets found</th><th>ingested</th><th>skipped</th>"
               f"<th>stray files</th></tr>{''.join(rows)}</table>")
    if listed:
        section += ("<h3>Skipped triplets and stray files</h3><table><tr><th>split</th><th>what</th><th>triplet</th>"
                    f"<th>path</th><th>reason</th></tr>{''.join(listed)}</table>")
    return section


def collapse_section(collapse_paths: dict[str, str]) -> str:
    """Per model: does its reconstruction depend on the input? Said in plain words, figures beside."""
    rows, verdicts, rule = [], [], ""
    for model, path in collapse_paths.items():
        check = json.loads(Path(path).read_text())
        rule = check["rule"]  # the same for every model
        rows.append(f"<tr><td class=text>{html.escape(model)}</td><td class=text>{html.escape(check['split'])}</td>"
                    f"<td>{check['variance_ratio']:.3f}</td>"
                    f"<td>{check['model_psnr_pooled']:.2f}</td><td>{check['mean_image_psnr']:.2f}</td>"
                    f"<td>{check['psnr_gain_db']:+.2f}</td><td class=text>"
                    f"{'COLLAPSED' if check['collapsed'] else 'ok'}</td></tr>")
        if check["collapsed"]:
            verdicts.append(f"<p style='color:#b00020'><b>The {html.escape(model)} model has collapsed:</b> its "
                            "reconstructions barely depend on the input (every frame comes out near the same "
                            "average image). Its metrics and latents below describe a broken model.</p>")
    return ("<h2>Model health</h2>" + "".join(verdicts) +
            "<table><tr><th>model</th><th>split</th><th>variance ratio (recon / input)</th><th>PSNR dB (pooled)</th>"
            "<th>mean-image PSNR dB</th><th>gain dB</th><th>verdict</th></tr>" + "".join(rows) + "</table>"
            f"<p>A model is flagged {html.escape(rule.replace('collapsed when ', 'when '))}. The mean-image PSNR "
            "is what predicting the split's average frame for every frame scores: a model no better than that has "
            "learned nothing.</p>")


def _signed(value, digits: int, ci_low, ci_high) -> str:
    """A difference with its interval, green when the whole interval is above zero, red when below."""
    colour = "#1b7f3b" if ci_low > 0 else "#b00020" if ci_high < 0 else "#222"
    return (f"<td style='color:{colour}'>{value:+.{digits}f} [{ci_low:+.{digits}f}, {ci_high:+.{digits}f}]</td>")


def comparison_table_html(comparison: pd.DataFrame) -> str:
    """Each model beside the pretrained one, per split: both means and the paired difference with its 95% CI."""
    header = ("<tr><th>model</th><th>split</th><th>images</th><th>PSNR dB pretrained</th><th>PSNR dB model</th>"
              "<th>Δ PSNR dB [95% CI]</th><th>SSIM pretrained</th><th>SSIM model</th><th>Δ SSIM [95% CI]</th>"
              "<th>images with higher PSNR</th></tr>")
    body = [f"<tr><td class=text>{html.escape(row.model)}</td><td class=text>{html.escape(row.split)}</td>"
            f"<td>{row.n_images}</td><td>{row.psnr_baseline:.2f}</td><td>{row.psnr:.2f}</td>"
            f"{_signed(row.psnr_diff, 2, row.psnr_diff_ci_low, row.psnr_diff_ci_high)}"
            f"<td>{row.ssim_baseline:.4f}</td><td>{row.ssim:.4f}</td>"
            f"{_signed(row.ssim_diff, 4, row.ssim_diff_ci_low, row.ssim_diff_ci_high)}"
            f"<td>{row.psnr_improved_share:.0%}</td></tr>" for row in comparison.itertuples()]
    return f"<table>{header}{''.join(body)}</table>"


def finetune_section(finetune_dir, comparison_path) -> str:
    """How the fine-tune ran (recipe, overrides, steps, resumes), its curves, and the pretrained-vs-finetuned table."""
    record = json.loads((Path(finetune_dir) / "finetune.json").read_text())
    epochs = pd.read_csv(Path(finetune_dir) / "training_epochs.csv")
    comparison = pd.read_csv(comparison_path)
    settings = record["provenance"]["settings"]
    before, after = record["pretrained_val"], record["final_val"]
    overrides = ", ".join(f"{k}={v}" for k, v in record["overrides"].items()) or "none"
    section = (f"<h2>Fine-tune</h2><p>Recipe <b>{html.escape(record['recipe'])}</b> (overrides: "
               f"{html.escape(overrides)}): {record['steps']} steps of batch {settings['batch_size']} on "
               f"{record['data']['train_frames']} train frames, trainable: {html.escape(settings['trainable'])}, "
               f"KL weight {settings['kl_weight']:g} ({html.escape(settings['kl_normalization'])}), "
               f"{html.escape(settings['optimizer'])} lr {settings['lr']:g}, saved weights: "
               f"{html.escape(record['saved_weights'])}, device {html.escape(settings['device'])}.")
    if record["resumed_at_steps"]:
        section += f" Resumed from checkpoints at steps {record['resumed_at_steps']}."
    if settings["trainable"] == "decoder":
        section += (" Only the decoder was trained, so the finetuned latents, and their embeddings, are the "
                    "pretrained ones.")
    section += (f"</p><p>On val ({record['data']['val_frames']} frames) while training: PSNR {before['val_psnr']:.2f} "
                f"→ {after['val_psnr']:.2f} dB, SSIM {before['val_ssim']:.4f} → {after['val_ssim']:.4f}.</p>")
    if len(comparison):
        section += ("<h3>Pretrained and fine-tuned, image by image</h3>" + comparison_table_html(comparison) +
                    "<p>Δ is fine-tuned minus pretrained on the same images; green or red where the 95% bootstrap "
                    "interval over triplets lies wholly above or below zero.</p>")
    section += (f"<figure><img src='{_png_data_uri(Path(finetune_dir) / 'loss_curve.png')}' alt='training curves'>"
                "<figcaption>Training loss terms per step (log scale) and val PSNR per epoch; the dotted line is "
                "what the split's mean image scores.</figcaption></figure>")
    columns = ["epoch", "step", "val_psnr", "val_ssim", "val_variance_ratio", "val_psnr_gain_db", "val_collapsed"]
    section += "<h3>Validation by epoch</h3>" + epochs[columns].to_html(index=False, float_format="%.4g", border=0)
    return section


def build_report(out_path, config: dict, summary_path, metric_tables: dict[tuple[str, str], str],
                 spec_path, frames_paths: dict[str, str], recon_paths: dict[tuple[str, str], str],
                 latents_paths: dict[tuple[str, str], str], embedding_plots: list[tuple[str, str, str, str]],
                 skipped_paths: dict[str, str], collapse_paths: dict[str, str], per_origin: int = 2,
                 comparison_path=None, finetune_dir=None, study: dict | None = None) -> None:
    """Write the report. Keys of the path dicts are split or (model, split); embedding_plots holds
    (model, method, png path, settings json path); the fine-tune section needs ``finetune_dir`` and
    ``comparison_path``. ``study`` holds the latent study's inputs (``interp_summary``, ``interp_stores`` by (model,
    split), ``predictor_dirs`` and ``geometry`` (its output paths by name) by latent space, ``twins`` and
    ``twin_records`` by model, ``lpips_skipped``, ``gallery_limit``); without it those sections are left out."""
    from latent_interp import report_study  # it draws with this module's helpers, so it is imported here

    summary = pd.read_csv(summary_path, keep_default_na=False, na_values=[""])
    tables = {key: pd.read_csv(path) for key, path in metric_tables.items()}
    models = sorted({model for model, _ in recon_paths})
    sections = [f"<h1>latent-interp report</h1><p>Models: {', '.join(html.escape(m) for m in models)}; splits: "
                f"{', '.join(html.escape(s) for s in frames_paths)}.</p>"]

    sections.append(data_section(frames_paths, skipped_paths))
    sections.append(collapse_section(collapse_paths))
    if finetune_dir is not None:
        sections.append(finetune_section(finetune_dir, comparison_path))
    sections.append("<h2>Reconstruction metrics</h2>" + summary_table_html(summary) +
                    "<p>Mean ± standard deviation over images, with a 95% bootstrap confidence interval over "
                    "triplets in brackets. 'Pooled MSE' is the PSNR of the mean MSE of the group.</p>")
    sections.append("<h3>How the metrics were computed</h3><pre>" +
                    html.escape(json.dumps(json.loads(Path(spec_path).read_text()), indent=2)) + "</pre>")

    sections.append("<h2>Originals and reconstructions</h2>")
    for split, frames_path in frames_paths.items():
        split_recon = {model: recon_paths[(model, split)] for model in models}
        split_tables = {model: tables[(model, split)] for model in models}
        if not store.names(store.open_store(frames_path, "frames")):
            sections.append(f"<p>{html.escape(split)}: no triplets were ingested (see Data above).</p>")
            continue
        figure = recon_grid(frames_path, split_recon, split_tables, split, per_origin)
        sections.append(f"<figure><img src='{_png_data_uri(figure)}' alt='{html.escape(split)} reconstructions'>"
                        f"<figcaption>{html.escape(split)}: the first {per_origin} triplets of each origin, "
                        "by name; reconstructions decode the posterior mean.</figcaption></figure>")

    if study is not None:
        sections.append(report_study.interpolation_section(
            study["interp_summary"], study["interp_stores"], frames_paths, study["predictor_dirs"],
            study["lpips_skipped"], study["gallery_limit"]))
        sections.append(report_study.geometry_section(study["geometry"], study["twins"], study["twin_records"]))

    sections.append("<h2>Latent embeddings</h2>")
    for model, twin in (study or {}).get("twins", {}).items():
        sections.append(f"<p>{html.escape(model)} shares {html.escape(twin)}'s latents: embedded once, under "
                        f"{html.escape(twin)}.</p>")
    for model, method, png_path, json_path in embedding_plots:
        settings = json.loads(Path(json_path).read_text())
        closeness = settings["triplet_closeness"]
        verdict = ("the map is organised by content more than by frame position" if closeness >= 2
                   else "frames of a triplet are not kept together")
        caption = (f"{method.upper()} of {model} latents: {settings['points_embedded']} of "
                   f"{settings['points_total']} frames; settings {json.dumps(settings['settings'])}. Reading: a "
                   f"triplet's three frames lie {closeness:.1f}x closer to each other than two random frames, so "
                   f"{verdict}.")
        sections.append(f"<figure><img src='{_png_data_uri(png_path)}' alt='{html.escape(method)}'>"
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    sections.append("<h2>Provenance</h2>")
    for (model, split), path in sorted(latents_paths.items()):
        attrs = store.open_store(path, "latents").attrs
        record = {"vae": {k: v for k, v in attrs["vae"].items() if k != "config"},
                  "preprocess": attrs["preprocess"], "provenance": attrs["provenance"]}
        sections.append(f"<h3>{html.escape(model)} / {html.escape(split)} latents</h3><pre>"
                        f"{html.escape(json.dumps(record, indent=2))}</pre>")
    sections.append("<h2>Run configuration</h2><pre>" + html.escape(yaml.safe_dump(config, sort_keys=False)) + "</pre>")

    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>latent-interp report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
    Path(out_path).write_text(page)
