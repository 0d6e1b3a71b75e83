"""Runs every benchmark and regenerates BENCHMARKS.md with its tables and PNG plots (`make bench`).

    .venv-bench/bin/python bench/report.py [--mode quick|full] [--only freshness,peer,...] [--render-only]

Each bench runs as its own command line (printed at the top of its section), its output kept in
`.mirador/bench-results/<name>.log` and its figures in `<name>.json`; the load average is read just
before each. `--render-only` redraws the report from the last results. Runs in a venv with matplotlib
(the Makefile makes `.venv-bench`); the benches themselves run with `.venv/bin/python`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone, UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.render import render  # noqa: E402
from bench.stats import machine  # noqa: E402

PYTHON = ".venv/bin/python"
RESULTS = ROOT / ".mirador" / "bench-results"

COMMANDS = {
    "quick": {
        "freshness": "bench/freshness/run.py --rate 200 500 1000 --duration 30 --warm-up 120 --settle 10",
        "peer": "bench/peer/run.py --customers 200000 --rate 200 --duration 30 --burst 20000 --peer-snapshot-cap 60",
        "loader": "bench/loader/run.py --events 200000 --repeats 1 --baseline-events 10000 --profile-events 20000",
        "services": "-m bench.services.bench_commands --seconds 5 --repeats 1",
        "api": "bench/api/run.py --quick",
    },
    "full": {
        "freshness": "bench/freshness/run.py --rate 200 500 1000 --duration 60 --warm-up 180 --settle 15",
        "peer": "bench/peer/run.py --customers 1000000 --rate 200 --duration 60 --burst 50000",
        "loader": "bench/loader/run.py",
        "services": "-m bench.services.bench_commands",
        "api": "bench/api/run.py",
    },
}
JSON_FLAG = {"freshness", "peer", "services"}
"""Benches that write their figures with `--json`; the loader's and the API's are read from what they print."""


def run_bench(name: str, command: str) -> dict:
    RESULTS.mkdir(parents=True, exist_ok=True)
    argv = [PYTHON, *command.split()]
    if name in JSON_FLAG:
        argv += ["--json", str(RESULTS / f"{name}.json")]
        (RESULTS / f"{name}.json").unlink(missing_ok=True)
    before = machine()
    print(f"[{datetime.now():%H:%M:%S}] {name}: {' '.join(argv)} (load {' '.join(before['loadavg'])})", flush=True)
    started = time.monotonic()
    with (RESULTS / f"{name}.log").open("w") as log:
        code = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - started
    print(f"[{datetime.now():%H:%M:%S}] {name}: exit {code} after {seconds:.0f}s", flush=True)
    return {"command": f"{PYTHON} {command}", "exit": code, "seconds": seconds, "machine_before": before,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=tuple(COMMANDS), default="quick")
    parser.add_argument("--only", help="comma-separated benches to run (the others keep their last results)")
    parser.add_argument("--render-only", action="store_true", help="only redraw BENCHMARKS.md from the last results")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args()
    runs_file = RESULTS / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    if not args.render_only:
        chosen = args.only.split(",") if args.only else list(COMMANDS[args.mode])
        started = time.monotonic()
        for name in chosen:
            runs[name] = run_bench(name, COMMANDS[args.mode][name]) | {"mode": args.mode}
            RESULTS.mkdir(parents=True, exist_ok=True)
            runs_file.write_text(json.dumps(runs, indent=1))
        total = time.monotonic() - started
        runs["_all"] = {"mode": args.mode, "seconds": total, "benches": chosen,
                        "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
        runs_file.write_text(json.dumps(runs, indent=1))
        print(f"all benches in {total / 60:.1f} min", flush=True)
    args.plots.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(runs, RESULTS, args.plots, ROOT))
    print(f"wrote {args.out} and the plots in {args.plots}/")


if __name__ == "__main__":
    main()
