"""The config schema, ``workflow/schemas/config.schema.yaml``: the one place each key's type, default and
description live. The workflow validates every config against it; ``fill_defaults`` puts its defaults into the
resolved config (``runconfig.resolve``), where every reader takes them; ``defaults`` gives a section's defaults to
a stage called without a config (a test, a benchmark); ``reference`` writes ``docs/configuration.md``.

Torch-free: every Snakemake process imports it.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


@functools.cache
def _load() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load() -> dict:
    """The schema as a mapping (a copy: callers may change it)."""
    return copy.deepcopy(_load())


def object_branch(node: dict) -> dict | None:
    """The object form of a node: the node itself, or its ``oneOf`` branch that is an object (a VAE entry may be a
    source or a mapping)."""
    if "properties" in node:
        return node
    return next((branch for branch in node.get("oneOf", []) if "properties" in branch), None)


def section(path: str) -> dict:
    """The schema node of a dotted key (``interp.mlp``); ``<name>`` steps into a mapping's entries."""
    node = _load()
    for step in path.split(".") if path else []:
        branch = object_branch(node) or {}
        node = node["additionalProperties"] if step.startswith("<") else branch["properties"][step]
    return node


def fill_defaults(config: dict, node: dict | None = None) -> dict:
    """Put the schema's defaults into ``config`` in place (and return it): a key left out gets its default, and a
    present section (or mapping entry) gets its own keys' defaults, as Snakemake's ``validate`` does."""
    node = node or _load()
    branch = object_branch(node) or node  # a mapping of names (finetunes) has entries but no properties
    if not isinstance(config, dict):
        return config
    for key, sub in branch.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict):
            fill_defaults(config[key], sub)
    entries = branch.get("additionalProperties")
    if isinstance(entries, dict) and object_branch(entries) is not None:
        for key, value in config.items():
            if key not in branch.get("properties", {}) and isinstance(value, dict):
                fill_defaults(value, entries)
    return config


def defaults(path: str) -> dict:
    """Every default of a section, its subsections' too (``defaults("data.video")``): what a stage assumes when it
    is called without a config."""
    def collect(node: dict) -> dict:
        values = {}
        for key, sub in object_branch(node)["properties"].items():
            if "default" in sub:
                values[key] = copy.deepcopy(sub["default"])
            elif "properties" in sub:  # a section of fixed keys (not a mapping of names)
                values[key] = collect(sub)
        return values

    return collect(section(path))


def _kind(node: dict) -> str:
    """A node's type in a few words: ``enum`` values, ``integer``, ``integer or auto``, ..."""
    if "enum" in node:
        return " / ".join(json.dumps(value) if not isinstance(value, str) else value for value in node["enum"])
    if "const" in node:
        return str(node["const"])
    if "oneOf" in node:
        return " or ".join(_kind(branch) for branch in node["oneOf"])
    kind = node.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    words = []
    for name in kinds:
        if name == "array" and "items" in node:
            words.append(f"list of {_kind(node['items'])}")
        elif name == "object" and isinstance(node.get("additionalProperties"), dict) and "properties" not in node:
            words.append("mapping")
        else:
            words.append(name)
    return " or ".join(words)


def _default(node: dict) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(node: dict, path: str, rows: list) -> None:
    branch = object_branch(node) or node
    for key, sub in branch.get("properties", {}).items():
        dotted = f"{path}.{key}" if path else key
        rows.append((dotted, sub))
        _rows(sub, dotted, rows)
    entries = branch.get("additionalProperties")
    if isinstance(entries, dict) and path:
        placeholder = "<name>" if path in ("vaes", "finetunes") else "<split>"
        dotted = f"{path}.{placeholder}"
        rows.append((dotted, entries))
        _rows(entries, dotted, rows)


def reference() -> str:
    """``docs/configuration.md``: a table per top-level section, every key with its type, default and description."""
    schema = _load()
    required = set(schema.get("required", []))
    lines = [
        "# Configuration: every key",
        "",
        "Every key of the config, with its type, its default and what it does. `config.yaml` is the embedded demo; a",
        "config given with `--configfile` goes over it key by key, and `null` leaves out an entry of a mapping",
        "(`vaes`, `finetunes`). Every config is checked against `workflow/schemas/config.schema.yaml` before any job",
        "runs: an unknown key (a typo) or a wrong type fails, naming the key.",
        "",
        "This page is generated from that schema by `python tools/config_reference.py`; edit the schema's",
        "`description` and `default`, not this page (a test fails when it is stale).",
        "",
    ]
    for top, node in schema["properties"].items():
        lines += [f"## `{top}`", "", _cell(node.get("description", "")) + (" Required." if top in required else ""),
                  ""]
        rows = []
        _rows(node, top, rows)
        if rows:
            lines += ["| key | type | default | what it does |", "| --- | --- | --- | --- |"]
            lines += [f"| `{key}` | {_cell(_kind(sub))} | {_cell(_default(sub))} | "
                      f"{_cell(sub.get('description', ''))} |"
                      for key, sub in rows]
            lines.append("")
        else:
            lines += [f"Type: {_cell(_kind(node))}.", ""]
    return "\n".join(lines)
