"""Subscribers of mirador's live stream (`GET /views/<view>/changes`, Server-Sent Events): many idle
connections on one asyncio loop, each noting when each `change` event arrived and which build it
named. A raw HTTP/1.1 client (chunked transfer decoded by hand): a thousand httpx streams would cost
the client more CPU than the server spends sending them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Subscribers:
    host: str
    port: int
    path: str
    ready: int = 0
    failed: int = 0
    recording: bool = False
    received: list[tuple[str, float]] = field(default_factory=list)
    """(build id, wall-clock time it arrived) of each change event while `recording`."""
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def open(self, count: int, timeout: float, at_once: int = 200) -> int:
        """Open `count` more subscribers, `at_once` connecting at a time; how many got their `ready` event
        within `timeout` seconds."""
        before = self.ready
        gate = asyncio.Semaphore(at_once)
        deadline = time.monotonic() + timeout
        for _ in range(count):
            self.tasks.append(asyncio.create_task(self._subscribe(gate)))
        while self.ready + self.failed - before < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.ready - before

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    async def _subscribe(self, gate: asyncio.Semaphore) -> None:
        writer = None
        try:
            async with gate:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(
                    f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Accept: text/event-stream\r\n\r\n".encode()
                )
                status = await reader.readline()
                headers = b""
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    headers += line.lower()
                if b" 200 " not in status:
                    raise ConnectionError(status.decode(errors="replace").strip())
            await self._events(reader, b"transfer-encoding: chunked" in headers)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            self.failed += 1
        finally:
            if writer is not None:
                writer.close()

    async def _events(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        buffer, counted = b"", False
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    return
            arrived = time.time()
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if b"event: ready" in event and not counted:
                    self.ready, counted = self.ready + 1, True
                elif b"event: change" in event and self.recording:
                    self.received.append((_build_id(event), arrived))


def _build_id(event: bytes) -> str:
    marker = b'"build_id":"'
    start = event.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return event[start : event.find(b'"', start)].decode()
