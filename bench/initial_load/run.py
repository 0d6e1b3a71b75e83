"""Initial load: a 1M-row table (and rows the views join to it) in Postgres before capture starts,
captured by Debezium's snapshot, landed, built and served.

    .venv/bin/python bench/initial_load/run.py [--customers 1000000] [--json PATH] [--keep]

Starts a scratch stack (bench/scratch.py: its own home, Postgres, broker and Connect worker; the
default stack is left alone), applies the services' migrations, seeds the rows (bench/initial_load/
seed.py), starts `mirador serve` and `mirador run` in the scratch home, then registers the project's
connectors: the clock starts there. A client GETs `/views` every 0.2 s until every view holds every
seeded row; that GET is the end. Prints rows/s, the time to that GET, and, from the raw tables once the
run has stopped, when the snapshot had fully landed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.initial_load.seed import expected_rows, seed  # noqa: E402
from bench.scratch import ScratchStack  # noqa: E402
from bench.stats import machine  # noqa: E402

BIN = Path(sys.executable).parent
HOME = ROOT / ".mirador" / "bench-scratch"


def expected_views(customers: int) -> dict[str, int]:
    rows = expected_rows(customers)
    return {
        "customer_summary": rows["customers"],
        "orders_with_invoices": rows["orders"],
        "product_stock": rows["products"],
        "stock_movements": rows["stock_events"],
    }


class Pipeline:
    """`mirador serve` and `mirador run` in the scratch home, each in its own session, logs to files."""

    def __init__(self, scratch: ScratchStack) -> None:
        self.scratch, self.processes = scratch, {}
        # New topics appear when the connectors register: look for them every second, not every ten.
        self.env = {**scratch.env, "MIRADOR_LOADER_DISCOVER_SECONDS": "1"}

    def start(self, name: str, *argv: str, env: dict | None = None) -> None:
        """`mirador *argv` as `name`, with `env` added to the bench's environment."""
        log = self.scratch.home / "logs" / f"bench-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            self.processes[name] = subprocess.Popen(
                [BIN / "mirador", *argv],
                env={**self.env, **(env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        return (self.scratch.home / "logs" / f"bench-{name}.log").read_text()

    def wait_api(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.scratch.api}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"mirador serve did not answer:\n{self.log('serve')[-2000:]}")

    def check(self) -> None:
        """Raise when `mirador run` or `mirador serve` has stopped."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"mirador {name} stopped (exit {process.returncode}):\n{self.log(name)[-3000:]}")

    def stop(self) -> None:
        for name in list(self.processes):
            if (process := self.processes.pop(name, None)) and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=300)
                except subprocess.TimeoutExpired:
                    process.kill()


def view_counts(api: str) -> dict[str, int]:
    try:
        body = httpx.get(f"{api}/views", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {view["name"]: view["row_count"] for view in body.get("views", [])}


def measure(scratch: ScratchStack, customers: int, pipeline: Pipeline, timeout: float = 900) -> dict:
    """Seed, capture, and follow the API until it serves everything. Leaves the pipeline running."""
    result = {"machine_before": machine(), "customers": customers}
    started = time.monotonic()
    result["stack_started"] = scratch.up(fresh=True)
    result["stack_up_s"] = time.monotonic() - started
    started = time.monotonic()
    result["seed_s_by_table"] = seed(scratch.dsn, customers)
    result["seed_s"] = time.monotonic() - started
    result["source_rows"] = expected_rows(customers)
    result["rows"] = sum(result["source_rows"].values())
    print(
        f"scratch stack up in {result['stack_up_s']:.0f}s; seeded {result['rows']:,} rows in "
        f"{result['seed_s']:.0f}s ({customers:,} customers)",
        flush=True,
    )
    pipeline.start("serve", "serve", "--workers", "2")
    pipeline.wait_api()
    pipeline.start("run", "run")
    want = expected_views(customers)
    result["load_before_capture"] = machine()["loadavg"]
    t0 = time.time()
    scratch.capture()
    result["capture_started_at"] = t0
    progress, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = view_counts(scratch.api)
        progress.append((time.time() - t0, counts.get("customer_summary", 0)))
        if all(counts.get(view, 0) >= rows for view, rows in want.items()):
            break
        pipeline.check()
        time.sleep(0.2)
    seen = time.time()
    # The GET that sees it all: the last seeded customer, by key, and the exact count of the big view.
    last = httpx.get(
        f"{scratch.api}/views/customer_summary",
        params={"customer_email": f"load-{customers}@load.example.com", "count": "exact", "limit": 1},
        timeout=30,
    )
    result.update(
        complete=all(view_counts(scratch.api).get(v, 0) >= n for v, n in want.items()),
        served_counts=view_counts(scratch.api),
        exact_count=int(last.headers.get("x-total-count", 0)),
        last_row_found=bool(last.json().get("rows")) if last.status_code == 200 else False,
        to_all_served_s=seen - t0,
        progress=progress,
    )
    result["served_rows_per_s"] = result["rows"] / result["to_all_served_s"]
    print(
        f"initial load: {result['rows']:,} rows served in {result['to_all_served_s']:.1f}s = "
        f"{result['served_rows_per_s']:,.0f} rows/s (complete: {result['complete']})",
        flush=True,
    )
    return result


def landed(scratch: ScratchStack, t0: float) -> dict:
    """From the raw tables (the run stopped): when the snapshot's rows had all landed."""
    path = scratch.home / "warehouse" / "mirador.duckdb"
    with duckdb.connect(str(path), read_only=True) as conn:
        rows, last = conn.execute(
            "select count(*), epoch(max(_loaded_at)) from raw.customers__customers where _snapshot"
        ).fetchone()
        everything = conn.execute(
            " union all ".join(
                f"select count(*) as n, epoch(max(_loaded_at)) as t from raw.{table} where _snapshot"
                for table in (
                    "customers__customers",
                    "orders__orders",
                    "orders__order_lines",
                    "invoices__invoices",
                    "inventory__products",
                    "inventory__stock_events",
                )
            )
        ).fetchall()
    total, finished = sum(n for n, _ in everything), max(t for _, t in everything if t)
    return {
        "customers_rows": rows,
        "customers_to_raw_s": last - t0,
        "customers_raw_rows_per_s": rows / (last - t0),
        "all_rows": total,
        "all_to_raw_s": finished - t0,
        "raw_rows_per_s": total / (finished - t0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path, default=HOME, help="scratch home (wiped)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="leave the scratch stack up")
    args = parser.parse_args()
    scratch = ScratchStack(args.home)
    pipeline = Pipeline(scratch)
    try:
        result = measure(scratch, args.customers, pipeline)
        pipeline.stop()
        result["raw"] = landed(scratch, result["capture_started_at"])
        print(
            f"snapshot in raw: {result['raw']['all_rows']:,} rows in {result['raw']['all_to_raw_s']:.1f}s = "
            f"{result['raw']['raw_rows_per_s']:,.0f} rows/s"
        )
    finally:
        pipeline.stop()
        if not args.keep:
            scratch.down()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
