"""The config schema is the one source of every key's type, default and description: docs/configuration.md is
generated from it, its defaults are what the resolved config and the stages take, and they are those Snakemake's own
validation fills in."""

import copy
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate

from latent_interp import flow, geometry, predictors, runconfig, schema, video
from conftest import REPO


def keys_of(node, path=""):
    """Every dotted key the schema defines, with its node."""
    branch = schema.object_branch(node) or node
    for key, sub in branch.get("properties", {}).items():
        dotted = f"{path}.{key}" if path else key
        yield dotted, sub
        yield from keys_of(sub, dotted)
    entries = branch.get("additionalProperties")
    if isinstance(entries, dict) and path:
        yield f"{path}.<entry>", entries
        yield from keys_of(entries, f"{path}.<entry>")


def test_every_key_has_a_description():
    missing = [key for key, node in keys_of(schema.load()) if not node.get("description", "").strip()]
    assert not missing, f"schema keys without a description: {missing}"


@pytest.mark.readme("python tools/config_reference.py")
def test_the_configuration_page_is_generated_from_the_schema_and_current(tmp_path):
    page = (REPO / "docs" / "configuration.md").read_text()
    assert page == schema.reference(), "docs/configuration.md is stale: run python tools/config_reference.py"
    for key, node in keys_of(schema.load()):
        shown = key.replace("<entry>", "<name>" if key.split(".")[0] in ("vaes", "finetunes") else "<split>")
        assert (f"| `{shown}` |" if "." in key else f"## `{shown}`") in page, f"{shown} is not on the page"
    assert "| `vae.device` | string | `auto` |" in page and "| `data.shard_size` | integer or null | `null` |" in page
    check = subprocess.run([sys.executable, str(REPO / "tools" / "config_reference.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_defaults_are_filled_as_snakemakes_validation_fills_them():
    """The demo with every optional key removed: the schema's fill and Snakemake's agree, key for key."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    bare = copy.deepcopy(config)
    for section in ("vae", "metrics", "geometry", "embed", "report", "flow"):
        bare[section] = {}
    bare.pop("compare")
    by_snakemake = copy.deepcopy(bare)
    validate(by_snakemake, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert schema.fill_defaults(copy.deepcopy(bare)) == by_snakemake
    assert by_snakemake["vae"] == {"device": "auto", "batch_size": 16, "compile": "auto"}
    assert by_snakemake["finetunes"]["tiny-kl-finetuned"]["checkpoint_every"] == 50


def test_the_resolved_config_holds_every_default_of_a_present_section():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["vae"], config["interp"]["mlp"] = {}, {"hidden": 8}
    run = runconfig.resolve(config)
    assert run.config["vae"]["device"] == "auto" and run.config["compare"]["bootstrap_resamples"] == 1000
    assert run.config["interp"]["mlp"] == {**predictors.DEFAULTS["mlp"], "hidden": 8}


def test_the_stages_take_their_defaults_from_the_schema():
    assert video.DEFAULTS["held"] == {"noise": 12, "threshold": 0.001} and video.DEFAULTS["cuts"]["min_scene_len"] == 15
    assert predictors.DEFAULTS["linear"]["patch"] == 3 and flow.DEFAULTS["preset"] == "medium"
    assert geometry.DEFAULTS == {"kmeans_k": 8, "pca_components": 50, "histogram_bins": 60,
                                 "probe_max_points": 20000, "seed": 0}
    assert schema.defaults("data.video") == video.DEFAULTS


def test_a_dotted_key_names_its_node():
    assert schema.section("vaes.<name>.dtype")["default"] == "auto"
    assert schema.section("finetunes.<name>.recipe")["enum"] == ["default", "seed", "equivariant", "antialias"]
    with pytest.raises(KeyError):
        schema.section("vae.no_such_key")
