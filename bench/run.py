"""Speed and memory benchmarks with ratio targets (issue 12): prints a table and writes it as JSON.

    python bench/run.py                          # every row, full sizes; writes bench/results.json
    python bench/run.py --rows P1 P2 --json out.json
    python bench/run.py --quick                  # tiny sizes in a minute or two: checks this code, not figures

Every figure is a ratio of two things measured side by side in this run (or a wall time with its target), so the
figures hold on a busy machine too. P7 needs a GPU and says so elsewhere; with a GPU, P1 and P10 measure the GPU
paths. README "Performance" holds the table of the last full run and the machine it ran on. Rows live in
bench/rows.py, one function each.
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

sys.path.insert(0, str(Path(__file__).parent))
import rows  # noqa: E402
from common import REPO, cores, write_json  # noqa: E402

ORDER = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "P11", "P12", "P13", "P14")


def machine() -> dict:
    import torch

    from latent_interp import store

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_cores": cores(), "processor": platform.processor() or platform.machine(), "gpu": gpu,
            "versions": store.versions()}


def run(selected: list[str], quick: bool, tmp: Path) -> list[rows.Row]:
    functions = {"P1": rows.p1_encode, "P2": rows.p2_metrics, "P3": rows.p3_latent_reads, "P4": rows.p4_dry_run,
                 "P5": rows.p5_encode_memory, "P6": rows.p6_embeddings, "P7": rows.p7_gpu,
                 "P10": rows.p10_interp_training, "P11": rows.p11_flow, "P12": rows.p12_field_geometry,
                 "P13": rows.p13_video, "P14": rows.p14_study}
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ORDER), choices=ORDER, metavar="ID",
                        help="rows to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the benchmark code")
    parser.add_argument("--json", type=Path, help="where to write the results (default: bench/results.json for a "
                                                  "full run of every row; none otherwise)")
    parser.add_argument("--study-fraction", type=float, default=1.0,
                        help="P14's study at this share of ATD-12K's 12,000 triplets (default 1: the whole size)")
    parser.add_argument("--study-limit", type=float, default=rows.STUDY_LIMIT_SECONDS,
                        help="P14 stops its study after this many seconds on a GPU (default %(default)s)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    selected = [row for row in ORDER if row in args.rows]
    rows.STUDY_FRACTION, rows.STUDY_LIMIT_SECONDS = args.study_fraction, args.study_limit
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
