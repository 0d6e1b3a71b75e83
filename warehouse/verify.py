"""Reconciliation: recompute every view table straight from the services' Postgres databases and compare.

`mirador verify` reads each service database's current LSN, waits until the published watermark has
reached it for every service, copies the source tables out of Postgres (COPY, as text) and computes
each mart's figures with SQL written independently of the dbt models. Any difference is printed and
makes the exit code 1. Run it while no commands are being written: a write after the LSN is read can
show up on one side only.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psycopg

from cdc import postgres
from cdc.config import StackSettings
from warehouse.exceptions import TransientError
from warehouse.publish import Publication, current_publication

SOURCES = {
    # service: {table: columns the recomputation reads (all of them when the table exists)}
    "customers": {"customers": ["id", "name", "email"]},
    "orders": {
        "orders": ["id", "customer_id", "status"],
        "order_lines": ["order_id", "line_no", "quantity", "unit_price"],
    },
    "invoices": {"invoices": ["id", "order_id", "status", "amount", "document_url", "issued_at"]},
    "inventory": {
        "products": ["id", "sku", "name", "list_price", "retired_at"],
        "stock_events": ["stream", "version", "event_type", "quantity"],
    },
}

# Each mart recomputed from the copied source tables (`<service>_<table>`, every column text).
EXPECTED = {
    "orders_with_invoices": (
        "order_id",
        """
        select
            o.id as order_id,
            o.status,
            c.name as customer_name,
            c.email as customer_email,
            (select count(*) from orders_order_lines l where l.order_id = o.id) as line_count,
            coalesce((select sum(l.quantity::bigint * l.unit_price::decimal(18, 2))
                      from orders_order_lines l where l.order_id = o.id), 0)::decimal(18, 2) as order_total,
            i.id as invoice_id,
            i.status as invoice_status,
            i.amount::decimal(18, 2) as invoice_amount,
            i.document_url as invoice_document_url,
            coalesce(i.status = 'paid', false) as is_paid
        from orders_orders o
        left join customers_customers c on c.id = o.customer_id
        left join invoices_invoices i on i.id = (
            select id from invoices_invoices x where x.order_id = o.id
            order by x.status <> 'void' desc, x.issued_at::timestamptz desc, x.id limit 1)
    """,
    ),
    "product_stock": (
        "product_id",
        """
        select
            p.id as product_id,
            p.sku,
            p.name as product_name,
            p.list_price::decimal(18, 2) as list_price,
            p.retired_at is not null as is_retired,
            coalesce((select sum(case e.event_type when 'StockIncreased' then e.quantity::bigint
                                                   else -e.quantity::bigint end)
                      from inventory_stock_events e where e.stream = p.id), 0) as current_stock,
            (select count(*) from inventory_stock_events e where e.stream = p.id) as event_count
        from inventory_products p
    """,
    ),
    "stock_movements": (
        "product_id || '/' || version",
        """
        select
            e.stream as product_id,
            e.version::integer as version,
            (select sum(case x.event_type when 'StockIncreased' then x.quantity::bigint
                                          else -x.quantity::bigint end)
             from inventory_stock_events x
             where x.stream = e.stream and x.version::integer <= e.version::integer) as balance_after
        from inventory_stock_events e
    """,
    ),
    "customer_summary": (
        "customer_id",
        """
        select
            c.id as customer_id,
            c.name as customer_name,
            (select count(*) from orders_orders o where o.customer_id = c.id) as orders_count,
            coalesce((select sum(l.quantity::bigint * l.unit_price::decimal(18, 2))
                      from orders_orders o join orders_order_lines l on l.order_id = o.id
                      where o.customer_id = c.id and o.status in ('paid', 'shipped')), 0
                    )::decimal(18, 2) as lifetime_value,
            coalesce((select sum(i.amount::decimal(18, 2)) from invoices_invoices i
                      join orders_orders o on o.id = i.order_id
                      where o.customer_id = c.id and i.status = 'issued'), 0)::decimal(18, 2)
                as open_invoice_amount,
            coalesce((select sum(i.amount::decimal(18, 2)) from invoices_invoices i
                      join orders_orders o on o.id = i.order_id
                      where o.customer_id = c.id and i.status = 'paid'), 0)::decimal(18, 2)
                as paid_invoice_amount
        from customers_customers c
    """,
    ),
}


@dataclass
class Difference:
    table: str
    key: str
    side: str  # "source only", "published only", or "values"
    expected: dict | None = None
    published: dict | None = None


@dataclass
class VerifyReport:
    publication: Publication
    rows_compared: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    waited_seconds: float = 0.0


def connect(stack: StackSettings, service: str) -> psycopg.Connection:
    """A service's database, or a transient error in one line: which Postgres, what was tried, the fix."""
    try:
        return psycopg.connect(postgres.service_dsn(stack, service))
    except psycopg.OperationalError as err:
        host, port = postgres.endpoint(stack)
        reason = str(err).strip().splitlines()[0].removeprefix("connection failed: ")
        raise TransientError(
            f"Postgres at {host}:{port} did not let verify read the {service} database ({reason}); fix: start it "
            "(`mirador stack up`) or set MIRADOR_PG_HOST / MIRADOR_PG_PORT (MIRADOR_PG_DSN), then run again"
        ) from None


def source_lsns(stack: StackSettings) -> dict[str, int]:
    lsns = {}
    for service in SOURCES:
        with connect(stack, service) as conn:
            lsns[service] = conn.execute("select pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]
    return {service: int(lsn) for service, lsn in lsns.items()}


def wait_for_watermark(
    published: Path, targets: dict[str, int], timeout: float, catch_up: Callable[[], None] | None = None
) -> tuple[Publication, float]:
    """Until the current publication includes every service up to its target LSN.

    `catch_up`, when no `mirador run` is keeping the views fresh, loads and builds what arrived.
    """
    started = time.monotonic()
    while True:
        if catch_up is not None:
            catch_up()
        publication = current_publication(published)
        behind = {
            s: lsn
            for s, lsn in targets.items()
            if publication is None or (publication.watermark.get(s, {}).get("lsn") or 0) < lsn
        }
        if not behind:
            return publication, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TransientError(
                f"the published view tables have not caught up with {', '.join(sorted(behind))} after "
                f"{timeout:.0f}s; fix: keep `mirador run` running (or `mirador load --once && mirador build`), and "
                "check that Kafka Connect and its connectors run (`mirador stack status`)"
            )
        time.sleep(0.5)


def verify(
    stack: StackSettings,
    published: Path,
    timeout: float = 120.0,
    limit: int = 20,
    catch_up: Callable[[], None] | None = None,
) -> VerifyReport:
    targets = source_lsns(stack)
    publication, waited = wait_for_watermark(published, targets, timeout, catch_up)
    report = VerifyReport(publication, waited_seconds=waited)
    db = duckdb.connect()
    with tempfile.TemporaryDirectory(prefix="mirador-verify-") as scratch:
        for service, tables in SOURCES.items():
            with connect(stack, service) as conn:
                for table, columns in tables.items():
                    _copy(conn, db, f"{service}_{table}", table, columns, Path(scratch))
    db.execute(f"attach '{publication.path(published)}' as pub (read_only)")
    for mart, (key, query) in EXPECTED.items():
        report.rows_compared[mart] = _compare(db, mart, key, query, report.differences, limit)
    return report


def _copy(
    conn: psycopg.Connection, db: duckdb.DuckDBPyConnection, name: str, table: str, columns: list[str], scratch: Path
) -> None:
    """Copy a source table into DuckDB, every value as text (Postgres's own rendering).

    A table the service has not created yet (it never started) is empty.
    """
    if conn.execute("select to_regclass(%s) is null", (f"public.{table}",)).fetchone()[0]:
        db.execute(f"create table {name} ({', '.join(f'{c} varchar' for c in columns)})")
        return
    path = scratch / f"{name}.csv"
    with (
        path.open("wb") as out,
        conn.cursor().copy(f"copy (select * from public.{table}) to stdout with (format csv, header)") as copy,
    ):
        for chunk in copy:
            out.write(chunk)
    # Postgres's CSV dialect, said rather than sniffed: the sniffer reads the first rows only, and a table
    # whose first quoted value comes later was read unquoted. A quoted empty string stays one, not NULL.
    db.execute(
        f"create table {name} as select * from read_csv(?, header = true, all_varchar = true, delim = ',', "
        "quote = '\"', escape = '\"', allow_quoted_nulls = false)",
        [str(path)],
    )


def _compare(db: duckdb.DuckDBPyConnection, mart: str, key: str, query: str, out: list[Difference], limit: int) -> int:
    db.execute(f"create or replace temp view expected_{mart} as {query}")
    columns = [row[0] for row in db.execute(f"describe expected_{mart}").fetchall()]
    select = ", ".join(f"{c}::varchar as {c}" for c in columns)
    db.execute(f"create or replace temp table e as select {key}::varchar as _key, {select} from expected_{mart}")
    db.execute(f"create or replace temp table a as select {key}::varchar as _key, {select} from pub.main.{mart}")
    compared = db.execute("select count(*) from a").fetchall()[0][0]
    rows = db.execute(f"""
        select coalesce(e._key, a._key), e._key is null, a._key is null,
               {", ".join(f"e.{c}" for c in columns)}, {", ".join(f"a.{c}" for c in columns)}
        from e full outer join a on e._key = a._key
        where e._key is null or a._key is null or {" or ".join(f"e.{c} is distinct from a.{c}" for c in columns)}
        order by 1 limit {limit}
    """).fetchall()
    for row in rows:
        key_value, missing_expected, missing_published = row[:3]
        expected = dict(zip(columns, row[3 : 3 + len(columns)]))
        actual = dict(zip(columns, row[3 + len(columns) :]))
        side = "published only" if missing_expected else "source only" if missing_published else "values"
        out.append(
            Difference(
                mart, key_value, side, None if missing_expected else expected, None if missing_published else actual
            )
        )
    return compared
