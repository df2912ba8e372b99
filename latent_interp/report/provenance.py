"""Provenance, once and compact: the models, the data, the settings and the library versions in tables, and the
full records (config, metric spec, every store's attributes) folded away."""

from __future__ import annotations

import json
from importlib import metadata

import yaml

from latent_interp import store
from latent_interp.report import tables
from latent_interp.report.context import Context
from latent_interp.report.page import Section


def section(ctx: Context) -> Section:
    inputs = ctx.inputs
    models = tables.Table(["model", "source", "form", "family", "latent (C, factor)", "sha256", "scaling factor",
                           "shift factor", "latents of"])
    records = {}
    for model in inputs.models:
        split = inputs.splits[0]
        decoder = dict(store.open_store(inputs.recon[(model, split)], "recon").attrs["vae"])
        digest = decoder.get("sha256") or ""
        family = decoder.get("family", "AutoencoderKL") + (
            ", deterministic" if decoder.get("posterior") == "deterministic" else "")
        models.rows.append([tables.text(model), tables.text(decoder["source"]), tables.text(decoder["format"]),
                            tables.text(family),
                            tables.text(f"{decoder.get('latent_channels', '?')}, {decoder.get('downsampling', '?')}x"),
                            tables.Cell(digest[:16] + ("…" if digest else "unknown (hub)"), digest, numeric=False,
                                        title=digest),
                            tables.number(decoder["scaling_factor"], 5),
                            tables.number(decoder.get("shift_factor", 0.0), 4),
                            tables.text(inputs.twins.get(model, model))])
    latents = {key: store.open_store(path, "latents").attrs for key, path in inputs.latents.items()}
    first = next(iter(latents.values()))
    data = tables.Table(["split", "triplets", "frames store", "preprocess"])
    for split in inputs.splits:
        preprocess = store.open_store(inputs.frames[split], "frames").attrs.get("preprocess", {})
        data.rows.append([tables.text(split), tables.Cell(str(len(ctx.triplet_names[split])),
                                                          len(ctx.triplet_names[split])),
                          tables.text(inputs.frames[split]), tables.text(json.dumps(preprocess))])
    runs = _vae_runs(latents, {key: store.open_store(path, "recon").attrs for key, path in inputs.recon.items()},
                     {key: store.open_store(path, "interp").attrs for key, path in inputs.interp_stores.items()})
    versions = first["provenance"]["versions"]  # those the latents were made with
    library = tables.Table(["package", "version", "used for"],
                           [[tables.text(k), tables.text(v), tables.text("the results")] for k, v in versions.items()]
                           + [[tables.text(k), tables.text(metadata.version(k)), tables.text("this page")]
                              for k in ("jinja2", "plotly")])
    for (model, split), attrs in sorted(latents.items()):
        records[f"latents {model} / {split}"] = {
            "vae": {k: v for k, v in attrs["vae"].items() if k != "config"},
            "preprocess": attrs["preprocess"], "provenance": attrs["provenance"]}
    records["metrics spec"] = ctx.read_json(inputs.metrics_spec)
    for (model, split), path in sorted(inputs.interp_stores.items()):
        attrs = store.open_store(path, "interp").attrs
        records[f"interpolation {model} / {split}"] = {k: attrs[k] for k in ("predictors", "provenance") if k in attrs}
    for model, method, _, settings_path in inputs.embeddings:
        records[f"embedding {model} / {method}"] = ctx.read_json(settings_path)
    return Section("provenance", "Provenance", "provenance.html.j2", {
        "models": models, "data": data, "library": library, "runs": runs,
        "records": {name: json.dumps(record, indent=2, default=str) for name, record in records.items()},
        "config": yaml.safe_dump(inputs.config, sort_keys=False)})


def _vae_runs(latents: dict, recons: dict, interps: dict) -> tables.Table:
    """How each VAE job ran: device, autocast, compiled modules, batch size, and the half-precision batches the
    non-finite guard computed again in float32 (``encode.NonFiniteGuard``; "n/a" for stores made before it)."""
    table = tables.Table(["stage", "model", "split", "device", "autocast", "compiled", "batch size",
                          "batches recomputed in float32"])
    for stage, stores in (("encode", latents), ("reconstruct", recons), ("interp", interps)):
        for (model, split), attrs in sorted(stores.items()):
            settings = attrs["provenance"]["settings"]
            compiled = settings.get("compile", {})
            guard = attrs.get("non_finite")
            recomputed = (f"{guard['batches_recomputed_float32']} ({guard['frames_recomputed_float32']} frames)"
                          if guard else "n/a")
            table.rows.append([tables.text(stage), tables.text(model), tables.text(split),
                               tables.text(settings.get("device", "")),
                               tables.text(settings.get("autocast", "n/a")),
                               tables.text(", ".join(compiled.get("modules", [])) or "no"),
                               tables.text(str(settings.get("batch_size", ""))), tables.text(recomputed)])
    return table
