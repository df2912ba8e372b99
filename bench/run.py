"""Speed and memory benchmarks with ratio targets: prints a table and writes it as JSON.

    python bench/run.py                          # every row, full sizes; writes bench/results.json
    python bench/run.py --rows P1 P2 --json out.json
    python bench/run.py --quick                  # tiny sizes in a minute or two: checks this code, not figures
    python bench/run.py --markdown               # docs/performance.md's table from bench/results*.json

Every figure is a ratio of two things measured side by side in this run (or a wall time with its target), so the
figures hold on a busy machine too. P7 needs a GPU and says so elsewhere; with a GPU, P1 and P10 measure the GPU
paths. docs/performance.md holds the table of the last full runs and the machines they ran on. The rows live in
bench/rows/, one function each, grouped by theme.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import rows  # bench/rows/, beside this file
from common import REPO, cores, write_json
from rows import ORDER

PERFORMANCE_PAGE = REPO / "docs" / "performance.md"
# docs/performance.md's generated table sits between these lines
TABLE_START, TABLE_END = "<!-- table: python bench/run.py --markdown -->", "<!-- end of table -->"


def machine() -> dict:
    import torch

    from latent_interp import store

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_cores": cores(), "processor": platform.processor() or platform.machine(), "gpu": gpu,
            "versions": store.versions()}


def run(selected: list[str], quick: bool, tmp: Path) -> list[rows.Row]:
    functions = rows.ROWS
    results = []
    demo = None
    for row_id in selected:
        print(f"{row_id} ...", flush=True)
        if row_id in ("P8", "P9"):  # P8 counts what the demo run of P9 computed twice
            if demo is None:
                p9, demo = rows.p9_demo(quick, tmp)
                if "P9" in selected:
                    results.append(p9)
            if row_id == "P8":
                results.append(rows.p8_twice(demo))
            continue
        try:
            if row_id in FRESH_PROCESS and len(selected) > 1:
                results.append(_in_fresh_process(row_id, quick, tmp))
            else:
                results.append(functions[row_id](quick, tmp))
        except Exception as error:  # a row that breaks is reported as failed, and the other rows still run
            results.append(rows.Row(row_id, "failed", None, "", False, f"failed: {type(error).__name__}: "
                                    f"{str(error)[:300]}", {"traceback": traceback.format_exc()}))
            print(results[-1].details["traceback"], file=sys.stderr, flush=True)
        print(f"{row_id}: {results[-1].figure}", flush=True)
    return sorted(results, key=lambda row: ORDER.index(row.id))


# Rows measured in a Python of their own when other rows run before them: P3 reads stores as a job that only reads
# them does, and a VAE row before it leaves its process with vae.prepare_torch's malloc settings (large blocks kept
# on the heap), under which the same reads took 3x longer.
FRESH_PROCESS = {"P3"}


def _in_fresh_process(row_id: str, quick: bool, tmp: Path) -> rows.Row:
    out = tmp / f"{row_id}.json"
    command = [sys.executable, __file__, "--rows", row_id, "--json", str(out), "--workdir", str(tmp)]
    subprocess.run(command + (["--quick"] if quick else []), check=True)
    return rows.Row(**json.loads(out.read_text())["rows"][0])


def table(results: list[rows.Row]) -> str:
    lines = ["| id | measures | figure | target | met |", "|---|---|---|---|---|"]
    for row in results:
        met = {True: "yes", False: "**no**", None: "not here"}[row.met]
        lines.append(f"| {row.id} | {row.measures} | {row.figure} | {row.target} | {met} |")
    return "\n".join(lines)


def _cell(row: dict | None) -> str:
    if row is None:
        return ""
    met = {True: " (met)", False: " (**missed**)", None: ""}[row["met"]]
    return " ".join(str(row["figure"]).split()).replace("|", "/") + met


def markdown(cpu: dict, gpu: dict) -> str:
    """docs/performance.md's table: each row's figure on each machine of ``bench/results.json`` and
    ``bench/results-gpu.json`` against its target, and what made it (``rows.WHAT_MADE_IT``)."""
    by_machine = [{row["id"]: row for row in results["rows"]} for results in (cpu, gpu)]
    names = [results["machine"].get("gpu") or f"{results['machine'].get('cpu_cores', '?')} CPU cores"
             for results in (cpu, gpu)]
    lines = [f"| id | measures | {names[0]} | {names[1]} | target | what made it |", "|" + " --- |" * 6]
    for row_id in ORDER:
        cpu_row, gpu_row = (rows_.get(row_id) for rows_ in by_machine)
        described = cpu_row or gpu_row
        lines.append(f"| {row_id} | {described['measures']} | {_cell(cpu_row)} | {_cell(gpu_row)} | "
                     f"{described['target']} | {rows.WHAT_MADE_IT[row_id]} |")
    return "\n".join(lines)


def write_markdown(page: Path = PERFORMANCE_PAGE) -> str:
    """Put the table between the page's markers; returns the page's new text."""
    results = [json.loads((REPO / "bench" / name).read_text()) for name in ("results.json", "results-gpu.json")]
    text = page.read_text()
    head, _, rest = text.partition(TABLE_START + "\n")
    _, _, tail = rest.partition(TABLE_END)
    if not rest or TABLE_END not in rest:
        raise SystemExit(f"{page}: no {TABLE_START!r} ... {TABLE_END!r} lines to put the table between")
    text = f"{head}{TABLE_START}\n{markdown(*results)}\n{TABLE_END}{tail}"
    page.write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ORDER), choices=ORDER, metavar="ID",
                        help="rows to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the benchmark code")
    parser.add_argument("--json", type=Path, help="where to write the results (default: bench/results.json for a "
                                                  "full run of every row; none otherwise)")
    parser.add_argument("--study-fraction", type=float, default=1.0,
                        help="P14's study at this share of ATD-12K's 12,000 triplets (default 1: the whole size)")
    parser.add_argument("--study-limit", type=float, default=rows.study.STUDY_LIMIT_SECONDS,
                        help="P14 stops its study after this many seconds on a GPU (default %(default)s)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--markdown", action="store_true",
                        help="write docs/performance.md's table from bench/results*.json and run nothing")
    args = parser.parse_args(argv)
    if args.markdown:
        write_markdown()
        print(f"wrote the table of {PERFORMANCE_PAGE}")
        return 0
    selected = [row for row in ORDER if row in args.rows]
    rows.study.STUDY_FRACTION, rows.study.STUDY_LIMIT_SECONDS = args.study_fraction, args.study_limit
    json_path = args.json or (REPO / "bench" / "results.json" if not args.quick and selected == list(ORDER) else None)
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        results = run(selected, args.quick, Path(scratch))
    print()
    print(table(results))
    if json_path:
        write_json(json_path, {"command": "python bench/run.py " + " ".join(argv if argv is not None else
                                                                            sys.argv[1:]),
                               "quick": args.quick, "machine": machine(),
                               "rows": [row.as_dict() for row in results]})
        print(f"\nwritten to {json_path}")
    return 1 if any(row.measures == "failed" for row in results) else 0


if __name__ == "__main__":
    sys.exit(main())
