"""A small HTTP/1.1 client for sending JSON commands at a high rate from one Python process.

Each service gets a pool of keep-alive connections; a request takes an idle one (or opens one, up to
the pool's size) and gives it back when the answer is in. It spends a fraction of a general-purpose
client's CPU per request, which on a 2-core machine is CPU the services, Postgres and the CDC
pipeline under test get instead. It speaks just what the services answer: `Content-Length` or
chunked bodies, keep-alive, and `Connection: close`.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson


class Connection(asyncio.Protocol):
    """One keep-alive connection: `send` writes a request and returns the answer's status and body."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        answer = _parse(self.buffer)
        if answer is None:
            return
        status, body, consumed, keep_alive = answer
        del self.buffer[:consumed]
        if not keep_alive:
            self.close()
        self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse(buffer: bytearray) -> tuple[int, bytes, int, bool] | None:
    """(status, body, bytes consumed, keep-alive) once a whole answer is in `buffer`, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).split(b"\r\n")
    status = int(head[0][9:12])
    length, chunked, keep_alive = 0, False, not head[0].startswith(b"HTTP/1.0")
    for line in head[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep_alive = value.strip().lower() != b"close"
    start = end + 4
    if not chunked:
        if len(buffer) < start + length:
            return None
        return status, bytes(buffer[start : start + length]), start + length, keep_alive
    body, at = bytearray(), start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        if len(buffer) < line_end + 2 + size + 2:
            return None
        body += buffer[line_end + 2 : line_end + 2 + size]
        at = line_end + 2 + size + 2
        if size == 0:  # no trailers expected; skip any up to the blank line
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return None
            return status, bytes(body), max(at, trailer_end + 4), keep_alive


class Client:
    """JSON commands to one service over up to `size` keep-alive connections."""

    def __init__(self, base_url: str, headers: dict[str, str], *, size: int, timeout: float = 10.0) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.prefix = (
            f"Host: {self.host}:{self.port}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        ).encode()
        self.timeout = timeout
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(size)

    async def request(
        self, method: str, path: str, *, json: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, object]:
        """Send one command; return its status and decoded JSON answer (None when there is none).

        Raises ConnectionError or TimeoutError when no answer came; the connection is then dropped.
        """
        body = b"" if json is None else orjson.dumps(json)
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()).encode()
        content_type = b"Content-Type: application/json\r\n" if json is not None else b""
        raw = b"%s %s HTTP/1.1\r\n%s%s%sContent-Length: %d\r\n\r\n%s" % (
            method.encode(),
            path.encode(),
            self.prefix,
            extra,
            content_type,
            len(body),
            body,
        )
        async with self.slots:
            while True:
                conn, reused = await self._take()
                try:
                    status, answer = await asyncio.wait_for(conn.send(raw), self.timeout)
                    break
                except ConnectionError:
                    conn.close()
                    if not reused:
                        raise
                    # The server closed an idle connection as this request went out: send it again
                    # on another (commands carry an Idempotency-Key, so a resend writes nothing twice).
                except BaseException:
                    conn.close()
                    raise
            if not conn.closed:
                self.idle.append(conn)
        return status, orjson.loads(answer) if answer else None

    async def _take(self) -> tuple[Connection, bool]:
        """An idle connection (True) or a new one (False)."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn, True
        _, conn = await asyncio.get_running_loop().create_connection(Connection, self.host, self.port)
        return conn, False

    async def aclose(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
