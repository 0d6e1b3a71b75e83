"""The rows present before capture starts: `customers` of the given size and rows the views join to it.

Generated in Postgres (`generate_series`), ids derived from a row number (md5 -> uuid), so every run
seeds the same rows. For N customers: N/10 orders of 2 lines each over 1,000 products, an invoice for
every other order, one stock event per product.
"""

from __future__ import annotations

import time

import psycopg

PRODUCTS = 1000

STATEMENTS = {
    "customers": [
        (
            "customers",
            """
            insert into customers (id, email, name, country)
            select md5('c' || i)::uuid, 'load-' || i || '@load.example.com', 'Customer ' || i,
                   (array['PT', 'ES', 'FR', 'DE', 'NL'])[1 + i %% 5]
            from generate_series(1, %(customers)s) as i
        """,
        ),
    ],
    "inventory": [
        (
            "products",
            """
            insert into products (id, sku, name, list_price, currency)
            select md5('p' || i)::uuid, 'SKU-' || i, 'Product ' || i, 1 + i %% 50, 'EUR'
            from generate_series(1, %(products)s) as i
        """,
        ),
        (
            "stock_events",
            """
            insert into stock_events (stream, version, event_type, quantity, reason, command_id)
            select md5('p' || i)::uuid, 1, 'StockIncreased', 1000, 'initial load', 'seed-' || i
            from generate_series(1, %(products)s) as i
        """,
        ),
    ],
    "orders": [
        (
            "orders",
            """
            insert into orders (id, customer_id, currency, status, last_line_no, paid_at)
            select md5('o' || i)::uuid, md5('c' || (1 + (i * 7) %% %(customers)s))::uuid, 'EUR',
                   case when i %% 2 = 0 then 'paid' else 'placed' end, 2,
                   case when i %% 2 = 0 then now() end
            from generate_series(1, %(orders)s) as i
        """,
        ),
        (
            "order_lines",
            """
            insert into order_lines (order_id, line_no, product_id, quantity, unit_price)
            select md5('o' || i)::uuid, n, md5('p' || (1 + (i + n) %% %(products)s))::uuid, n, 9.99
            from generate_series(1, %(orders)s) as i, generate_series(1, 2) as n
        """,
        ),
    ],
    "invoices": [
        (
            "invoices",
            """
            insert into invoices (id, order_id, amount, currency, due_date, document_url, status, paid_at)
            select md5('v' || i)::uuid, md5('o' || i)::uuid, 29.97, 'EUR', current_date + 30,
                   'https://invoices.example.com/' || i || '.pdf', 'paid', now()
            from generate_series(2, %(orders)s, 2) as i
        """,
        ),
    ],
}


def sizes(customers: int) -> dict[str, int]:
    return {"customers": customers, "orders": customers // 10, "products": PRODUCTS}


def expected_rows(customers: int) -> dict[str, int]:
    """Rows each source table holds once seeded."""
    n = sizes(customers)
    return {
        "customers": n["customers"],
        "products": n["products"],
        "stock_events": n["products"],
        "orders": n["orders"],
        "order_lines": 2 * n["orders"],
        "invoices": n["orders"] // 2,
    }


def seed(dsn_of, customers: int) -> dict[str, float]:
    """Insert every table's rows, each database in one transaction; seconds taken per table."""
    params, taken = sizes(customers), {}
    for service, statements in STATEMENTS.items():
        with psycopg.connect(dsn_of(service)) as conn:
            for table, statement in statements:
                started = time.monotonic()
                conn.execute(statement, params)
                taken[table] = time.monotonic() - started
            conn.execute("analyze")
    return taken
