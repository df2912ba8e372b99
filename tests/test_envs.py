"""The conda environment for --sdm conda users pins exactly what requirements.txt pins."""

import re

import pytest
import yaml

from conftest import REPO


def _pins(lines):
    return dict(re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line.strip()).groups() for line in lines
                if re.match(r"^[A-Za-z0-9_.-]+==", line.strip()))


# conda itself is not on this machine or CI's (no conda channel is reachable), so `--sdm conda` cannot run here: what
# it relies on is checked instead, the environment file every rule names and its pins.
@pytest.mark.readme("snakemake --cores 8 --sdm conda")
def test_conda_env_matches_requirements():
    requirements = _pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs" / "latent-interp.yaml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert requirements and _pins(pip_section) == requirements


def test_every_rule_names_the_env():
    rule_files = list((REPO / "workflow" / "rules").glob("*.smk"))
    for path in rule_files:
        text = path.read_text()
        assert text.count("conda:") == len(re.findall(r"^\s*rule\b", text, flags=re.M)), path
