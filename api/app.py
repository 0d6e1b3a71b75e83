"""The read API: a bare ASGI app over the serving copy. GET only; routes stay thin: parse, one query,
one serializer (ADR 20).

Each worker keeps one read-only SQLite connection and a poller task that notices a new publication in
the copy within `poll_seconds` (`pragma data_version`), then wakes read-your-writes waiters and feeds
the live streams. Requests that wait hold no worker: they await an event.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from pathlib import Path
from urllib.parse import parse_qsl

import orjson

from api import formats, live
from api.catalogue import View
from api.configuration import ApiSettings
from api.metrics import Metrics
from api.openapi import docs_page, document
from api.query import BadQuery, parse, parse_key
from api.store import connect, load_views, table_of

log = logging.getLogger(__name__)
PAGE = Path(__file__).parent / "page" / "index.html"
PROBLEM = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, problem: str, detail: str, headers: dict | None = None, **extra) -> None:
        super().__init__(detail)
        self.status, self.problem, self.detail, self.headers, self.extra = status, problem, detail, headers or {}, extra


def parse_lsn(text: str) -> int:
    if "/" in text:
        high, low = text.split("/", 1)
        return (int(high, 16) << 32) + int(low, 16)
    return int(text)


class Served:
    """What this worker knows of the serving copy: the newest build and the views."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.conn = None
        self.version = None
        self.seq, self.build_id, self.watermark, self.published_at = 0, None, {}, None
        self.views: dict[str, View] = {}
        self.view_versions: dict[str, tuple[int, int]] = {}
        self.changed = asyncio.Event()
        self.cache: dict[tuple, tuple] = {}

    def open(self) -> bool:
        if self.conn is None:
            if not self.settings.serving.exists():
                return False
            self.conn = connect(self.settings.serving, readonly=True)
        return True

    def poll(self) -> bool:
        """Catch up with the copy; True when it moved."""
        if not self.open():
            return False
        version = self.conn.execute("pragma data_version").fetchone()[0]
        if version == self.version:
            return False
        self.version = version
        try:
            row = self.conn.execute(
                "select seq, build_id, watermark, published_at from _builds order by seq desc limit 1"
            ).fetchone()
        except Exception:  # noqa: BLE001 - the refresher has not made its schema yet
            self.version = None
            return False
        if row is None:
            return False
        moved = (row[0], row[2]) != (self.seq, json.dumps(self.watermark, sort_keys=True))
        self.seq, self.build_id, self.watermark, self.published_at = row[0], row[1], json.loads(row[2]), row[3]
        versions = {
            name: (version, count)
            for name, version, count in self.conn.execute("select name, version, row_count from _views")
        }
        if versions.keys() != self.view_versions.keys() or any(
            versions[n][0] != self.view_versions[n][0] for n in versions
        ):
            self.views = load_views(self.conn)
            self.cache.clear()
        self.view_versions = versions
        if moved:
            self.changed.set()
            self.changed = asyncio.Event()
        return moved

    def reached(self, positions: dict[str, int]) -> bool:
        for service, lsn in positions.items():
            mark = self.watermark.get(service) or {}
            if mark.get("lsn") is None or mark["lsn"] < lsn:
                return False
        return True

    def headers(self) -> list[tuple[bytes, bytes]]:
        marks = ", ".join(
            f"{service}={mark.get('lsn')}@{mark.get('commit_ts')}" for service, mark in sorted(self.watermark.items())
        )
        return [(b"mirador-build", (self.build_id or "").encode()), (b"mirador-watermark", marks.encode())]


class App:
    def __init__(self, settings: ApiSettings | None = None) -> None:
        self.settings = settings or ApiSettings()
        self.served = Served(self.settings)
        self.metrics = Metrics()
        self.streams = live.Streams(self.served, self.metrics)
        self.tokens = {t.get_secret_value() for t in self.settings.tokens}
        origins = self.settings.cors_origins
        self.any_origin = "*" in origins
        self.origins = {o.encode() for o in origins}
        self.poller: asyncio.Task | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route, status = "other", 500
        try:
            route, status = await self._handle(scope, receive, send)
        except Problem as problem:
            status = problem.status
            await self._problem(scope, send, problem)
        except BadQuery as err:
            status = 400
            await self._problem(scope, send, Problem(400, err.problem, str(err), **err.extra))
        finally:
            self.metrics.observe(route, status, time.perf_counter() - started)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.poller = asyncio.create_task(self._poll())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.poller:
                    self.poller.cancel()
                self.streams.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _poll(self) -> None:
        while True:
            try:
                if self.served.poll():
                    self.streams.publish()
            except Exception:  # noqa: BLE001 - keep polling: the copy may be between schemas
                log.exception("reading the serving copy failed")
            await asyncio.sleep(self.settings.poll_seconds)

    # -- routing ---------------------------------------------------------------------------------

    async def _handle(self, scope, receive, send) -> tuple[str, int]:
        method, path = scope["method"], scope["path"]
        if method == "OPTIONS":
            await self._send(
                scope,
                send,
                204,
                b"",
                extra=[
                    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
                    (b"access-control-allow-headers", b"authorization, if-none-match, last-event-id, mirador-after"),
                    (b"access-control-max-age", b"600"),
                ],
            )
            return "preflight", 204
        if method not in ("GET", "HEAD"):
            raise Problem(
                405,
                "method_not_allowed",
                "the read API answers GET only: commands go to the write services",
                headers={"allow": "GET, HEAD, OPTIONS"},
            )
        if path == "/healthz":
            await self._json(scope, send, 200, b'{"status":"ok"}')
            return "healthz", 200
        if path == "/readyz":
            return "readyz", await self._readyz(scope, send)
        if path == "/metrics":
            self.metrics.gauges(self.served, self.streams)
            await self._send(scope, send, 200, self.metrics.render(), b"text/plain; version=0.0.4")
            return "metrics", 200
        if path == "/":
            await self._send(scope, send, 200, PAGE.read_bytes(), b"text/html; charset=utf-8")
            return "page", 200
        if path == "/openapi.json":
            self.served.poll()
            await self._json(scope, send, 200, orjson.dumps(document(self.served.views)))
            return "openapi", 200
        if path == "/docs":
            await self._send(scope, send, 200, docs_page(), b"text/html; charset=utf-8")
            return "docs", 200
        parts = path.strip("/").split("/")
        if parts[0] != "views" or len(parts) > 3:
            raise Problem(404, "not_found", f"no route {path}: see /openapi.json")
        self._authorize(scope)
        self.served.poll()
        if len(parts) == 1:
            await self._views(scope, send)
            return "views", 200
        view = self.served.views.get(parts[1])
        if view is None:
            if self.served.build_id is None:
                raise Problem(
                    503,
                    "not_published",
                    "nothing is served yet: the warehouse has not published, or "
                    "`mirador serve` is still loading the first publication",
                    headers={"retry-after": "1"},
                )
            raise Problem(404, "unknown_view", f"no view {parts[1]!r}", view=parts[1], views=sorted(self.served.views))
        params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        if len(parts) == 3 and parts[2] == "changes":
            return "changes", await self.streams.serve(scope, receive, send, view, params, self._cors(scope))
        await self._wait_for_positions(scope, params)
        if len(parts) == 3:
            return "row", await self._row(scope, send, view, parts[2])
        return "rows", await self._rows(scope, send, view, params)

    def _authorize(self, scope) -> None:
        if not self.tokens:
            return
        for name, value in scope["headers"]:
            if name == b"authorization" and value.startswith(b"Bearer ") and value[7:].decode() in self.tokens:
                return
        raise Problem(
            401,
            "unauthorized",
            "this API needs `Authorization: Bearer <token>`",
            headers={"www-authenticate": "Bearer"},
        )

    async def _readyz(self, scope, send) -> int:
        self.served.poll()
        if self.served.build_id is None:
            raise Problem(503, "not_published", "no publication is served yet")
        from datetime import datetime

        age = time.time() - datetime.fromisoformat(self.served.published_at).timestamp()
        if age > self.settings.ready_max_age:
            raise Problem(
                503,
                "stale",
                f"the newest publication is {age:.0f}s old (more than "
                f"MIRADOR_API_READY_MAX_AGE={self.settings.ready_max_age:.0f})",
            )
        await self._json(
            scope,
            send,
            200,
            orjson.dumps({"status": "ready", "build_id": self.served.build_id, "age_seconds": round(age, 3)}),
        )
        return 200

    async def _wait_for_positions(self, scope, params: list[tuple[str, str]]) -> None:
        """Read-your-writes: wait until the served publication includes the positions named."""
        wanted, wait = [], None
        for name, value in params:
            if name == "after":
                wanted.append(value)
            elif name == "wait":
                try:
                    wait = float(value)
                except ValueError:
                    raise Problem(400, "bad_wait", f"wait must be seconds, not {value!r}") from None
        wanted += [v.decode() for n, v in scope["headers"] if n == b"mirador-after"]
        if not wanted:
            return
        positions: dict[str, int] = {}
        for item in ",".join(wanted).split(","):
            service, _, lsn = item.strip().partition(":")
            try:
                positions[service] = max(positions.get(service, 0), parse_lsn(lsn))
            except ValueError:
                raise Problem(
                    400,
                    "bad_position",
                    f"after takes <service>:<lsn> (an `lsn` a command returned, like orders:0/16B3748), not {item!r}",
                ) from None
        limit = min(self.settings.wait_default if wait is None else wait, self.settings.wait_max)
        deadline = time.monotonic() + limit
        self.metrics.waiters += 1
        try:
            while not self.served.reached(positions):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Problem(
                        503,
                        "not_yet_visible",
                        f"the views do not include {', '.join(f'{s}:{lsn}' for s, lsn in positions.items())} "
                        f"after {limit:g}s: retry, or wait longer with `wait` (at most "
                        f"{self.settings.wait_max:g}s)",
                        headers={"retry-after": "1"},
                        watermark=self.served.watermark,
                        build_id=self.served.build_id,
                    )
                try:
                    await asyncio.wait_for(self.served.changed.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            self.metrics.waiters -= 1

    # -- views -----------------------------------------------------------------------------------

    async def _views(self, scope, send) -> None:
        served = self.served
        body = {
            "build_id": served.build_id,
            "published_at": served.published_at,
            "watermark": served.watermark,
            "views": [
                {**view.describe(), "row_count": served.view_versions.get(name, (0, 0))[1], "url": f"/views/{name}"}
                for name, view in sorted(served.views.items())
            ],
        }
        await self._json(scope, send, 200, orjson.dumps(body), extra=served.headers())

    def _etag(self, view: View, scope) -> bytes:
        version = self.served.view_versions.get(view.name, (0, 0))[0]
        digest = hashlib.blake2b(scope["path"].encode() + b"?" + scope["query_string"], digest_size=6).hexdigest()
        return f'"{version}-{digest}"'.encode()

    def _not_modified(self, scope, etag: bytes) -> bool:
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                return etag in [v.strip() for v in value.split(b",")] or value.strip() == b"*"
        return False

    async def _rows(self, scope, send, view: View, params) -> int:
        accept = formats.negotiate(scope, params)
        etag = self._etag(view, scope)
        headers = [(b"etag", etag), *self.served.headers()]
        if self._not_modified(scope, etag):
            await self._send(scope, send, 304, b"", extra=headers)
            return 304
        version = self.served.view_versions.get(view.name, (0, 0))[0]
        cache_key = (view.name, scope["query_string"], accept)
        hit = self.served.cache.get(cache_key)
        if hit is not None and hit[0] == version:
            await self._send(scope, send, 200, hit[1], hit[2], extra=headers + hit[3])
            return 200
        query = parse(view, params)
        sql, args = query.page_sql()
        rows = self.served.conn.execute(sql, args).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = query.cursor(rows[-1][1:]) if more else None
        extra = []
        if cursor:
            link = _next_link(scope, params, cursor)
            extra.append((b"link", f'<{link}>; rel="next"'.encode()))
        count = None
        if query.count:
            count_sql, count_args = query.count_sql()
            count = await asyncio.get_running_loop().run_in_executor(None, _count, self.settings, count_sql, count_args)
            extra.append((b"x-total-count", str(count).encode()))
        body, content_type = formats.render(accept, view, query, [r[0] for r in rows], cursor, count)
        if len(self.served.cache) > 10_000:
            self.served.cache.clear()
        self.served.cache[cache_key] = (version, body, content_type, extra)
        await self._send(scope, send, 200, body, content_type, extra=headers + extra)
        return 200

    async def _row(self, scope, send, view: View, text: str) -> int:
        key = parse_key(view, text)
        etag = self._etag(view, scope)
        headers = [(b"etag", etag), *self.served.headers()]
        match = " and ".join(f'"{k}" = ?' for k in view.primary_key)
        row = self.served.conn.execute(f"select _json from {table_of(view.name)} where {match}", key).fetchone()
        if row is None:
            raise Problem(
                404,
                "row_not_found",
                f"{view.name} has no row with {', '.join(view.primary_key)} = {text}",
                view=view.name,
                key=text,
            )
        if self._not_modified(scope, etag):
            await self._send(scope, send, 304, b"", extra=headers)
            return 304
        await self._json(scope, send, 200, row[0], extra=headers)
        return 200

    # -- responses -------------------------------------------------------------------------------

    def _cors(self, scope) -> list[tuple[bytes, bytes]]:
        for name, value in scope["headers"]:
            if name == b"origin":
                if self.any_origin or value in self.origins:
                    return [
                        (b"access-control-allow-origin", value),
                        (b"vary", b"Origin"),
                        (
                            b"access-control-expose-headers",
                            b"etag, link, mirador-build, mirador-watermark, x-total-count, retry-after",
                        ),
                    ]
                return []
        return []

    async def _send(
        self,
        scope,
        send,
        status: int,
        body: bytes,
        content_type: bytes = b"application/json",
        extra: list | None = None,
    ) -> None:
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", self.settings.cache_control.encode()),
            *self._cors(scope),
            *(extra or []),
        ]
        if status == 304:
            headers = [h for h in headers if h[0] not in (b"content-type", b"content-length")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" or status == 304 else body})

    async def _json(self, scope, send, status: int, body: bytes, extra: list | None = None) -> None:
        await self._send(scope, send, status, body, b"application/json", extra)

    async def _problem(self, scope, send, problem: Problem) -> None:
        body = {
            "type": f"urn:mirador:problem:{problem.problem}",
            "title": problem.problem.replace("_", " "),
            "status": problem.status,
            "detail": problem.detail,
            **problem.extra,
        }
        extra = [(k.encode(), v.encode()) for k, v in problem.headers.items()]
        await self._send(scope, send, problem.status, orjson.dumps(body, default=str), PROBLEM.encode(), extra)


def _count(settings: ApiSettings, sql: str, args: list) -> int:
    conn = connect(settings.serving, readonly=True)
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


def _next_link(scope, params, cursor: str) -> str:
    from urllib.parse import urlencode

    kept = [(k, v) for k, v in params if k not in ("cursor", "after", "wait")] + [("cursor", cursor)]
    return f"{scope['path']}?{urlencode(kept)}"


def create_app() -> App:
    """uvicorn's factory (`mirador serve`)."""
    return App()
