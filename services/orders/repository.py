"""SQL of the order aggregate: the order row and its lines."""

from __future__ import annotations

from uuid import UUID

import orjson

from services.common.tx import Tx
from services.orders.domain import PLACED, LineNumberTaken, Order, OrderNotFoundError
from services.orders.models import OrderCreate, OrderLineCreate

INSERT_ORDER = """
insert into orders (id, customer_id, currency, status, last_line_no)
values (%(id)s, %(customer_id)s, %(currency)s, %(status)s, %(last_line_no)s)
"""
INSERT_LINES = """
insert into order_lines (order_id, line_no, product_id, quantity, unit_price)
select %(order_id)s, line_no, product_id, quantity, unit_price
from rows from (jsonb_to_recordset(%(lines)s::jsonb) as (product_id uuid, quantity int, unit_price numeric))
     with ordinality as line (product_id, quantity, unit_price, line_no)
"""
"""All lines in one statement, numbered 1.. in the order given; passed as one JSON array."""
INSERT_LINE = """
insert into order_lines (order_id, line_no, product_id, quantity, unit_price)
values (%(order_id)s, %(line_no)s, %(product_id)s, %(quantity)s, %(unit_price)s)
"""
READ = """
select status, version, last_line_no, array(select line_no from order_lines where order_id = o.id order by 1)
from orders o where id = %s
"""
MOVE = """
update orders
set status = %(status)s, version = %(version)s, updated_at = now(),
    paid_at = case when %(status)s = 'paid' then now() else paid_at end,
    shipped_at = case when %(status)s = 'shipped' then now() else shipped_at end,
    cancelled_at = case when %(status)s = 'cancelled' then now() else cancelled_at end,
    cancel_reason = coalesce(%(reason)s, cancel_reason)
where id = %(id)s and version = %(version)s - 1
returning 1
"""
LINES_CHANGED = """
update orders set version = %(version)s, last_line_no = %(last_line_no)s, updated_at = now()
where id = %(id)s and version = %(version)s - 1
returning 1
"""
"""Guarded, as MOVE (`Tx.write(..., guard=True)`): it names the version the command read. The lines
change only with it, in the same statement."""
DELETE_LINE = "delete from order_lines where order_id = %s and line_no = %s"

CONSTRAINT_ERRORS = {"order_lines_pkey": LineNumberTaken}
"""Two commands adding a line at once both number it after the last one they read: the second to
write meets the first's line before its guarded write finds the order's new version."""


def insert(tx: Tx, order_id: UUID, data: OrderCreate) -> None:
    tx.write(
        INSERT_ORDER,
        {
            "id": order_id,
            "customer_id": data.customer_id,
            "currency": data.currency,
            "status": PLACED,
            "last_line_no": len(data.lines),
        },
    )
    lines = orjson.dumps([line.model_dump(mode="json") for line in data.lines]).decode()
    tx.write(INSERT_LINES, {"order_id": order_id, "lines": lines})


async def load(tx: Tx, order_id: UUID) -> Order:
    row = await tx.read(READ, (order_id,))
    if row is None:
        raise OrderNotFoundError(f"no order has id {order_id}")
    status, version, last_line_no, line_nos = row
    return Order(order_id, status, version, last_line_no, tuple(line_nos))


def move(tx: Tx, order_id: UUID, status: str, version: int, reason: str | None = None) -> None:
    tx.write(MOVE, {"id": order_id, "status": status, "version": version, "reason": reason}, guard=True)


def add_line(tx: Tx, order: Order, line_no: int, line: OrderLineCreate, version: int) -> None:
    tx.write(INSERT_LINE, {"order_id": order.id, "line_no": line_no, **line.model_dump()})
    tx.write(LINES_CHANGED, {"version": version, "last_line_no": line_no, "id": order.id}, guard=True)


def remove_line(tx: Tx, order: Order, line_no: int, version: int) -> None:
    tx.write(DELETE_LINE, (order.id, line_no))
    tx.write(LINES_CHANGED, {"version": version, "last_line_no": order.last_line_no, "id": order.id}, guard=True)
