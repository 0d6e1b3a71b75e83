"""The measurements, each bounded in time: the same rows from every server, the cost of a publication
to each mirador process, the HTTP scenarios under wrk, and the live stream's subscribers."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from bench.api import load, procs
from bench.api.servers import SCENARIOS, TABLE, Server
from bench.api.sse import Subscribers


def publications(log: Path) -> dict[str, float]:
    """build id -> when it was published (wall clock), from the publisher's log."""
    found = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            found[entry["build_id"]] = datetime.fromisoformat(entry["published_at"]).timestamp()
    return found


def published_between(log: Path, start: float, end: float) -> int:
    return sum(1 for at in publications(log).values() if start <= at <= end)


def same_rows(servers: list[Server], keys: Path, customers: Path, samples: int = 5) -> list[str]:
    """Ask every server for the same few keys, customer pages and the first page; what differs."""
    picks = {
        "key": keys.read_text().split()[:samples],
        "customer": customers.read_text().split()[:samples],
        "first": [""],
    }
    problems = []
    with httpx.Client(timeout=30) as client:
        for scenario, values in picks.items():
            for value in values:
                seen = {}
                for server in servers:
                    response = client.get(server.base + server.paths[scenario].replace("{}", value))
                    if response.status_code != 200:
                        problems.append(
                            f"{server.name} {scenario} {value}: {response.status_code} {response.text[:200]}"
                        )
                        continue
                    seen[server.name] = server.order_ids(scenario, response.json())
                if len({tuple(ids) for ids in seen.values()}) > 1:
                    problems.append(
                        f"{scenario} {value}: " + "; ".join(f"{n}: {ids[:3]}..." for n, ids in seen.items())
                    )
                if not any(seen.values()):
                    problems.append(f"{scenario} {value}: no rows from anyone")
    return problems


@dataclass
class Cost:
    seconds: float
    publications: int
    rows: list[tuple[str, float, float, float]] = field(default_factory=list)
    """(process, RSS MB at the end, CPU ms per second without publications, CPU ms per publication beyond
    that)."""


def idle_cpu(server: Server, seconds: float) -> dict[int, float]:
    """CPU seconds per second of each of the server's processes, with no publications and no requests,
    once the first copy's aftermath (a checkpoint, freeing the rows) is over: at most 0.1 CPU s in a second
    of each process, waiting up to 3 minutes for it."""
    pids = list(procs.workers(server.pid))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        before = {pid: procs.cpu_seconds(pid) for pid in pids}
        time.sleep(1.0)
        if all(procs.cpu_seconds(pid) - before[pid] < 0.1 for pid in pids):
            break
    before = {pid: procs.cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)
    return {pid: (procs.cpu_seconds(pid) - before[pid]) / seconds for pid in pids}


def publication_cost(server: Server, idle: dict[int, float], publisher_pid: int, log: Path, seconds: float) -> Cost:
    """CPU of each mirador process (and of the publisher) per publication, with no requests: what it
    spends beyond its `idle` rate (polling), over the publications switched meanwhile."""
    roles = procs.workers(server.pid)
    watched = {**{pid: f"serve {role}" for pid, role in roles.items()}, publisher_pid: "publisher (publish())"}
    before = {pid: procs.cpu_seconds(pid) for pid in watched}
    start = time.time()
    time.sleep(seconds)
    end = time.time()
    count = published_between(log, start, end)
    cost = Cost(end - start, count)
    for pid, role in watched.items():
        base = idle.get(pid, 0.0)
        spent = procs.cpu_seconds(pid) - before[pid] - base * (end - start)
        cost.rows.append((role, procs.rss_mb(pid), 1000 * base, 1000 * spent / count if count else float("nan")))
    return cost


@dataclass
class Sample:
    result: load.Result
    peak_rss_mb: float
    publications_per_second: float
    fresh_ms: list[float] = field(default_factory=list)
    """Per publication switched during the run, how long after it the server answered with it (mirador)."""


class FreshnessProbe(threading.Thread):
    """Asks for one row every `every` seconds, beside the load, and notes when each build id first
    answers (the `mirador-build` header of a response is the build its rows come from)."""

    def __init__(self, server: Server, path: str, every: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.url, self.every = server.base + path, every
        self.first_seen: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.done.is_set():
                try:
                    build = client.get(self.url).headers.get("mirador-build")
                except httpx.HTTPError:
                    build = None
                if build and build not in self.first_seen:
                    self.first_seen[build] = time.time()
                self.done.wait(self.every)

    def latencies_ms(self, log: Path, start: float, end: float, until: float) -> list[float]:
        """Per publication switched between `start` and `end`, ms until a response came from it or from a
        later one (a copy that falls behind skips publications); one not served by `until` counts as
        served then."""
        published = sorted(publications(log).items(), key=lambda item: item[1])
        latencies = []
        for index, (_, at) in enumerate(published):
            if start <= at <= end:
                seen = [self.first_seen[b] for b, _ in published[index:] if b in self.first_seen]
                latencies.append(1000 * ((min(seen) if seen else until) - at))
        return sorted(latencies)

    def __enter__(self) -> FreshnessProbe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(timeout=12)


def http_rounds(
    servers: list[Server],
    items: dict[str, Path | None],
    log: Path,
    *,
    runs: int,
    seconds: float,
    warm: float,
    script: Path,
    threads: int,
    connections: int,
    say,
) -> dict[tuple[str, str], list[Sample]]:
    """`runs` rounds; in each, every scenario against every server in turn (so drift hits all alike)."""
    samples: dict[tuple[str, str], list[Sample]] = {}
    fixed = (items["key"].read_text().split() or [""])[0]
    for round_ in range(runs):
        for scenario in SCENARIOS:
            for server in servers:
                template = server.paths[scenario]
                if round_ == 0 and warm:
                    load.run(
                        server.base,
                        template,
                        items[scenario],
                        warm,
                        script=script,
                        threads=threads,
                        connections=connections,
                    )
                probe = FreshnessProbe(server, server.paths["key"].replace("{}", fixed)) if server.follows else None
                start = time.time()
                with procs.PeakRss(server.pid) as rss, probe or nullcontext():
                    result = load.run(
                        server.base,
                        template,
                        items[scenario],
                        seconds,
                        script=script,
                        threads=threads,
                        connections=connections,
                    )
                end = time.time()
                # Publications switched up to 1 s before the end: the probe had time to see them.
                fresh = probe.latencies_ms(log, start, end - 1.0, end) if probe else []
                sample = Sample(result, rss.peak, published_between(log, start, end) / (end - start), fresh)
                samples.setdefault((server.name, scenario), []).append(sample)
                served = (
                    f"; publication served after p50 {percentile(fresh, 50):.0f} ms, max {max(fresh):.0f} ms"
                    if fresh
                    else ""
                )
                say(
                    f"  run {round_ + 1}/{runs} {server.name:<10} {SCENARIOS[scenario]:<14} {result.rate:>9,.0f} req/s "
                    f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:7.2f} ms errors {result.errors}{served}"
                )
    return samples


@dataclass
class Live:
    subscribers: int
    ready: int
    held: dict[str, int]
    latencies_ms: list[float]
    single_ms: list[float]
    """Latencies with one subscriber, before the others connect: the floor."""
    window_publications: int
    events: int
    idle_target: int
    idle_ready: int
    idle_held: dict[str, int]
    rss_before: dict[str, float]
    rss_after: dict[str, float]
    failed: int
    client_cpu: float
    """CPU seconds the subscribers' client (this process) spent while they were measured."""

    @property
    def coverage(self) -> float:
        expected = self.ready * self.window_publications
        return self.events / expected if expected else float("nan")


GRACE = 3.0
"""Seconds events are still recorded after a window closes, for the publications switched in it."""


def live_stream(server: Server, log: Path, *, subscribers: int, idle: int, seconds: float) -> Live:
    return asyncio.run(_live_stream(server, log, subscribers, idle, seconds))


async def _record(subs: Subscribers, log: Path, seconds: float) -> tuple[list[float], int]:
    """Latencies of the events for the publications switched in the next `seconds`, and how many."""
    subs.received.clear()
    subs.recording, start = True, time.time()
    await asyncio.sleep(seconds + GRACE)
    subs.recording = False
    published = publications(log)
    window = {build for build, at in published.items() if start <= at <= start + seconds}
    latencies = sorted(1000 * (arrived - published[build]) for build, arrived in subs.received if build in window)
    return latencies, len(window)


async def _live_stream(server: Server, log: Path, subscribers: int, idle: int, seconds: float) -> Live:
    roles = {pid: role for pid, role in procs.workers(server.pid).items() if role != "main"}

    def held() -> dict[str, int]:
        return {roles[pid]: n for pid, n in procs.connections(list(roles), server.port).items()}

    rss_before = {role: procs.rss_mb(pid) for pid, role in roles.items()}
    path = f"/views/{TABLE}/changes"
    single, subs = Subscribers("127.0.0.1", server.port, path), Subscribers("127.0.0.1", server.port, path)
    try:
        await single.open(1, timeout=30)
        single_ms, _ = await _record(single, log, seconds)
        await single.close()
        ready = await subs.open(subscribers, timeout=60)
        at_latency = held()
        cpu = time.process_time()
        latencies, window = await _record(subs, log, seconds)
        cpu = time.process_time() - cpu
        idle_ready = ready + (await subs.open(idle - subscribers, timeout=120) if idle > subscribers else 0)
        await asyncio.sleep(1.0)
        at_idle = held()
        rss_after = {role: procs.rss_mb(pid) for pid, role in roles.items()}
    finally:
        await single.close()
        await subs.close()
    return Live(
        subscribers,
        ready,
        at_latency,
        latencies,
        single_ms,
        window,
        len(latencies),
        idle,
        idle_ready,
        at_idle,
        rss_before,
        rss_after,
        subs.failed,
        cpu,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q / 100 * len(values)))]
