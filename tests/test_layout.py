"""The shape of the code a newcomer relies on: every workflow script is the same three lines that call one stage by
keyword (latent_interp.rule), every stage takes keywords only, no package module imports another that imports it
back, and no module grows past what one reads in a sitting."""

import ast
import inspect
from pathlib import Path

import pytest

from latent_interp import rule, sources
from conftest import REPO

SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))
MODULE_LINES = 450


def stage_of(script: Path) -> str:
    """The "module:function" a script's run_stage call names; fails unless the script is docstring, import, call."""
    body = ast.parse(script.read_text()).body
    assert len(body) == 3, f"{script.name}: a docstring, the import of run_stage and one call"
    docstring, imported, call = body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant), script.name
    assert ast.unparse(imported) == "from latent_interp.rule import run_stage", script.name
    assert isinstance(call.value, ast.Call) and ast.unparse(call.value.func) == "run_stage", script.name
    assert ast.unparse(call.value.args[0]) == "snakemake", script.name
    return call.value.args[1].value


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_every_script_calls_one_stage_by_keyword(script):
    module, _, name = stage_of(script).partition(":")
    function = getattr(__import__(module, fromlist=[name]), name)
    kinds = {parameter.kind for parameter in inspect.signature(function).parameters.values()}
    assert kinds <= {inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD}, \
        f"{module}.{name} takes arguments by position"


def test_a_misnamed_rule_part_fails_naming_it():
    def stage(*, frames, table, model, threads=1):
        return frames, table, model, threads

    given = dict(rule="metrics", inputs={"frames": "f.zarr", "code": ["x.py"]}, outputs={"table": "t.csv"},
                 params={}, wildcards={"model": "m", "split": "val"}, threads=2)
    assert rule.stage_arguments(stage, **given) == {"frames": "f.zarr", "table": "t.csv", "model": "m", "threads": 2}
    with pytest.raises(TypeError, match="rule metrics: input 'frame' is no parameter of .*stage"):
        rule.stage_arguments(stage, **{**given, "inputs": {"frame": "f.zarr"}})
    with pytest.raises(TypeError, match="needs frames, which the rule gives as no input"):
        rule.stage_arguments(stage, **{**given, "inputs": {}})
    with pytest.raises(TypeError, match="param 'table' has the name of a output"):
        rule.stage_arguments(stage, **{**given, "params": {"table": 3}})
    # an input kept only for staleness is not passed on
    assert "weights" not in rule.stage_arguments(stage, **{**given, "inputs": {"frames": "f", "weights": ["w"]}})


def test_a_stage_takes_many_files_as_one_group_checked_by_name():
    from typing import NamedTuple

    class Outputs(NamedTuple):
        table: str
        spec: str
        plot: str | None = None

    def stage(*, frames, outputs: Outputs, model):
        return frames, outputs, model

    given = dict(rule="metrics", inputs={"frames": "f.zarr", "code": ["x.py"]},
                 outputs={"table": "t.csv", "spec": "s.json"}, params={}, wildcards={"model": "m"}, threads=1)
    arguments = rule.stage_arguments(stage, **given)
    assert arguments["outputs"] == Outputs("t.csv", "s.json") and arguments["frames"] == "f.zarr"
    with pytest.raises(TypeError, match="rule metrics: output 'tabel' is no field of .*Outputs"):
        rule.stage_arguments(stage, **{**given, "outputs": {"tabel": "t.csv", "spec": "s.json"}})
    with pytest.raises(TypeError, match="Outputs needs spec, which the rule gives as no output"):
        rule.stage_arguments(stage, **{**given, "outputs": {"table": "t.csv"}})


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_no_stage_takes_more_than_eight_parameters(script):
    module, _, name = stage_of(script).partition(":")
    parameters = inspect.signature(getattr(__import__(module, fromlist=[name]), name)).parameters
    assert len(parameters) <= 8, f"{module}.{name} takes {len(parameters)}: group its files (latent_interp.rule)"


def test_no_module_imports_one_that_imports_it_back():
    modules = [path for path in sources.PACKAGE_DIR.rglob("*.py") if "__pycache__" not in path.parts]

    def ancestors(path: Path) -> set[Path]:
        """The __init__.py of the packages that hold ``path``: importing a module runs them, which is no cycle."""
        return {folder / "__init__.py" for folder in path.parents if folder.is_relative_to(sources.PACKAGE_DIR)}

    graph = {path: {imported for imported in sources._imports(path) if imported.suffix == ".py"} - ancestors(path)
             - {path} for path in modules}
    # a package's __init__ re-exports its modules; its modules importing the package's siblings is the same package
    graph = {path: {target for target in targets if not (path.name == "__init__.py" and target.parent == path.parent)}
             for path, targets in graph.items()}

    def cycle_from(start: Path) -> list[Path] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for target in graph.get(node, ()):
                if target == start:
                    return trail + [start]
                if target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
        return None

    cycles = [cycle for path in modules if (cycle := cycle_from(path))]
    assert not cycles, " -> ".join(str(p.relative_to(REPO)) for p in cycles[0])


def test_no_module_is_longer_than_one_reads_in_a_sitting():
    long = {str(path.relative_to(REPO)): count for path in sorted((REPO / "latent_interp").rglob("*.py"))
            if (count := len(path.read_text().splitlines())) > MODULE_LINES}
    assert not long, f"modules over {MODULE_LINES} lines: {long}"


def test_every_settings_object_is_a_param_snakemake_compares():
    """Snakemake reruns a job whose params changed, but only for params it can represent; a settings object it
    skipped would let a changed setting rerun nothing."""
    import yaml
    from snakemake.persistence import UNREPRESENTABLE, PersistenceBase

    from latent_interp import runconfig

    run = runconfig.resolve(yaml.safe_load((REPO / "config.yaml").read_text()))
    serialized = lambda value: PersistenceBase._serialize_param_builtin(None, value)  # noqa: E731
    settings = [run.vae_run("tiny-kl"), run.finetune_base_run("tiny-kl-finetuned"), run.preprocess,
                run.interp_settings, run.embed_settings]
    for value in settings:
        assert serialized(value) is not UNREPRESENTABLE, type(value).__name__
        changed = value._replace(**{value._fields[-1]: "changed"})
        assert serialized(changed) != serialized(value), type(value).__name__
