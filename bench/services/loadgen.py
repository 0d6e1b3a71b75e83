"""A lean closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending the next request
as soon as the last answer arrived. Lean so that on a 2-core machine the client's own CPU stays small
next to the server's."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

Request = tuple[bytes, bytes, bytes, bytes]
"""(method, path, body, extra header lines) of one request; the connection adds the rest."""


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    completed: int = 0
    """Every answer, the warm-up's included."""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def send(self, raw: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


async def run(host: str, port: int, token: str, make: Callable[[], Request], *, concurrency: int,
              seconds: float, warmup: float = 1.0) -> Result:
    """Drive `make()` requests for `warmup + seconds`; measure only the last `seconds`."""
    prefix = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    loop = asyncio.get_running_loop()
    result = Result()
    start = time.perf_counter() + warmup
    stop = start + seconds

    async def client() -> None:
        _, conn = await loop.create_connection(_Connection, host, port)
        try:
            while True:
                method, path, body, extra = make()
                raw = b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (
                    method, path, prefix.encode(), extra, len(body), body)
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                status = await conn.send(raw)
                t1 = time.perf_counter()
                result.completed += 1
                if t0 >= start:
                    result.latencies.append(t1 - t0)
                    result.statuses[status] += 1
        finally:
            conn.transport.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.seconds = seconds
    return result
