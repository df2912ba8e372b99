"""What every ``workflow/scripts/*.py`` does: call one stage function with the rule's named inputs, outputs, params,
wildcards and threads as keyword arguments, its stdout and stderr in the rule's log, its outputs written under
temporary names and renamed when whole (``latent_interp.atomic.staged``).

    from latent_interp.rule import run_stage
    run_stage(snakemake, "latent_interp.encode:encode_split")

Names, not positions: a rule's input, output or param that the stage does not take, or a parameter of the stage
that the rule does not give, fails before the stage runs, naming both. Inputs that only make the job stale when
they change are not passed: ``code``, ``weights`` and ``lpips_weights`` in every rule (``STALENESS_ONLY``), and the
names a script gives as ``unused``. Wildcards and ``threads`` are passed to the stages that take them. Torch-free
until the stage's module is imported, after the log is open.

A stage with many files takes them as one group: a parameter named ``inputs`` or ``outputs`` whose annotation is a
NamedTuple of paths (``Paths`` below) gets all of the rule's inputs or outputs in it, checked field by field the same
way (a field with a default is optional), so a signature stays short without giving up the names.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing

from latent_interp.atomic import staged

# Inputs a rule lists only so that a change to them reruns it: the package files its script runs, a model's weight
# files (the stage loads the model from its VaeRun), the LPIPS weight files (named in its settings).
STALENESS_ONLY = ("code", "weights", "lpips_weights")


def _named(namedlist) -> dict:
    """A Snakemake Namedlist's named entries; a list-valued entry as a plain list of strings."""
    return {name: (value if isinstance(value, str) else list(value)) for name, value in namedlist.items()}


def _group_type(function, parameter: str):
    """The NamedTuple class that ``function``'s parameter ``parameter`` is annotated with, or None."""
    if parameter not in inspect.signature(function).parameters:
        return None
    annotation = typing.get_type_hints(function).get(parameter)
    return annotation if isinstance(annotation, type) and issubclass(annotation, tuple) \
        and hasattr(annotation, "_fields") else None


def _grouped(rule: str, kind: str, group, values: dict):
    """``values`` as the NamedTuple ``group``; raises TypeError naming a name it lacks or a field left unfilled."""
    extra = sorted(set(values) - set(group._fields))
    if extra:
        raise TypeError(f"rule {rule}: {kind} {extra[0]!r} is no field of {group.__module__}.{group.__qualname__} "
                        f"(it has {', '.join(group._fields)})")
    missing = [name for name in group._fields if name not in values and name not in group._field_defaults]
    if missing:
        raise TypeError(f"rule {rule}: {group.__module__}.{group.__qualname__} needs {', '.join(missing)}, "
                        f"which the rule gives as no {kind}")
    return group(**values)


def stage_arguments(function, rule: str, inputs: dict, outputs: dict, params: dict, wildcards: dict,
                    threads: int | None, unused=()) -> dict:
    """The keyword arguments of ``function`` from a rule's named parts; raises TypeError naming the mismatch."""
    signature = inspect.signature(function)
    accepted = {name for name, parameter in signature.parameters.items()
                if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)}
    takes_any = any(parameter.kind == parameter.VAR_KEYWORD for parameter in signature.parameters.values())
    inputs = {name: value for name, value in inputs.items() if name not in STALENESS_ONLY and name not in unused}
    given: dict[str, tuple[str, object]] = {}
    for kind, group_name in (("input", "inputs"), ("output", "outputs")):
        group = _group_type(function, group_name)
        if group is not None:
            values = inputs if kind == "input" else outputs
            given[group_name] = (kind, _grouped(rule, kind, group, values))
    for kind, values in (("input", inputs), ("output", outputs), ("param", params)):
        if kind + "s" in given:  # grouped above
            continue
        for name, value in values.items():
            if name in given:
                raise TypeError(f"rule {rule}: {kind} {name!r} has the name of a {given[name][0]}; rename one")
            if name not in accepted and not takes_any:
                raise TypeError(f"rule {rule}: {kind} {name!r} is no parameter of {function.__module__}."
                                f"{function.__qualname__} (it takes {', '.join(sorted(accepted))})")
            given[name] = (kind, value)
    arguments = {name: value for name, (_, value) in given.items()}
    arguments.update({name: value for name, value in wildcards.items() if name in accepted and name not in given})
    if "threads" in accepted and threads is not None:
        arguments["threads"] = threads
    missing = [name for name, parameter in signature.parameters.items()
               if parameter.default is parameter.empty and name not in arguments
               and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)]
    if missing:
        raise TypeError(f"rule {rule}: {function.__module__}.{function.__qualname__} needs {', '.join(missing)}, "
                        "which the rule gives as no input, output, param or wildcard")
    return arguments


def run_stage(snakemake, stage: str, unused=(), stage_outputs: bool = True):
    """Run ``stage`` (``"module:function"``) for the job ``snakemake`` describes; returns what the stage returns.
    ``stage_outputs`` false: the stage is given the outputs' own paths and writes them whole itself (the demo's
    drawing, whose frames move into place as a folder)."""
    if snakemake.log:
        sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)
    module, _, name = stage.partition(":")
    function = getattr(importlib.import_module(module), name)
    arguments = dict(rule=snakemake.rule, inputs=_named(snakemake.input), params=dict(snakemake.params.items()),
                     wildcards=dict(snakemake.wildcards.items()), threads=snakemake.threads, unused=unused)
    if not stage_outputs:
        return function(**stage_arguments(function, outputs=_named(snakemake.output), **arguments))
    with staged(snakemake.output) as out:
        outputs = dict(out.items())
        if len(out) != len(outputs):  # every output is passed by its name
            raise TypeError(f"rule {snakemake.rule}: name every output (it has {len(out)}, {len(outputs)} named)")
        return function(**stage_arguments(function, outputs=outputs, **arguments))
