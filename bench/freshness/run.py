"""Commit-to-visible latency of the view tables under shop traffic.

    .venv/bin/python bench/freshness/run.py [--rate 500] [--duration 60] [--probes 5] [--workers 1]

With the stack up, it starts the four services, catches the warehouse up with the topics' history
(once: the bench's state dir is kept between runs), then runs `mirador run` while `mirador simulate`
sends `--rate` commands/s. Once the run replays its builds and data tests under that traffic
(`--warm-up`: before, dbt runs them and records what replays), probe customers are registered
`--probes` times a second. For each probe: its source commit time (Debezium's `source.ts_us`, landed
as `_commit_ts`), when the loader landed it in `raw` (`_loaded_at`), and when the first publication
holding it in `customer_summary` was switched in (`published_at`). Prints p50/p95/p99 of both
latencies side by side (landing in raw is the floor the views are built on), each part's time per
cycle, and the CPU each part of the system used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.services.cpu import processes
from cdc import stack
from cdc.config import SERVICES, StackSettings
from tests.ports import free_ports
from warehouse.publish import current_publication

BIN = Path(sys.executable).parent


ROLES = (("mirador run", "mirador run"), ("simulate", "mirador simulate"), ("services", "uvicorn"),
         ("services", "multiprocessing"), ("debezium", "ConnectDistributed"), ("kafka", "kafka.Kafka"),
         ("postgres", "postgres"))
"""Who a process is, by a part of its command line (uvicorn's workers are multiprocessing children)."""


def cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of each part of the system on this machine."""
    seconds: dict[str, float] = {}
    for _, cmdline, cpu in processes().values():
        role = next((role for role, part in ROLES if part in cmdline), None)
        if role:
            seconds[role] = seconds.get(role, 0.0) + cpu
    return seconds


def _cycles(log: str) -> int:
    return log.count("warehouse.runtime.pipeline build")


def _warm(log: str) -> bool:
    """The run replays its builds and its data tests (each after two dbt runs recorded them)."""
    return "(replayed " in log and "(replayed) through" in log


def _percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    pick = lambda p: ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]  # noqa: E731
    return (f"p50 {statistics.median(ordered):6.3f}s  p95 {pick(95):6.3f}s  p99 {pick(99):6.3f}s  "
            f"max {ordered[-1]:6.3f}s  (n={len(ordered)})")


class Watcher(threading.Thread):
    """Follows the publications and notes when each probe first became visible."""

    def __init__(self, published: Path, prefix: str) -> None:
        super().__init__(daemon=True)
        self.published, self.prefix = published, prefix
        self.visible: dict[str, float] = {}
        self.stop = threading.Event()
        self.builds = 0

    def run(self) -> None:
        seen = None
        while not self.stop.is_set():
            publication = current_publication(self.published)
            if publication and publication.build_id != seen:
                seen = publication.build_id
                self.builds += 1
                published_at = datetime.fromisoformat(publication.published_at).timestamp()
                with duckdb.connect(str(publication.path(self.published)), read_only=True) as conn:
                    for (email,) in conn.execute("select customer_email from customer_summary "
                                                 "where customer_email like ?", [f"{self.prefix}%"]).fetchall():
                        self.visible.setdefault(email, published_at)
            self.stop.wait(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--probes", type=float, default=5, help="probe commands per second")
    parser.add_argument("--warm-up", type=float, default=180.0,
                        help="at most this many seconds of traffic before probing: until builds and tests replay")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per service")
    args = parser.parse_args()

    settings = StackSettings()
    stack.up(settings)
    home = settings.home / "bench-freshness"
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    env = {**os.environ, "MIRADOR_HOME": str(home), "MIRADOR_JARS_DIR": str(settings.jars),
           **{f"MIRADOR_{s.upper()}_PORT": str(p) for s, p in ports.items()},
           **{f"MIRADOR_{s.upper()}_WORKERS": str(args.workers) for s in SERVICES}}
    mirador = lambda *a, **kw: subprocess.run([BIN / "mirador", *a], env=env, cwd=ROOT, **kw)  # noqa: E731
    mirador("services", "up", check=True)
    run = simulate = None
    try:
        started = time.monotonic()
        mirador("load", "--once", "--no-progress", check=True, capture_output=True)
        mirador("build", check=True, capture_output=True)
        print(f"warm-up (history loaded and built) in {time.monotonic() - started:.1f}s", flush=True)

        # To a file, not a pipe: nobody reads a pipe while the run goes on, and a full one blocks its logging.
        # Each in its own session, as a deployed process is and as the stack's and the services' are: the
        # kernel's autogroup scheduling shares the CPU between sessions, not between this bench's children.
        run_log = home / "last-run.log"
        with run_log.open("w") as out:
            run = subprocess.Popen([BIN / "mirador", "run"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        prefix = f"probe-{uuid.uuid4().hex[:8]}-"
        watcher = Watcher(home / "warehouse" / "published", prefix)
        watcher.start()
        time.sleep(3)  # let the first cycle settle
        simulate = subprocess.Popen([BIN / "mirador", "simulate", "--rate", str(args.rate), "--duration",
                                     str(args.duration + args.warm_up), "--seed", "11"], env=env, cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        # Steady state: the first builds and data tests under traffic run dbt, which records what replays next.
        warm_until = time.monotonic() + args.warm_up
        while not (warm := _warm(text := run_log.read_text())) and time.monotonic() < warm_until:
            time.sleep(0.2)
        print(f"warm under traffic for {args.warm_up - (warm_until - time.monotonic()):.1f}s "
              f"({_cycles(text)} cycles)", flush=True)
        if not warm:
            print(f"not warm after --warm-up {args.warm_up:.0f}s: builds or data tests still run dbt, and the "
                  "latencies below include them", flush=True)
        cpu_before, cpu_started = cpu_by_role(), time.monotonic()
        probes = []
        url = f"http://127.0.0.1:{ports['customers']}/customers"
        with httpx.Client(headers={"Authorization": "Bearer mirador-dev"}, timeout=30) as http:
            deadline = time.monotonic() + args.duration
            while time.monotonic() < deadline:
                email = f"{prefix}{len(probes)}@bench.example.com"
                response = http.post(url, json={"email": email, "name": "Probe", "country": "PT"},
                                     headers={"Idempotency-Key": email})
                response.raise_for_status()
                probes.append(email)
                time.sleep(1 / args.probes)
        cpu_after, cpu_seconds = cpu_by_role(), time.monotonic() - cpu_started
        simulated = simulate.communicate(timeout=args.duration + 120)[0]
        wait_until = time.monotonic() + 60
        while len(watcher.visible) < len(probes) and time.monotonic() < wait_until:
            time.sleep(0.2)
        watcher.stop.set()
    finally:
        if simulate is not None and simulate.poll() is None:  # interrupted: its own session did not hear it
            simulate.terminate()
        if run is not None:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=300)
            log = run_log.read_text()
        mirador("services", "down")

    with duckdb.connect(str(home / "warehouse" / "mirador.duckdb"), read_only=True) as conn:
        rows = conn.execute("select email, epoch(_commit_ts), epoch(_loaded_at) from raw.customers__customers "
                            "where email like ? and _op = 'c'", [f"{prefix}%"]).fetchall()
    landed = [loaded - commit for _, commit, loaded in rows]
    visible = [watcher.visible[email] - commit for email, commit, _ in rows if email in watcher.visible]
    cycles = [line for line in log.splitlines() if "warehouse.runtime.pipeline build" in line]  # warm-up's too
    print("\n".join(simulated.strip().splitlines()[-1:]))
    print(f"\nprobes: {len(probes)} sent, {len(rows)} landed, {len(watcher.visible)} visible; "
          f"{watcher.builds} publications seen; {len(cycles)} build cycles")
    print(f"commit -> raw (loader)        {_percentiles(landed)}")
    print(f"commit -> published view      {_percentiles(visible)}")
    for kind, what in (("replayed", "recorded SQL of the models"), ("dbt run", "models only"),
                       ("dbt build", "models and tests"), ("publish", "an earlier file + changed rows")):
        matches = [m for m in (re.search(rf"{kind} ([0-9.]+)s(, ([0-9.]+)s on CPU)?", line) for line in cycles) if m]
        if matches:
            seconds, cpu = [float(m[1]) for m in matches], [float(m[3]) for m in matches if m[3]]
            on_cpu = f" ({statistics.median(cpu):.2f}s on CPU)" if cpu else ""
            print(f"  {kind:<9} per cycle: median {statistics.median(seconds):.2f}s{on_cpu}, max {max(seconds):.2f}s "
                  f"(n={len(seconds)}; {what})")
    cores = {role: (cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) / cpu_seconds for role in cpu_after}
    print(f"CPU while simulating ({os.cpu_count()} cores): " + ", ".join(
        f"{role} {used:.2f}" for role, used in sorted(cores.items(), key=lambda item: -item[1])) +
        f"; {sum(cores.values()):.2f} cores in all")
    (home / "last-freshness.json").write_text(json.dumps({"landed": landed, "visible": visible}))


if __name__ == "__main__":
    main()
