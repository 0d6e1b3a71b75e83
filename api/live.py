"""`GET /views/{view}/changes`: Server-Sent Events, one per publication that changed the view, with its
build id, watermark and the primary keys upserted and deleted (ADR 20).

One poller per worker reads the serving copy's change log once per publication and hands each
subscriber its event: an idle subscriber is a coroutine awaiting a queue, nothing more. With filters
(the same as the view's), a subscriber gets the keys of rows that match now (upserted) and of rows
that matched before and no longer do, or are gone (deleted): the rows a page showing that filter must
redraw. `Last-Event-ID` (the event's id is the publication's sequence number in the copy) resumes
after a reconnect while the change log still holds what followed; otherwise the first event is
`reset`: reload the page, then follow.
"""

from __future__ import annotations

import asyncio
import json

import orjson

from api.catalogue import View
from api.query import BadQuery, Filter, parse_filters

KEEPALIVE = 15.0


class Subscriber:
    def __init__(self, view: View, filters: list[Filter]) -> None:
        self.view, self.filters = view, filters
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.key_positions = [i for i, c in enumerate(view.columns) if c.name in view.primary_key]
        self.signature = tuple((f.column.name, f.operator, f.value) for f in filters)


class Streams:
    def __init__(self, served, metrics) -> None:
        self.served, self.metrics = served, metrics
        self.by_view: dict[str, set[Subscriber]] = {}
        self.dispatched = None

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self.by_view.values())

    def close(self) -> None:
        for subscribers in self.by_view.values():
            for subscriber in subscribers:
                subscriber.queue.put_nowait(None)

    def publish(self) -> None:
        """A new publication reached the copy: hand its changes to the subscribers."""
        served = self.served
        if self.dispatched is None:
            self.dispatched = served.seq
            return
        if not self.subscribers:
            self.dispatched = served.seq
            return
        for seq, build_id, watermark, per_view in self.events(self.dispatched):
            for name, changes in per_view.items():
                made: dict[tuple, bytes] = {}  # subscribers with the same filters get the same event
                for subscriber in self.by_view.get(name, ()):
                    event = made.get(subscriber.signature)
                    if event is None:
                        event = made[subscriber.signature] = self.event_for(
                            subscriber, seq, build_id, watermark, changes
                        )
                    if event:
                        subscriber.queue.put_nowait(event)
        self.dispatched = served.seq

    def events(self, after: int):
        """(seq, build_id, watermark, {view: [(key, before, after)]}) for each publication after `after`."""
        conn = self.served.conn
        builds = conn.execute(
            "select seq, build_id, watermark from _builds where seq > ? order by seq", [after]
        ).fetchall()
        changes: dict[int, dict[str, list]] = {}
        for seq, view, key, before, after_row in conn.execute(
            "select seq, view, key, before, after from _changes where seq > ? order by seq", [after]
        ):
            changes.setdefault(seq, {}).setdefault(view, []).append(
                (json.loads(key), before and json.loads(before), after_row and json.loads(after_row))
            )
        for seq, build_id, watermark in builds:
            if seq in changes:
                yield seq, build_id, json.loads(watermark), changes[seq]

    def event_for(self, subscriber: Subscriber, seq: int, build_id: str, watermark: dict, changes: list) -> bytes:
        view, filters = subscriber.view, subscriber.filters
        key_columns = [view.by_name[k] for k in view.primary_key]

        def shown_key(key: list) -> dict:
            return {c.name: c.unstored(v) for c, v in zip(key_columns, key)}

        upserted, deleted = [], []
        for key, before, after in changes:
            matches_now = after is not None and all(f.matches(after) for f in filters)
            matched = before is not None and all(f.matches(before) for f in filters)
            if matches_now:
                upserted.append(shown_key(key))
            elif matched or (after is None and not filters):
                deleted.append(shown_key(key))
        if not upserted and not deleted:
            return b""
        data = orjson.dumps(
            {"build_id": build_id, "view": view.name, "watermark": watermark, "upserted": upserted, "deleted": deleted}
        )
        return b"id: %d\nevent: change\ndata: %s\n\n" % (seq, data)

    async def serve(self, scope, receive, send, view: View, params, cors: list) -> int:
        filters = parse_filters(view, [(k, v) for k, v in params if k not in ("last_event_id",)])
        last = None
        for name, value in scope["headers"]:
            if name == b"last-event-id":
                last = value.decode()
        last = dict(params).get("last_event_id", last)
        subscriber = Subscriber(view, filters)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                    *cors,
                ],
            }
        )
        served = self.served
        opening = b"retry: 1000\n"
        if last is not None:
            try:
                resume = int(last)
            except ValueError:
                raise BadQuery(f"Last-Event-ID {last!r} is not an id this stream sent", "bad_event_id") from None
            oldest = served.conn.execute("select min(seq) from _builds").fetchone()[0] or 0
            if resume + 1 < oldest or resume > served.seq:
                opening += b"id: %d\nevent: reset\ndata: %s\n\n" % (
                    served.seq,
                    orjson.dumps(
                        {
                            "build_id": served.build_id,
                            "reason": "the changes since that event are no longer kept: reload, then follow",
                        }
                    ),
                )
            else:
                for seq, build_id, watermark, per_view in self.events(resume):
                    if seq <= (self.dispatched or served.seq) and view.name in per_view:
                        opening += self.event_for(subscriber, seq, build_id, watermark, per_view[view.name])
        else:
            opening += b"id: %d\nevent: ready\ndata: %s\n\n" % (
                served.seq,
                orjson.dumps({"build_id": served.build_id, "watermark": served.watermark}),
            )
        self.by_view.setdefault(view.name, set()).add(subscriber)

        async def hang_up() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            subscriber.queue.put_nowait(None)

        watcher = asyncio.create_task(hang_up())
        try:
            await send({"type": "http.response.body", "body": opening, "more_body": True})
            while True:
                try:
                    event = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE)
                except TimeoutError:
                    event = b": keepalive\n\n"
                if event is None:
                    break
                await send({"type": "http.response.body", "body": event, "more_body": True})
        except OSError:
            pass
        finally:
            watcher.cancel()
            self.by_view[view.name].discard(subscriber)
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass
        return 200
