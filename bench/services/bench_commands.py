"""Benchmark: place-order (3 lines) and decrease-stock (over 1,000 products) through the HTTP services,
side by side with two baselines writing the same rows straight into Postgres, at the same concurrency:
pgbench (a C client) and a plain psycopg loop (the services' own driver, bench/services/psycopg_loop.py).

    .venv/bin/python -m bench.services.bench_commands [--workers 2] [--seconds 15] [--repeats 3]

Needs the stack (`mirador stack up`). Starts its own orders and inventory services on spare ports,
runs each workload and its baseline alternately `--repeats` times, and prints each run and the
medians. HTTP runs closed loop (each of the connections sends as soon as it has its answer: the most
the service does) and paced (`--paced`, 1,000 commands/s by default: the latency at that rate,
counted from when each command was due). Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg
import uvloop
from psycopg.conninfo import conninfo_to_dict

from bench.services import loadgen, psycopg_loop
from bench.services.cpu import CpuMeter
from services import runner
from tests.ports import free_ports

HERE = Path(__file__).parent
PORTS = {"orders": 0, "inventory": 0}
"""Filled with free ports at start."""
TOKEN = "bench-token"
INITIAL_STOCK = 1_000_000
RESPONSE = '{"id": "01a21ad2-09c3-70e1-99a7-e7b5ae5d677d", "version": 1}'


@dataclass
class Run:
    workload: str
    path: str
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    load: float
    completed: int
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU microseconds per command by part, the CDC catch-up after the run included."""

    @property
    def server_us(self) -> float:
        return sum(us for part, us in self.cpu_us.items() if part != "client")

    @property
    def projected(self) -> float:
        """Commands/s if the service side had both cores to itself (no client, no other tenants)."""
        return 2e6 / self.server_us if self.server_us else 0.0


def _dsn(service: str) -> str:
    return runner.SETTINGS[service]().database_dsn


async def seed_products(base_url: str, count: int) -> list[str]:
    """Products with plenty of stock, through the HTTP commands."""
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, limits=httpx.Limits(max_connections=16)
    ) as client:
        gate = asyncio.Semaphore(16)

        async def one(n: int) -> str:
            async with gate:
                r = await client.post(
                    "/products", json={"sku": f"BENCH-{tag}-{n}", "name": f"Bench {n}", "list_price": "9.99"}
                )
                product = r.json()["id"]
                await client.post(f"/products/{product}/stock/increase", json={"quantity": INITIAL_STOCK})
                return product

        return await asyncio.gather(*(one(n) for n in range(count)))


def seed_baseline_products(count: int) -> str:
    """The baseline's own products and opening stock, written in SQL; ids derive from `run` and n."""
    run = f"pgbench-{uuid.uuid4().hex[:8]}-"
    with psycopg.connect(_dsn("inventory"), autocommit=True) as conn:
        params = {"run": run, "count": count, "stock": INITIAL_STOCK}
        conn.execute(
            "insert into products (id, sku, name, list_price, currency) "
            "select md5(%(run)s || n::text)::uuid, %(run)s || n::text, 'Baseline', 9.99, 'EUR' "
            "from generate_series(1, %(count)s) n",
            params,
        )
        conn.execute(
            "insert into stock_events (stream, version, event_type, quantity, reason, command_id) "
            "select md5(%(run)s || n::text)::uuid, 1, 'StockIncreased', %(stock)s, 'bench', %(run)s "
            "from generate_series(1, %(count)s) n",
            params,
        )
    return run


SLOT_LAG = """
select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint
from pg_replication_slots where slot_name = any(%s)
"""


def wait_for_cdc(timeout: float = 300, lag_bytes: int = 4 * 2**20) -> float:
    """Wait until Debezium has confirmed the WAL of the benchmarked databases; return the seconds waited.

    A baseline run writes faster than Debezium streams: without this, the next run would pay for the
    backlog the previous one left behind.
    """
    t0 = time.monotonic()
    with psycopg.connect(_dsn("orders"), autocommit=True) as conn:
        while time.monotonic() - t0 < timeout:
            if conn.execute(SLOT_LAG, ([f"mirador_{s}" for s in PORTS],)).fetchone()[0] <= lag_bytes:
                break
            time.sleep(1)
    return time.monotonic() - t0


def http_run(workload: str, make, port: int, concurrency: int, seconds: float, rate: float | None = None) -> Run:
    """Closed loop (as fast as the service answers), or paced at `rate` commands a second."""
    load = os.getloadavg()[0]
    result = uvloop.run(
        loadgen.run("127.0.0.1", port, TOKEN, make, concurrency=concurrency, seconds=seconds, rate=rate)
    )
    errors = sum(n for status, n in result.statuses.items() if status >= 300)
    return Run(
        workload,
        "HTTP" if rate is None else f"HTTP@{rate:.0f}",
        result.rate,
        result.percentile(50) * 1000,
        result.percentile(99) * 1000,
        errors,
        load,
        result.completed,
    )


def pgbench_run(
    workload: str, script: str, service: str, concurrency: int, seconds: float, variables: dict[str, str]
) -> Run:
    params = conninfo_to_dict(_dsn(service))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as logs:
        argv = [
            "pgbench",
            "-h",
            str(params["host"]),
            "-p",
            str(params["port"]),
            "-U",
            str(params["user"]),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(concurrency),
            "-j",
            "2",
            "-T",
            str(round(seconds)),
            "-f",
            str(HERE / "pgbench" / script),
            "-l",
            "--log-prefix",
            f"{logs}/tx",
        ]
        for name, value in variables.items():
            argv += ["-D", f"{name}={value}"]
        done = subprocess.run(
            [*argv, str(params["dbname"])],
            env={**os.environ, "PGPASSWORD": str(params["password"])},
            cwd=logs,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"pgbench failed:\n{done.stderr}")
        out = done.stdout
        latencies = sorted(int(line.split()[2]) for f in Path(logs).glob("tx*") for line in f.read_text().splitlines())
    tps = float(re.search(r"tps = ([\d.]+)", out)[1])
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out)[1])
    failed = int(re.search(r"number of failed transactions: (\d+)", out)[1])
    pick = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] / 1000  # noqa: E731
    return Run(workload, "pgbench", tps, pick(50), pick(99), failed, load, processed)


def psycopg_run(
    workload: str, transaction: psycopg_loop.Transaction, service: str, concurrency: int, seconds: float
) -> Run:
    load = os.getloadavg()[0]
    result = uvloop.run(psycopg_loop.run(_dsn(service), transaction, concurrency=concurrency, seconds=seconds))
    errors = sum(n for status, n in result.statuses.items() if status >= 300)
    return Run(
        workload,
        "psycopg",
        result.rate,
        result.percentile(50) * 1000,
        result.percentile(99) * 1000,
        errors,
        load,
        result.completed,
    )


def place_order_request(products: list[str]):
    def make() -> loadgen.Request:
        lines = [
            {"product_id": random.choice(products), "quantity": random.randint(1, 3), "unit_price": "9.99"}
            for _ in range(3)
        ]
        body = orjson.dumps({"customer_id": str(uuid.uuid4()), "lines": lines})
        return b"POST", b"/orders", body, b"Idempotency-Key: %s\r\n" % uuid.uuid4().hex.encode()

    return make


def decrease_request(products: list[str]):
    paths = [f"/products/{p}/stock/decrease".encode() for p in products]

    def make() -> loadgen.Request:
        return (
            b"POST",
            random.choice(paths),
            b'{"quantity":1,"reason":"bench"}',
            b"Idempotency-Key: %s\r\n" % uuid.uuid4().hex.encode(),
        )

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per service")
    parser.add_argument("--pool", type=int, default=16, help="connections per worker")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument(
        "--paced",
        type=float,
        default=1000,
        help="also send each workload at this many commands/s (latency counted from when each "
        "was due); 0: closed loop only",
    )
    parser.add_argument(
        "--workload",
        choices=("place-order", "decrease-stock"),
        action="append",
        help="run only this workload (repeatable); both by default",
    )
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args()

    for name, port in zip(list(PORTS), free_ports(len(PORTS)), strict=True):
        PORTS[name] = port
        prefix = f"MIRADOR_{name.upper()}_"
        os.environ |= {
            f"{prefix}PORT": str(port),
            f"{prefix}TOKEN": TOKEN,
            f"{prefix}POOL_MAX_SIZE": str(args.pool),
            f"{prefix}POOL_MIN_SIZE": str(args.pool),
        }
    home = Path(tempfile.mkdtemp(prefix="mirador-bench-"))
    started = runner.up(list(PORTS), workers=args.workers, home=home)
    service_pids = {s.pid: s.name for s in started}
    try:
        products = asyncio.run(seed_products(f"http://127.0.0.1:{PORTS['inventory']}", args.products))
        baseline_run = seed_baseline_products(args.products)
        lines = orjson.dumps(
            [{"product_id": str(uuid.uuid4()), "quantity": q, "unit_price": "9.99"} for q in (1, 2, 3)]
        ).decode()
        runs: list[Run] = []
        print(
            f"{os.cpu_count()} CPUs, {args.workers} workers/service, pool {args.pool}/worker, "
            f"concurrency {args.concurrency}, {args.seconds:.0f}s per run, {args.repeats} repeats\n"
        )
        print(
            "cdc s: seconds Debezium needed after the run to catch up with the WAL it wrote.\n"
            "CPU us/command, the CDC catch-up included: service (uvicorn workers), postgres, cdc (Debezium\n"
            "and Kafka), client (load generator, pgbench or psycopg loop).\n"
            "projected: 2 cores / (service+postgres+cdc).\n"
        )
        print(
            f"{'workload':<15} {'path':<8} {'cmd/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'load1':>6} "
            f"{'cdc s':>5} {'service':>7} {'pg':>7} {'cdc':>7} {'client':>7} {'projected':>9}"
        )
        # Per workload: its HTTP run (closed loop, or paced at a rate) and its two baselines.
        http = {
            "place-order": lambda rate=None: http_run(
                "place-order", place_order_request(products), PORTS["orders"], args.concurrency, args.seconds, rate
            ),
            "decrease-stock": lambda rate=None: http_run(
                "decrease-stock", decrease_request(products), PORTS["inventory"], args.concurrency, args.seconds, rate
            ),
        }
        baselines = {
            "place-order": (
                lambda: pgbench_run(
                    "place-order",
                    "place_order.sql",
                    "orders",
                    args.concurrency,
                    args.seconds,
                    {"lines": lines, "response": RESPONSE},
                ),
                lambda: psycopg_run(
                    "place-order", psycopg_loop.place_order(lines, RESPONSE), "orders", args.concurrency, args.seconds
                ),
            ),
            "decrease-stock": (
                lambda: pgbench_run(
                    "decrease-stock",
                    "decrease_stock.sql",
                    "inventory",
                    args.concurrency,
                    args.seconds,
                    {"run": baseline_run, "products": str(args.products), "response": RESPONSE},
                ),
                lambda: psycopg_run(
                    "decrease-stock",
                    psycopg_loop.decrease_stock(baseline_run, args.products, RESPONSE),
                    "inventory",
                    args.concurrency,
                    args.seconds,
                ),
            ),
        }
        chosen = []
        for name in args.workload or http:
            chosen += [http[name], *baselines[name]]
            if args.paced:
                chosen.append(lambda name=name: http[name](args.paced))
        for _ in range(args.repeats):
            for run in chosen:
                wait_for_cdc()
                with CpuMeter(service_pids, tuple(PORTS)) as meter:
                    r = run()
                    waited = wait_for_cdc()  # the CDC work this run caused is part of its cost
                r.cpu_us = {part: seconds / r.completed * 1e6 for part, seconds in meter.spent.items()}
                runs.append(r)
                cpu = r.cpu_us
                print(
                    f"{r.workload:<15} {r.path:<8} {r.rate:7.0f} {r.p50_ms:7.1f} {r.p99_ms:7.1f} {r.errors:6d} "
                    f"{r.load:6.2f} {waited:5.0f} {cpu.get('service', 0):7.0f} {cpu.get('postgres', 0):7.0f} "
                    f"{cpu.get('debezium', 0) + cpu.get('kafka', 0):7.0f} {cpu.get('client', 0):7.0f} "
                    f"{r.projected:9.0f}",
                    flush=True,
                )
        summarize(runs)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "args": vars(args) | {"json": str(args.json)},
                        "runs": [asdict(r) | {"projected": r.projected} for r in runs],
                    },
                    indent=1,
                )
            )
    finally:
        runner.down(list(PORTS), home=home)


def summarize(runs: list[Run]) -> None:
    """Medians per workload and path, and the HTTP rate as a share of each baseline's (median of the
    ratios within a repeat, each measured under the same load)."""
    print("\nmedians")
    print(
        f"{'workload':<15} {'path':<8} {'cmd/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'HTTP share':>10} "
        f"{'projected share':>15}"
    )
    med = lambda rs, a: statistics.median(getattr(r, a) for r in rs)  # noqa: E731
    for workload in dict.fromkeys(r.workload for r in runs):
        http = [r for r in runs if r.workload == workload and r.path == "HTTP"]
        for path in dict.fromkeys(r.path for r in runs if r.workload == workload):
            own = [r for r in runs if r.workload == workload and r.path == path]
            share = projected = ""
            if path in ("pgbench", "psycopg"):
                share = f"{statistics.median(h.rate / b.rate for h, b in zip(http, own)):.0%}"
                if all(b.projected for b in own):
                    projected = f"{statistics.median(h.projected / b.projected for h, b in zip(http, own)):.0%}"
            print(
                f"{workload:<15} {path:<8} {med(own, 'rate'):7.0f} {med(own, 'p50_ms'):7.1f} "
                f"{med(own, 'p99_ms'):7.1f} {share:>10} {projected:>15}"
            )


if __name__ == "__main__":
    main()
