"""Sending the shop's commands at a steady rate and reporting commands/s, latency and errors."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from traffic.http import Client
from traffic.shop import Call, Shop

REFUSED = {409, 412}
"""Answers a busy shop expects now and then: a rule or a concurrent change said no."""


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)
    """5xx answers by status and problem type (`503 urn:mirador:problem:database_unavailable`); a 5xx
    without an RFC 9457 body counts under `<status> -`."""

    def add(self, seconds: float, status: int, answer: object = None) -> None:
        self.latencies.append(seconds)
        self.statuses[status] += 1
        if status >= 500:
            kind = answer.get("type") if isinstance(answer, dict) else None
            self.problems[f"{status} {kind or '-'}"] += 1

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0.0

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s == 0 or s >= 500)

    @property
    def refused(self) -> int:
        return sum(n for s, n in self.statuses.items() if s in REFUSED)

    @property
    def rejected(self) -> int:
        """4xx other than refusals: the simulator sent something the service found wrong."""
        return sum(n for s, n in self.statuses.items() if 400 <= s < 500 and s not in REFUSED)


@dataclass
class Report:
    seconds: float
    total: Stats
    by_kind: dict[str, Stats]

    @property
    def rate(self) -> float:
        return len(self.total.latencies) / self.seconds if self.seconds else 0.0


async def simulate(
    urls: dict[str, str],
    tokens: dict[str, str],
    *,
    rate: float,
    duration: float,
    seed: int,
    concurrency: int = 64,
    tick: Callable[[float, Stats], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Report:
    """Send about `rate` commands a second for `duration` seconds, or until `stop` is set; call `tick`
    each second. Commands in flight are answered before it returns."""
    shop = Shop(seed)
    total, by_kind, window = Stats(), defaultdict(Stats), Stats()
    follow_ups: list[Call] = []
    limit = asyncio.Semaphore(concurrency)
    clients = {
        name: Client(url, {"Authorization": f"Bearer {tokens[name]}"}, size=concurrency) for name, url in urls.items()
    }

    async def send(call: Call) -> None:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        if call.if_match is not None:
            headers["If-Match"] = f'"{call.if_match}"'
        t0 = time.perf_counter()
        try:
            status, answer = await clients[call.service].request(
                call.method, call.path, json=call.body, headers=headers
            )
        except (OSError, TimeoutError, ValueError):
            status, answer = 0, {}
        finally:
            limit.release()
        seconds = time.perf_counter() - t0
        for stats in (total, by_kind[call.kind], window):
            stats.add(seconds, status, answer)
        follow_ups.extend(shop.learn(call, status, answer if isinstance(answer, dict) else {}))

    start = time.perf_counter()
    next_tick = start + 1
    tasks: set[asyncio.Task] = set()
    try:
        for n in range(int(rate * duration)):
            due = start + n / rate
            if (now := time.perf_counter()) < due:
                if stop is None:
                    await asyncio.sleep(due - now)
                else:
                    try:
                        await asyncio.wait_for(stop.wait(), due - now)
                    except TimeoutError:
                        pass
            if stop is not None and stop.is_set():
                break
            if tick and time.perf_counter() >= next_tick:
                tick(next_tick - start, window)
                window, next_tick = Stats(), next_tick + 1
            await limit.acquire()
            call = follow_ups.pop(0) if follow_ups else shop.next_call()
            shop.begin(call)
            task = asyncio.create_task(send(call))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        for client in clients.values():
            await client.aclose()
    return Report(time.perf_counter() - start, total, dict(by_kind))
