"""The read API under load, beside ROAPI and Datasette serving the same rows, while publications switch.

    .venv/bin/python bench/api/run.py [--rows 100000] [--quick] [--no-peers] [--publish-rate 1]

Generates `--rows` synthetic `orders_with_invoices` rows (DuckDB) into a working file, publishes them
with `warehouse.publish`, and serves them from `mirador serve` (2 workers), ROAPI (a Parquet copy)
and Datasette (a SQLite copy, 2 uvicorn workers); ROAPI and Datasette come from `--peers-venv`,
made with pip when missing. A publisher process then changes `--changed` rows and publishes,
`--publish-rate` times a second, for the whole run: mirador follows; the peers keep the copy they
started with, but share the machine with the publisher alike. Measured, each scenario with wrk
(-t2 -c64) against every server in turn, the median of 3 runs of 10 s (`--quick`: 1 run of 5 s):
key lookups of random order ids; pages of 50 of a random customer (distinct queries) in the default
order (placed_at desc, order_id); the first page (the same query from everyone); beside each run
against mirador, one row asked for every 5 ms shows how soon each publication is served. Then,
mirador only: the CPU and RSS of each of its processes per publication, its live stream (before the
HTTP runs): publication-to-event latency at `--subscribers`, and how many idle subscribers each worker
holds at `--idle-subscribers`; and from its log, how each publication reached the serving copy.
Without `mirador serve`, or with --no-mirador, the peers are measured alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.api import dataset, load, phases, report, servers  # noqa: E402


def say(message: str) -> None:
    print(message, flush=True)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of orders_with_invoices (try 1000000 too)")
    parser.add_argument("--customers", type=int, default=10_000, help="distinct customer ids")
    parser.add_argument("--quick", action="store_true", help="1 run of 5 s per scenario and server")
    parser.add_argument("--runs", type=int, help="runs per scenario and server (default 3; 1 with --quick)")
    parser.add_argument("--seconds", type=float, help="seconds per run (default 10; 5 with --quick)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True, help="ROAPI and Datasette")
    parser.add_argument("--mirador", action=argparse.BooleanOptionalAction, default=True, help="mirador serve")
    parser.add_argument("--publish-rate", type=float, default=1.0, help="publications per second (0: none)")
    parser.add_argument("--changed", type=int, default=300, help="rows each publication changes")
    parser.add_argument("--workers", type=int, default=2, help="mirador serve --workers")
    parser.add_argument(
        "--datasette-workers",
        type=int,
        default=2,
        help="1: `datasette serve` (one process); more: its app under uvicorn --workers",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--subscribers", type=int, default=1000, help="live-stream subscribers for the latency")
    parser.add_argument("--idle-subscribers", type=int, default=4000, help="idle subscribers held in all")
    parser.add_argument(
        "--peers-venv", type=Path, default=ROOT / ".venv-peers", help="where roapi and datasette are (made if missing)"
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".mirador" / "bench-api", help="scratch (wiped)")
    parser.add_argument("--json", type=Path, help="also write the HTTP medians per server and scenario here")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (5.0 if args.quick else 10.0)
    args.warm = 1.0 if args.quick else 2.0
    return args


PEERS = ["roapi==0.12.7", "datasette==0.65.5", "uvicorn==0.55.0"]
"""What the peers' venv holds (versions known to install here); nothing of it is committed."""


def ensure_peers(peers: Path) -> str | None:
    """Create the peers' venv with ROAPI, Datasette and uvicorn when one is missing; None when they are
    there, else why not."""
    absent = [name for name in ("roapi", "datasette", "uvicorn") if not (peers / "bin" / name).exists()]
    if not absent:
        return None
    say(f"installing {', '.join(PEERS)} into {peers} ({', '.join(absent)} missing)")
    steps = [[sys.executable, "-m", "venv", str(peers)], [str(peers / "bin" / "pip"), "install", "-q", *PEERS]]
    for step in ([] if (peers / "bin" / "pip").exists() else steps[:1]) + steps[1:]:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return f"`{' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-500:]}"
    return None


def main() -> int:
    args = arguments()
    if load.wrk_binary() is None:
        say("error: wrk is not installed (apt-get install -y wrk)")
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # subscribers: each is a socket on both ends
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    skipped = []
    with_mirador = args.mirador
    if with_mirador and (why := servers.mirador_available()):
        skipped.append(f"mirador: {why}")
        with_mirador = False
    with_peers = args.peers
    if with_peers and (why := ensure_peers(args.peers_venv)):
        skipped.append(f"peers: {why}")
        with_peers = False
    for line in skipped:
        say(f"skipped {line}")
    if not with_mirador and not with_peers:
        say("error: nothing to measure")
        return 1

    say(f"machine: {machine()}")
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    published = home / "warehouse" / "published"  # also the default the API finds from MIRADOR_HOME
    working = work / "working.duckdb"
    files = {name: work / name for name in ("orders.parquet", "peers.db", "keys.txt", "customers.txt")}
    started = time.perf_counter()
    dataset.generate(working, published, args.rows, args.customers)
    dataset.export(working, files["orders.parquet"], files["peers.db"], files["keys.txt"], files["customers.txt"])
    say(
        f"{args.rows:,} rows, {len(files['customers.txt'].read_text().split()):,} customers generated and "
        f"published in {time.perf_counter() - started:.1f} s ({work})"
    )

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    running: list[servers.Server] = []
    publisher = None
    pub_log, pub_out = work / "publications.jsonl", work / "publisher.out"
    try:
        if with_mirador:
            running.append(servers.start_mirador(home, published, args.workers, work))
        if with_peers:
            running.append(servers.start_roapi(args.peers_venv, files["orders.parquet"], work))
            running.append(servers.start_datasette(args.peers_venv, files["peers.db"], args.datasette_workers, work))
        for server in running:
            servers.wait_ready(server, timeout=120 + args.rows / 400)  # the first copy: 2-10 min at 1M rows here
            say(f"{server.name} ready at {server.base} ({server.note})")
        if problems := phases.same_rows(running, files["keys.txt"], files["customers.txt"]):
            say("error: the servers do not serve the same rows:\n  " + "\n  ".join(problems))
            return 1
        say(f"same rows from {', '.join(s.name for s in running)} (keys, customer pages, first page)")
        mirador = next((s for s in running if s.name == "mirador"), None)
        cost = live = idle = None
        if mirador and args.publish_rate > 0:
            say(f"publication cost: {args.seconds:.0f} s without publications, then {args.seconds:.0f} s with")
            idle = phases.idle_cpu(mirador, args.seconds)
        if args.publish_rate > 0:
            with pub_out.open("w") as out:
                publisher = subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("publisher.py")),
                        "--working",
                        str(working),
                        "--published",
                        str(published),
                        "--log",
                        str(pub_log),
                        "--rate",
                        str(args.publish_rate),
                        "--changed",
                        str(args.changed),
                        "--duration",
                        "3600",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            time.sleep(max(2.0, 2 / args.publish_rate))
        if mirador and publisher:
            cost = phases.publication_cost(mirador, idle, publisher.pid, pub_log, args.seconds)
        if mirador and publisher:
            say(
                f"live stream: {args.subscribers:,} subscribers for {args.seconds:.0f} s, then "
                f"{args.idle_subscribers:,} idle"
            )
            live = phases.live_stream(
                mirador, pub_log, subscribers=args.subscribers, idle=args.idle_subscribers, seconds=args.seconds
            )
        say(
            f"http: {args.runs} run(s) of {args.seconds:.0f} s per scenario and server, wrk -t{args.threads} "
            f"-c{args.connections}, publishing {args.publish_rate}/s ({args.changed} rows each)"
        )
        items = {"key": files["keys.txt"], "customer": files["customers.txt"], "first": None}
        samples = phases.http_rounds(
            running,
            items,
            pub_log,
            runs=args.runs,
            seconds=args.seconds,
            warm=args.warm,
            script=load.write_script(work),
            threads=args.threads,
            connections=args.connections,
            say=say,
        )
    except KeyboardInterrupt:
        say("interrupted: stopping what was started")
        return 130
    except servers.ServerFailed as err:
        say(f"error: {err}")
        return 1
    finally:
        servers.stop(publisher)
        for server in running:
            servers.stop(server.process)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    summary = json.loads(pub_out.read_text().strip().splitlines()[-1]) if pub_out.exists() else {}
    say("")
    say(
        f"orders_with_invoices, {args.rows:,} rows; medians of {args.runs} run(s) of {args.seconds:.0f} s; "
        f"wrk -t{args.threads} -c{args.connections}; all on 127.0.0.1, one {_cores()}-core machine"
    )
    say(report.http_table(running, samples))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "runs": args.runs,
                    "seconds": args.seconds,
                    "http": [
                        {
                            "server": server,
                            "scenario": scenario,
                            "rps": phases.median([s.result.rate for s in runs]),
                            "p50_ms": phases.median([s.result.p50_ms for s in runs]),
                            "p99_ms": phases.median([s.result.p99_ms for s in runs]),
                            "errors": sum(s.result.errors for s in runs),
                        }
                        for (server, scenario), runs in samples.items()
                    ],
                },
                indent=1,
            )
        )
    for server in running:
        say(f"  {server.name}: {server.note}")
    if with_peers:
        say("  peers serve the static copy they started with; only mirador follows the publications")
    say(
        "  mirador/peer: mirador's req/s over the peer's; pubs/s: publications switched during the runs;\n"
        "  served after: p50 / max ms from a publication's switch to the first response from it or a later one,\n"
        "  asked for every 5 ms beside the load (queued behind it like any request)"
    )
    if summary:
        say(
            f"  publisher: {summary['publications']} publications, p50 {summary['p50_seconds']:.3f} s, "
            f"max {summary['max_seconds']:.3f} s each, {summary['cpu_seconds']:.1f} CPU s in all"
        )
    if cost:
        say("")
        say(report.cost_table(cost, args.rows, args.changed))
    if live:
        say("")
        say(report.live_lines(live))
    if mirador:
        say("")
        say(report.refresher_lines(mirador.log))
    for line in skipped:
        say(f"skipped {line}")
    say(f"machine at the end: {machine()}")
    return 0


def machine() -> str:
    """Cores, memory and load average: the machine may be shared, and the numbers move with its load."""
    import os

    memory = next(
        (
            int(line.split()[1]) / 2**20
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0.0,
    )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, load average {load}"


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
