"""SQL of the stock aggregate: an append-only event stream per product, with optional snapshots."""

from __future__ import annotations

from uuid import UUID

from services.common.tx import Tx
from services.inventory.domain import ProductNotFoundError, Stock, StockEvent, StreamVersionTaken

LOAD = """
select p.retired_at is not null, coalesce(s.version, 0), coalesce(s.on_hand, 0),
       (select jsonb_agg(jsonb_build_array(e.version, e.event_type, e.quantity, e.schema_version)
                         order by e.version)
        from stock_events e where e.stream = p.id and e.version > coalesce(s.version, 0))
from products p left join mirador.stock_snapshots s on s.stream = p.id
where p.id = %s
"""
"""One statement, so the snapshot and the events after it come from the same moment."""

APPEND = """
insert into stock_events (stream, version, event_type, quantity, reason, command_id, schema_version)
values (%(stream)s, %(version)s, %(event_type)s, %(quantity)s, %(reason)s, %(command_id)s, %(schema_version)s)
"""
SNAPSHOT = """
insert into mirador.stock_snapshots (stream, version, on_hand) values (%s, %s, %s)
on conflict (stream) do update set version = excluded.version, on_hand = excluded.on_hand, taken_at = now()
where stock_snapshots.version < excluded.version
"""

CONSTRAINT_ERRORS = {"stock_events_pkey": StreamVersionTaken}


async def load(tx: Tx, product_id: UUID) -> Stock:
    """The product's stock, folded from its latest snapshot and the events after it.

    Read without a lock: the append names the next version, and (stream, version) is unique.
    """
    row = await tx.read(LOAD, (product_id,))
    if row is None:
        raise ProductNotFoundError(f"no product has id {product_id}")
    retired, version, on_hand, events = row
    start = Stock(product_id, version, on_hand, retired)
    return Stock.fold(start, [StockEvent(product_id, v, kind, q, schema_version=sv) for v, kind, q, sv in events or ()])


def append(tx: Tx, event: StockEvent, after: Stock, snapshot_every: int) -> None:
    """Append `event` as the stream's next version; `after` is the stock it leads to."""
    tx.write(
        APPEND,
        {
            "stream": event.stream,
            "version": event.version,
            "event_type": event.event_type,
            "quantity": event.quantity,
            "reason": event.reason,
            "command_id": event.command_id,
            "schema_version": event.schema_version,
        },
    )
    if event.version % snapshot_every == 0:
        tx.write(SNAPSHOT, (event.stream, after.version, after.on_hand))
