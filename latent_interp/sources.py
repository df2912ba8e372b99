"""Which files of this package a rule's script runs, so that each rule lists them as inputs (``code=``).

Snakemake reruns a ``script:`` rule when its script changes, but the logic lives in this package, which the script
only imports. ``script_sources`` follows the imports of ``latent_interp`` modules from the script (and the module of
the stage it names for ``latent_interp.rule.run_stage``), transitively, and returns their files plus the data files
they read (the report's templates, the kl-f8 config). Snakemake compares
inputs this small by checksum, so a stage reruns when the content of one of its modules changes, and a change to a
module it never imports (or a touch) reruns nothing.

Found by reading the source (``ast``), not by importing it: the Snakefile stays free of torch.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

PACKAGE = "latent_interp"
STAGE = re.compile(rf"^{PACKAGE}(\.\w+)*:\w+$")  # "module:function", the stage a script's run_stage calls
PACKAGE_DIR = Path(__file__).resolve().parent
# Files a module reads at run time besides Python code (folders are listed file by file).
# (schema reads the config schema, but a stage's settings reach it as its rule's params, which Snakemake compares
# itself: a reworded description must not rerun the study.)
DATA = {"weights": ["configs"], "report": ["report/templates"]}


def _module_file(dotted: str) -> Path | None:
    """``latent_interp.x.y`` -> its file (a package's ``__init__.py``), or None when it is not part of the package."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _dotted(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


@cache  # every rule's script reaches most modules: each is read once per Snakemake start, not once per script
def _imports(path: Path) -> frozenset[Path]:
    """The package's modules that ``path`` imports (absolute and relative imports, ``from x import module``)."""
    this = _dotted(path) if path.is_relative_to(PACKAGE_DIR) else ""
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and STAGE.match(node.value):
            names = [node.value.partition(":")[0]]  # a script's run_stage(snakemake, "latent_interp.x:function")
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from latent_interp import store" names a module; "from latent_interp.store import names" does not
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            # importing latent_interp.x.y runs latent_interp/__init__ and latent_interp/x/__init__ as well
            for depth in range(1, len(parts) + 1):
                module = _module_file(".".join(parts[:depth]))
                if module is not None:
                    found.add(module)
    return frozenset(found)


@cache
def script_sources(script: str | Path) -> tuple[str, ...]:
    """Every package file (code and data) that running ``script`` can execute or read, sorted."""
    seen: set[Path] = set()
    pending = list(_imports(Path(script)))
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        pending.extend(_imports(module))
    files = set(seen)
    for module in seen:
        for folder in DATA.get(_dotted(module).removeprefix(f"{PACKAGE}."), []):
            files.update(p for p in (PACKAGE_DIR / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return tuple(sorted(str(p) for p in files))
