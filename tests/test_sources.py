"""Each rule lists the package files its script runs: those, and only those, rerun it when they change."""

from pathlib import Path

from latent_interp.sources import script_sources
from conftest import REPO

SCRIPTS = REPO / "workflow" / "scripts"


def _modules(script):
    return {path.split("latent_interp/", 1)[1] for path in script_sources(SCRIPTS / f"{script}.py")}


def test_a_stage_lists_its_modules_and_what_they_import():
    encode = _modules("encode")
    assert {"__init__.py", "encode.py", "store.py", "vae.py", "weights.py", "data.py", "atomic.py"} <= encode
    assert "configs/kl-f8/config.json" in encode  # data that weights.py reads (through vae.py)
    assert not {"metrics.py", "interp.py", "embed.py"} & encode
    # the stage's module, what it imports, and the adapter every script calls (rule.py, which stages the outputs)
    assert _modules("metrics") == {"__init__.py", "metrics.py", "schema.py", "store.py", "atomic.py", "rule.py"}


def test_a_package_with_relative_imports_is_followed_with_its_templates():
    report = _modules("report")
    assert {"report/__init__.py", "report/page.py", "report/embeddings.py", "report/templates/report.js",
            "report/templates/sections/geometry.html.j2"} <= report


def test_every_script_lists_files_that_exist():
    for script in SCRIPTS.glob("*.py"):
        files = script_sources(script)
        assert files and all(Path(path).is_file() for path in files), script
