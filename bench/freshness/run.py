"""Commit-to-visible latency of the view tables under shop traffic, read back through the read API.

    .venv/bin/python bench/freshness/run.py [--rate 200 500 1000] [--duration 60] [--probes 5] [--json PATH]

With the stack up, it starts the four services, catches the warehouse up with the topics' history
(once: the bench's state dir is kept between runs), then runs `mirador run` and `mirador serve` while
`mirador simulate` sends each `--rate` in turn (commands/s; what it reached is reported beside it).
Once the run replays its builds and data tests under that traffic (`--warm-up`: before, dbt runs them
and records what replays), probe customers are registered `--probes` times a second through the
customers service. Each probe is read back as a client would, both ways the API offers: a
read-your-writes GET naming the `position.lsn` of the command's answer (held until it is served), and,
for every `--poll-every`-th probe, plain GETs every 50 ms. For each probe: its source commit time (Debezium's `source.ts_us`, landed as
`_commit_ts`), when the loader landed it in `raw` (`_loaded_at`), when the first publication holding it
was switched in (`published_at`), and when each GET returned its row. Prints p50/p95/p99 of each
latency from the commit side by side (landing in raw is the floor the views are built on), and from
the command's answer, each part's time per cycle, and the CPU each part of the system used.
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.readback import poll, read_your_writes
from bench.services.cpu import processes
from bench.stats import describe, machine, percentiles, serving_refreshes
from cdc import postgres, stack
from cdc.config import SERVICES, StackSettings
from tests.ports import free_ports
from warehouse.publish import current_publication

BIN = Path(sys.executable).parent


ROLES = (
    ("mirador run", "mirador run"),
    ("mirador serve", "mirador serve"),
    ("simulate", "mirador simulate"),
    ("services", "uvicorn"),
    ("services", "multiprocessing"),
    ("debezium", "ConnectDistributed"),
    ("kafka", "kafka.Kafka"),
    ("postgres", "postgres"),
)
"""Who a process is, by a part of its command line (uvicorn's workers are multiprocessing children: the
services' and the read API's workers count as services)."""


OWN = {"mirador run", "mirador serve", "simulate", "services"}
"""Roles this bench starts itself: only its own processes count (others may run the same commands)."""


def _home_of(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((v[len(b"MIRADOR_HOME=") :].decode() for v in environ if v.startswith(b"MIRADOR_HOME=")), None)


def cpu_by_role(home: Path, stack_home: Path) -> dict[str, float]:
    """CPU seconds so far of each part of the system: this bench's processes, and the default stack's."""
    seconds: dict[str, float] = {}
    found = processes()
    postmasters = {
        pid for pid, (_, cmdline, _) in found.items() if f" -D {postgres.data_dir(StackSettings())}" in cmdline
    }
    for pid, (parent, cmdline, cpu) in found.items():
        role = next((role for role, part in ROLES if part in cmdline), None)
        if role in OWN and _home_of(pid) != str(home):
            continue
        if role in ("debezium", "kafka") and f"-Dmirador.home={stack_home}" not in cmdline:
            continue
        if role == "postgres" and not ({pid, parent} & postmasters):
            continue
        if role:
            seconds[role] = seconds.get(role, 0.0) + cpu
    own = os.times()  # this bench: its probing client and its publication watcher
    seconds["probe client"] = own.user + own.system
    return seconds


CYCLE = re.compile(r"warehouse\.(runtime\.)?pipeline build")


def _cycles(log: str) -> int:
    return len(CYCLE.findall(log))


def _warm(log: str) -> bool:
    """The run replays its builds and its data tests (each after two dbt runs recorded them)."""
    return "(replayed " in log and "(replayed) through" in log


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
        conn = duckdb.connect(config={"threads": 1})  # each publication attached: ~1 ms, not an instance each
        while not self.stop.is_set():
            publication = current_publication(self.published)
            if publication and publication.build_id != seen:
                seen = publication.build_id
                self.builds += 1
                published_at = datetime.fromisoformat(publication.published_at).timestamp()
                conn.execute(f"attach '{publication.path(self.published)}' as publication (read_only)")
                try:
                    for (email,) in conn.execute(
                        "select customer_email from publication.customer_summary where customer_email like ?",
                        [f"{self.prefix}%"],
                    ).fetchall():
                        self.visible.setdefault(email, published_at)
                finally:
                    conn.execute("detach publication")
            self.stop.wait(0.02)


class Simulation:
    """`mirador simulate` at one rate until stopped; notes its per-second lines as they come."""

    def __init__(self, env: dict, rate: float) -> None:
        self.rate, self.seconds, self.lines = rate, [], []
        self.process = subprocess.Popen(
            [BIN / "mirador", "simulate", "--rate", str(rate), "--duration", "0", "--seed", "11"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if match := re.match(r"\s*\d+s\s+(\d+) commands/s", line):
                self.seconds.append((time.time(), int(match[1])))

    def reached(self, start: float, end: float) -> float:
        """Median commands/s of the whole seconds between `start` and `end`."""
        counts = [n for t, n in self.seconds if start + 1 <= t <= end]
        return statistics.median(counts) if counts else 0.0

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        self.reader.join(timeout=10)
        return next((line for line in reversed(self.lines) if " commands in " in line), "")


async def probe_window(
    services_url: str, api_url: str, prefix: str, start: int, rate: float, duration: float, poll_every: int = 5
) -> list[dict]:
    """Register a probe customer `rate` times a second; read each back with read-your-writes as soon as it
    is answered, and every `poll_every`-th one by polling too (each poller sends 20 GETs a second, which
    would otherwise load the API and this client more than the traffic measured)."""
    probes: list[dict] = []
    tasks = []
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with (
        httpx.AsyncClient(
            base_url=services_url, timeout=30, headers={"Authorization": "Bearer mirador-dev"}
        ) as services,
        httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as api,
    ):

        async def one(number: int) -> None:
            email = f"{prefix}{number}@bench.example.com"
            probe = {"email": email, "sent": time.time()}
            response = await services.post(
                "/customers",
                json={"email": email, "name": "Probe", "country": "PT"},
                headers={"Idempotency-Key": email},
            )
            response.raise_for_status()
            probe["answered"] = time.time()
            probe["lsn"] = response.json()["position"]["lsn"]
            probes.append(probe)
            ryw = read_your_writes(api, "customer_summary", "customer_email", email, f"customers:{probe['lsn']}")
            if number % poll_every:
                probe["ryw"], probe["poll"] = await ryw, None
            else:
                probe["ryw"], probe["poll"] = await asyncio.gather(
                    ryw, poll(api, "customer_summary", "customer_email", email)
                )

        began = time.monotonic()
        number = 0
        while (due := began + number / rate) < began + duration:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(start + number)))
            number += 1
        await asyncio.gather(*tasks)
    return probes


def latencies(probes: list[dict], end: str, start: str) -> list[float]:
    return [p[end] - p[start] for p in probes if p.get(end) is not None and p.get(start) is not None]


def summarize_rate(probes: list[dict]) -> dict:
    return {
        "commit_to_raw": percentiles(latencies(probes, "loaded", "commit")),
        "commit_to_published": percentiles(latencies(probes, "published", "commit")),
        "commit_to_get_ryw": percentiles(latencies(probes, "ryw", "commit")),
        "commit_to_get_poll": percentiles(latencies(probes, "poll", "commit")),
        "answer_to_get_ryw": percentiles(latencies(probes, "ryw", "answered")),
        "answer_to_get_poll": percentiles(latencies(probes, "poll", "answered")),
        "command_answer": percentiles(latencies(probes, "answered", "sent")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, nargs="+", default=[500], help="commands/s of shop traffic, in turn")
    parser.add_argument("--duration", type=float, default=60, help="seconds of probing at each rate")
    parser.add_argument("--probes", type=float, default=5, help="probe commands per second")
    parser.add_argument(
        "--warm-up",
        type=float,
        default=180.0,
        help="at most this many seconds of traffic before probing: until builds and tests replay",
    )
    parser.add_argument(
        "--poll-every", type=int, default=5, help="read every n-th probe back by polling too (GETs every 50 ms)"
    )
    parser.add_argument("--settle", type=float, default=15.0, help="seconds at each later rate before probing")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per service")
    parser.add_argument("--api-workers", type=int, default=2, help="mirador serve --workers")
    parser.add_argument("--json", type=Path, help="write every probe and the figures here")
    args = parser.parse_args()

    settings = StackSettings()
    stack.up(settings)
    home = settings.home / "bench-freshness"
    ports = dict(zip([*SERVICES, "api"], free_ports(len(SERVICES) + 1), strict=True))
    env = {
        **os.environ,
        "MIRADOR_HOME": str(home),
        "MIRADOR_JARS_DIR": str(settings.jars),
        **{f"MIRADOR_{s.upper()}_PORT": str(p) for s, p in ports.items()},
        **{f"MIRADOR_{s.upper()}_WORKERS": str(args.workers) for s in SERVICES},
    }
    mirador = lambda *a, **kw: subprocess.run([BIN / "mirador", *a], env=env, cwd=ROOT, **kw)  # noqa: E731
    mirador("services", "up", check=True)
    run = serve = simulation = None
    windows: list[dict] = []
    warm = False
    try:
        started = time.monotonic()
        mirador("load", "--once", "--no-progress", check=True, capture_output=True)
        mirador("build", check=True, capture_output=True)
        print(f"warm-up (history loaded and built) in {time.monotonic() - started:.1f}s", flush=True)

        # To files, not pipes: nobody reads a pipe while the run goes on, and a full one blocks its logging.
        # Each in its own session, as a deployed process is and as the stack's and the services' are: the
        # kernel's autogroup scheduling shares the CPU between sessions, not between this bench's children.
        run_log, serve_log = home / "last-run.log", home / "last-serve.log"
        with run_log.open("w") as out:
            run = subprocess.Popen(
                [BIN / "mirador", "run"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with serve_log.open("w") as out:
            serve = subprocess.Popen(
                [BIN / "mirador", "serve", "--workers", str(args.api_workers)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        prefix = f"probe-{uuid.uuid4().hex[:8]}-"
        watcher = Watcher(home / "warehouse" / "published", prefix)
        watcher.start()
        time.sleep(3)  # let the first cycle settle
        services_url, api_url = f"http://127.0.0.1:{ports['customers']}", f"http://127.0.0.1:{ports['api']}"
        for index, rate in enumerate(args.rate):
            simulation = Simulation(env, rate)
            if index == 0:
                # Steady state: the first builds and data tests under traffic run dbt, which records what replays.
                warm_until = time.monotonic() + args.warm_up
                while not (warm := _warm(text := run_log.read_text())) and time.monotonic() < warm_until:
                    time.sleep(0.2)
                print(
                    f"warm under traffic for {args.warm_up - (warm_until - time.monotonic()):.1f}s "
                    f"({_cycles(text)} cycles)",
                    flush=True,
                )
                if not warm:
                    print(
                        f"not warm after --warm-up {args.warm_up:.0f}s: builds or data tests still run dbt, and "
                        "the latencies below include them",
                        flush=True,
                    )
            else:
                time.sleep(args.settle)
            load = machine()["loadavg"]
            cpu_before, window_start = cpu_by_role(home, settings.home), time.time()
            probes = asyncio.run(
                probe_window(
                    services_url,
                    api_url,
                    prefix,
                    sum(len(w["probes"]) for w in windows),
                    args.probes,
                    args.duration,
                    args.poll_every,
                )
            )
            window_end = time.time()
            cpu_after = cpu_by_role(home, settings.home)
            reached = simulation.reached(window_start, window_end)
            summary = simulation.stop()
            simulation = None
            cores = {
                role: (cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) / (window_end - window_start)
                for role in cpu_after
            }
            windows.append(
                {
                    "rate": rate,
                    "reached": reached,
                    "load_before": load,
                    "start": window_start,
                    "end": window_end,
                    "probes": probes,
                    "cpu_cores": cores,
                    "simulate": summary,
                }
            )
            ryw = latencies(probes, "ryw", "answered")
            print(
                f"rate {rate:.0f}/s (reached {reached:.0f}/s, load {' '.join(load)}): answer -> GET (read-your-"
                f"writes) {describe(ryw)}",
                flush=True,
            )
        wait_until = time.monotonic() + 60
        while len(watcher.visible) < sum(len(w["probes"]) for w in windows) and time.monotonic() < wait_until:
            time.sleep(0.2)
        watcher.stop.set()
    finally:
        if simulation is not None:
            simulation.stop()
        for process in (serve, run):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=300)
        log = run_log.read_text() if run is not None else ""
        mirador("services", "down")

    with duckdb.connect(str(home / "warehouse" / "mirador.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "select email, epoch(_commit_ts), epoch(_loaded_at) from raw.customers__customers "
            "where email like ? and _op = 'c'",
            [f"{prefix}%"],
        ).fetchall()
    landed = {email: (commit, loaded) for email, commit, loaded in rows}
    for window in windows:
        for probe in window["probes"]:
            probe["commit"], probe["loaded"] = landed.get(probe["email"], (None, None))
            probe["published"] = watcher.visible.get(probe["email"])
        window["figures"] = summarize_rate(window["probes"])
    cycles = [line for line in log.splitlines() if CYCLE.search(line)]  # warm-up's too
    print(f"\n{watcher.builds} publications seen; {len(cycles)} build cycles")
    for window in windows:
        f, probes = window["figures"], window["probes"]
        print(
            f"\nat {window['rate']:.0f} commands/s (reached {window['reached']:.0f}/s; load before "
            f"{' '.join(window['load_before'])}): {len(probes)} probes, {f['commit_to_raw']['n']} landed, "
            f"{f['commit_to_get_ryw']['n']} read back"
        )
        print(f"  {window['simulate']}")
        for label, key in (
            ("commit -> raw (loader)", "commit_to_raw"),
            ("commit -> published view", "commit_to_published"),
            ("commit -> GET, read-your-writes", "commit_to_get_ryw"),
            ("commit -> GET, polling 50 ms", "commit_to_get_poll"),
            ("answer -> GET, read-your-writes", "answer_to_get_ryw"),
        ):
            print(f"  {label:<32} {describe(latencies(probes, *_ENDS[key]))}")
        print(
            f"  CPU ({os.cpu_count()} cores): "
            + ", ".join(
                f"{role} {used:.2f}" for role, used in sorted(window["cpu_cores"].items(), key=lambda item: -item[1])
            )
            + f"; {sum(window['cpu_cores'].values()):.2f} cores in all"
        )
    for kind, what in (
        ("replayed", "recorded SQL of the models"),
        ("dbt run", "models only"),
        ("dbt build", "models and tests"),
        ("publish", "an earlier file + changed rows"),
    ):
        matches = [m for m in (re.search(rf"{kind} ([0-9.]+)s(, ([0-9.]+)s on CPU)?", line) for line in cycles) if m]
        if matches:
            seconds, cpu = [float(m[1]) for m in matches], [float(m[3]) for m in matches if m[3]]
            on_cpu = f" ({statistics.median(cpu):.2f}s on CPU)" if cpu else ""
            print(
                f"  {kind:<9} per cycle: median {statistics.median(seconds):.2f}s{on_cpu}, max {max(seconds):.2f}s "
                f"(n={len(seconds)}; {what})"
            )
    result = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "windows": windows,
        "publications": watcher.builds,
        "cycles": len(cycles),
        "warm": warm,
        "serving": serving_refreshes(serve_log.read_text()),
    }
    (home / "last-freshness.json").write_text(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result))


_ENDS = {
    "commit_to_raw": ("loaded", "commit"),
    "commit_to_published": ("published", "commit"),
    "commit_to_get_ryw": ("ryw", "commit"),
    "commit_to_get_poll": ("poll", "commit"),
    "answer_to_get_ryw": ("ryw", "answered"),
}


if __name__ == "__main__":
    main()
