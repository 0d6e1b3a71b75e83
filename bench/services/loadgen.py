"""A lean HTTP/1.1 load generator over N keep-alive connections. Closed loop: each connection sends the
next request as soon as the last answer arrived (the most the server does). Paced (`rate`): requests
are due at a fixed rate and each goes out on the next free connection; its latency counts from when
it was due, so a stall delays the requests behind it and they say so (no coordinated omission). Lean
so that on a 2-core machine the client's own CPU stays small next to the server's."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from traffic.http import Connection

Request = tuple[bytes, bytes, bytes, bytes]
"""(method, path, body, extra header lines) of one request; the connection adds the rest."""


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    completed: int = 0
    """Every answer, the warm-up's included."""
    answered: int | None = None
    """Paced: the answers that arrived within the measured window (a service that falls behind answers
    fewer than were due)."""

    @property
    def rate(self) -> float:
        done = len(self.latencies) if self.answered is None else self.answered
        return done / self.seconds if self.seconds else 0.0

    def record(self, t0: float, t1: float, status: int, measured_from: float) -> None:
        """One answer: counted always, its latency and status kept once the warm-up is over."""
        self.completed += 1
        if t0 >= measured_from:
            self.latencies.append(t1 - t0)
            self.statuses[status] += 1

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def run(
    host: str,
    port: int,
    token: str,
    make: Callable[[], Request],
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
    rate: float | None = None,
) -> Result:
    """Drive `make()` requests for `warmup + seconds`, closed loop or `rate` a second; measure only the
    last `seconds`."""
    prefix = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    loop = asyncio.get_running_loop()
    result = Result()
    began = time.perf_counter()
    start = began + warmup
    stop = start + seconds
    sent = 0
    if rate is not None:
        result.answered = 0

    async def due() -> float:
        """When the next request is due: now, closed loop; paced, its slot (waited for if ahead)."""
        nonlocal sent
        if rate is None:
            return time.perf_counter()
        slot = began + sent / rate
        sent += 1
        if (ahead := slot - time.perf_counter()) > 0:
            await asyncio.sleep(ahead)
        return slot

    async def client() -> None:
        _, conn = await loop.create_connection(Connection, host, port)
        try:
            while True:
                method, path, body, extra = make()
                raw = b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
                    method,
                    path,
                    prefix.encode(),
                    extra,
                    len(body),
                    body,
                )
                t0 = await due()
                if t0 >= stop:
                    return
                status, _ = await conn.send(raw)
                t1 = time.perf_counter()
                result.record(t0, t1, status, start)
                if rate is not None and start <= t1 < stop:
                    result.answered += 1
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = seconds
    return result
