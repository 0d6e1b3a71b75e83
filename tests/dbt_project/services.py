"""All the services at once, writing the loader's raw changelog: every source table the models read.

`Services` runs the customers, orders, invoices and inventory services (products and their stock
streams) side by side, each keeping its source's true state, with what Debezium sends for each
change: creates, updates (some with an unchanged TOASTed column, also one that staging renames),
deletes, truncates and redeliveries. The services refer to one another as the real ones do: orders
name customers (of a pool, not all registered yet), invoices name orders, stock streams belong to
products. Topics land independently, so now and then one table's events wait a batch for the next.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from decimal import Decimal

import duckdb

from .changelog import Changelog, Service, StockSource, land

TIMESTAMP = "TIMESTAMP WITH TIME ZONE"
CUSTOMER_COLUMNS = {"id": "UUID", "email": "VARCHAR", "name": "VARCHAR", "country": "VARCHAR", "version": "INTEGER",
                    "created_at": TIMESTAMP, "updated_at": TIMESTAMP}
INVOICE_COLUMNS = {"id": "UUID", "order_id": "UUID", "amount": "DECIMAL(12,2)", "currency": "VARCHAR",
                   "due_date": "DATE", "document_url": "VARCHAR", "status": "VARCHAR", "version": "INTEGER",
                   "issued_at": TIMESTAMP, "paid_at": TIMESTAMP, "voided_at": TIMESTAMP, "updated_at": TIMESTAMP}
PRODUCT_COLUMNS = {"id": "UUID", "sku": "VARCHAR", "name": "VARCHAR", "list_price": "DECIMAL(12,2)",
                   "currency": "VARCHAR", "retired_at": TIMESTAMP, "version": "INTEGER", "created_at": TIMESTAMP,
                   "updated_at": TIMESTAMP}


class Customers(Service):
    """The customers service: customers register, change, and some are deleted."""

    TABLES = {"customers__customers": (CUSTOMER_COLUMNS, ("id",))}

    def __init__(self, rng: random.Random, pool: int = 50) -> None:
        super().__init__(rng)
        self.pool = [uuid.UUID(int=n) for n in range(pool)]  # the ids the orders service names
        self.customers: dict[uuid.UUID, dict] = {}

    def step(self) -> None:
        choices = ["register", "update", "toast_update", "delete", "redeliver", "truncate"]
        getattr(self, self.rng.choices(choices, [5, 4, 2, 1, 1, 0.1])[0])()

    def register(self) -> None:
        if not (free := [c for c in self.pool if c not in self.customers]):
            return self.update()
        now = self._now()
        row = {"id": self.rng.choice(free), "email": f"c{self.rng.randrange(10**6)}@example.com",
               "name": self.rng.choice(["Ada", "Grace", "Edsger"]) + " " + "x" * self.rng.randrange(40),
               "country": self.rng.choice(["DE", "FR", "NL"]), "version": 1, "created_at": now, "updated_at": now}
        self.customers[row["id"]] = row
        self._emit("customers__customers", "c", row)

    def update(self, toast: bool = False) -> None:
        if not self.customers:
            return self.register()
        row = self.customers[self.rng.choice(list(self.customers))]
        row.update(country=self.rng.choice(["DE", "FR", "NL", "IT"]), version=row["version"] + 1,
                   updated_at=self._now())
        if not toast:  # the name, staged as customer_name, stays in TOAST when unchanged
            row["name"] = self.rng.choice(["Ada", "Grace", "Barbara"]) + " " + "y" * self.rng.randrange(40)
        self._emit("customers__customers", "u", row, unavailable=["name"] if toast else None)

    def toast_update(self) -> None:
        self.update(toast=True)

    def delete(self) -> None:
        if self.customers:
            self._emit("customers__customers", "d", self.customers.pop(self.rng.choice(list(self.customers))))

    def truncate(self) -> None:
        self.customers.clear()
        self._emit("customers__customers", "t", None)


class Invoices(Service):
    """The invoices service: an order's invoice is issued, then paid or voided; now and then an
    operator deletes one (the service never does, but Debezium would send it)."""

    TABLES = {"invoices__invoices": (INVOICE_COLUMNS, ("id",))}

    def __init__(self, rng: random.Random, orders: Changelog) -> None:
        super().__init__(rng)
        self.orders = orders
        self.invoices: dict[uuid.UUID, dict] = {}

    def step(self) -> None:
        choices = ["issue", "pay", "void", "delete", "redeliver", "truncate"]
        getattr(self, self.rng.choices(choices, [5, 3, 2, 2, 1, 0.1])[0])()

    def issue(self) -> None:
        invoiced = {i["order_id"] for i in self.invoices.values() if i["status"] != "void"}
        if not (orders := [o for o in self.orders.orders if o not in invoiced]):
            return
        now = self._now()
        row = {"id": uuid.UUID(int=self.rng.getrandbits(128)), "order_id": self.rng.choice(orders),
               "amount": Decimal(self.rng.randrange(1, 10**6)) / 100, "currency": "EUR",
               "due_date": date(2026, 2, 1) + timedelta(days=self.rng.randrange(30)),
               "document_url": "https://documents.example/" + "z" * self.rng.randrange(1, 60), "status": "issued",
               "version": 1, "issued_at": now, "paid_at": None, "voided_at": None, "updated_at": now}
        self.invoices[row["id"]] = row
        self._emit("invoices__invoices", "c", row)

    def pay(self) -> None:
        self._close("paid", "paid_at")

    def void(self) -> None:
        self._close("void", "voided_at")

    def _close(self, status: str, at: str) -> None:
        if not (issued := [i for i in self.invoices.values() if i["status"] == "issued"]):
            return self.issue()
        row = self.rng.choice(issued)
        row.update({"status": status, at: self._now(), "version": row["version"] + 1, "updated_at": self._now()})
        toast = self.rng.random() < 0.5  # the document's address is unchanged: left in TOAST
        self._emit("invoices__invoices", "u", row, unavailable=["document_url"] if toast else None)

    def delete(self) -> None:
        if self.invoices:
            self._emit("invoices__invoices", "d", self.invoices.pop(self.rng.choice(list(self.invoices))))

    def truncate(self) -> None:
        self.invoices.clear()
        self._emit("invoices__invoices", "t", None)


class Products(Service):
    """The inventory service's catalogue: products register, change their name or price, retire."""

    TABLES = {"inventory__products": (PRODUCT_COLUMNS, ("id",))}

    def __init__(self, rng: random.Random, ids: list[uuid.UUID]) -> None:
        super().__init__(rng)
        self.ids = ids
        self.products: dict[uuid.UUID, dict] = {}

    def step(self) -> None:
        choices = ["register", "change", "toast_change", "retire", "delete", "redeliver", "truncate"]
        getattr(self, self.rng.choices(choices, [3, 4, 2, 1, 1, 1, 0.1])[0])()

    def register(self) -> None:
        if not (free := [p for p in self.ids if p not in self.products]):
            return self.change()
        now = self._now()
        row = {"id": self.rng.choice(free), "sku": f"SKU-{self.rng.randrange(10**6)}",
               "name": "Widget " + "w" * self.rng.randrange(40), "list_price": Decimal(self.rng.randrange(1, 10**5)) / 100,
               "currency": "EUR", "retired_at": None, "version": 1, "created_at": now, "updated_at": now}
        self.products[row["id"]] = row
        self._emit("inventory__products", "c", row)

    def change(self, toast: bool = False) -> None:
        if not self.products:
            return self.register()
        row = self.products[self.rng.choice(list(self.products))]
        row.update(list_price=Decimal(self.rng.randrange(1, 10**5)) / 100, version=row["version"] + 1,
                   updated_at=self._now())
        if not toast:  # the name, staged as product_name, stays in TOAST when unchanged
            row["name"] = "Gadget " + "g" * self.rng.randrange(40)
        self._emit("inventory__products", "u", row, unavailable=["name"] if toast else None)

    def toast_change(self) -> None:
        self.change(toast=True)

    def retire(self) -> None:
        if not (sold := [p for p in self.products.values() if p["retired_at"] is None]):
            return self.register()
        row = self.rng.choice(sold)
        row.update(retired_at=self._now(), version=row["version"] + 1, updated_at=self._now())
        self._emit("inventory__products", "u", row)

    def delete(self) -> None:
        if self.products:
            self._emit("inventory__products", "d", self.products.pop(self.rng.choice(list(self.products))))

    def truncate(self) -> None:
        self.products.clear()
        self._emit("inventory__products", "t", None)


class Services:
    """Every service at once; each `flush` lands what they sent as one loader batch."""

    def __init__(self, rng: random.Random, products: int = 8) -> None:
        self.rng = rng
        self.orders = Changelog(rng)
        self.customers = Customers(rng)
        self.invoices = Invoices(rng, self.orders)
        self.stock = StockSource(rng, products=products)
        # Most products have a stream; a stream's events can land before its product is registered.
        self.products = Products(rng, self.stock.products[:-1] + [uuid.UUID(int=rng.getrandbits(128))])
        self.held: dict[str, list[dict]] = {}
        """Events of a table that wait for the next batch, in the order they were sent."""
        # The first batch holds a shop already open: most of the customers that orders name, orders
        # with lines, and invoices. Later commands then spread over many keys, so a change often
        # comes alone to its order or customer, the way a missed one shows.
        for _ in range(40):
            self.customers.register()
        for _ in range(150):
            self.orders.create()
            for _ in range(rng.randrange(3)):
                self.orders.add_line_to(self.orders.last_order)
        for _ in range(100):
            self.invoices.issue()

    @property
    def services(self) -> list[Service | StockSource]:
        return [self.customers, self.orders, self.invoices, self.products, self.stock]

    @property
    def tables(self) -> dict[str, dict[str, str]]:
        return {table: columns for service in self.services for table, columns in service.tables.items()}

    @property
    def settled(self) -> bool:
        """Everything sent has landed."""
        return not (self.held or self.stock.late or any(service.pending for service in self.services))

    def step(self) -> None:
        """One random command, against one of the services."""
        self.rng.choices(self.services, [2, 5, 3, 2, 2])[0].step()

    def flush(self, conn: duckdb.DuckDBPyConnection, hold: bool = True) -> set[str]:
        """Land the events sent as one loader batch, but (with `hold`) now and then those of one table
        only with the next; returns the tables landed."""
        sent: dict[str, list[dict]] = {}
        for service in self.services:
            for event in service.take():
                sent.setdefault(event["_table"], []).append(event)
        held, self.held, events = self.held, {}, []
        for table in sorted(sent.keys() | held.keys()):
            waiting = held.get(table, []) + sent.get(table, [])
            if hold and table not in held and self.rng.random() < 0.1:
                self.held[table] = waiting
            else:
                events += waiting
        land(conn, self.tables, events)
        return {event["_table"] for event in events}
