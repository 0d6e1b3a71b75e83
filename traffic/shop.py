"""What the simulated shop does next: customers sign up, orders are placed, paid, invoiced, shipped.

The shop keeps what it learned from the answers (ids, versions, statuses) and picks each next command
with a seeded random generator, so a seed replays the same choices given the same answers. Each pick
costs the same however long the shop has run: customers, products and orders (by the step they are
at) are kept in `Bag`s, picked from by index rather than by scanning or sorting all of them.
"""

from __future__ import annotations

import heapq
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

FIRST = ("Ada", "Ben", "Chloe", "Dev", "Emma", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Mo", "Nia")
LAST = ("Alvarez", "Brown", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jansen")
COUNTRIES = ("NL", "DE", "FR", "BE", "GB", "US", "ES", "IT")
GOODS = ("mug", "teapot", "kettle", "bowl", "plate", "spoon", "jar", "vase", "lamp", "tray", "cup", "pan")


@dataclass(frozen=True)
class Call:
    """One HTTP command: which service, what, and what to remember from a success."""

    kind: str
    service: str
    method: str
    path: str
    body: dict | None = None
    if_match: int | None = None
    on_success: str | None = None
    subject: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Order:
    id: str
    customer_id: str
    lines: dict[int, tuple[str, int, Decimal]]
    status: str = "placed"
    version: int = 1
    invoice_id: str | None = None
    invoice_paid: bool = False

    @property
    def step(self) -> tuple[str, bool, bool]:
        """What can happen to it next depends on this: status, invoiced, invoice paid."""
        return self.status, self.invoice_id is not None, self.invoice_paid


class Bag:
    """Keys in insertion-and-swap order: add, remove and a seeded random pick, each in constant time."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str) -> None:
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)

    def discard(self, key: str) -> None:
        if (i := self.index.pop(key, None)) is None:
            return
        last = self.keys.pop()
        if i < len(self.keys):
            self.keys[i], self.index[last] = last, i

    def pick(self, rng: random.Random, busy: set[str] | frozenset = frozenset()) -> str | None:
        """A random key not in `busy` (commands in flight), or None."""
        if not self.keys:
            return None
        for _ in range(8):
            if (key := rng.choice(self.keys)) not in busy:
                return key
        free = [key for key in self.keys if key not in busy]  # mostly busy: the bag is small
        return rng.choice(free) if free else None


class Shop:
    """The shop's knowledge and its next moves."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.run = uuid.uuid4().hex[:8]  # keeps emails and SKUs unique across runs of the same seed
        self.count = 0
        self.customers: dict[str, int] = {}
        self.products: dict[str, Decimal] = {}
        self.stock: dict[str, int] = {}
        self.orders: dict[str, Order] = {}
        self.busy: set[str] = set()
        self.picks: dict[str, Bag] = {"customers": Bag(), "products": Bag()}
        self.steps: dict[tuple[str, bool, bool], Bag] = {}
        """Orders by `Order.step`."""

    def next_call(self) -> Call:
        self.count += 1
        if len(self.products) < 8:
            return self._add_product()
        if len(self.customers) < 5:
            return self._sign_up()
        moves = [
            (self._sign_up, 8),
            (self._place_order, 22),
            (self._receive_stock, 6),
            (self._pay_order, 12),
            (self._issue_invoice, 10),
            (self._pay_invoice, 9),
            (self._ship_order, 8),
            (self._cancel_order, 2),
            (self._add_line, 3),
            (self._remove_line, 2),
            (self._update_customer, 3),
            (self._delete_customer, 1),
            (self._reprice_product, 2),
            (self._add_product, 1),
            (self._void_invoice, 1),
        ]
        while True:
            move = self.rng.choices([m for m, _ in moves], weights=[w for _, w in moves])[0]
            if call := move():
                return call

    # -- customers -------------------------------------------------------------------------------
    def _sign_up(self) -> Call:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        body = {
            "email": f"{first}.{last}.{self.run}.{self.count}@example.com".lower(),
            "name": f"{first} {last}",
            "country": self.rng.choice(COUNTRIES),
        }
        return Call("sign up", "customers", "POST", "/customers", body, on_success="customer")

    def _update_customer(self) -> Call | None:
        if not (customer := self._pick("customers")):
            return None
        body = {"country": self.rng.choice(COUNTRIES)}
        return Call(
            "update customer",
            "customers",
            "PATCH",
            f"/customers/{customer}",
            body,
            if_match=self.customers[customer],
            on_success="customer",
            subject=customer,
        )

    def _delete_customer(self) -> Call | None:
        if len(self.customers) < 10 or not (customer := self._pick("customers")):
            return None
        return Call(
            "delete customer",
            "customers",
            "DELETE",
            f"/customers/{customer}",
            on_success="forget customer",
            subject=customer,
        )

    # -- catalogue and stock ---------------------------------------------------------------------
    def _add_product(self) -> Call:
        price = Decimal(self.rng.randrange(199, 9999)) / 100
        sku = f"{self.rng.choice(GOODS).upper()}-{self.run}-{self.count}"
        body = {"sku": sku, "name": f"{self.rng.choice(GOODS).capitalize()} {self.count}", "list_price": str(price)}
        return Call("add product", "inventory", "POST", "/products", body, on_success="product", extra={"price": price})

    def _reprice_product(self) -> Call | None:
        if not (product := self._pick("products")):
            return None
        price = (self.products[product] * Decimal(self.rng.choice(("0.9", "1.05", "1.1")))).quantize(Decimal("0.01"))
        return Call(
            "reprice product",
            "inventory",
            "PATCH",
            f"/products/{product}",
            {"list_price": str(price)},
            on_success="price",
            subject=product,
            extra={"price": price},
        )

    def _receive_stock(self) -> Call | None:
        low = heapq.nsmallest(5, self.products, key=lambda p: self.stock.get(p, 0))
        if not low:
            return None
        product = self.rng.choice(low)
        quantity = self.rng.randrange(20, 100)
        return Call(
            "receive stock",
            "inventory",
            "POST",
            f"/products/{product}/stock/increase",
            {"quantity": quantity, "reason": "delivery"},
            on_success="stock",
            subject=product,
            extra={"delta": quantity},
        )

    def sell(self, order: Order) -> list[Call]:
        """Stock leaves when an order ships: one decrease per line."""
        return [
            Call(
                "sell stock",
                "inventory",
                "POST",
                f"/products/{product}/stock/decrease",
                {"quantity": quantity, "reason": f"order {order.id}"},
                on_success="stock",
                subject=product,
                extra={"delta": -quantity},
            )
            for product, quantity, _ in order.lines.values()
        ]

    # -- orders and invoices ---------------------------------------------------------------------
    def _place_order(self) -> Call | None:
        if not self.customers or not self.products:
            return None
        products = self.rng.sample(self.picks["products"].keys, k=min(len(self.products), self.rng.randint(1, 4)))
        lines = [
            {"product_id": p, "quantity": self.rng.randint(1, 3), "unit_price": str(self.products[p])} for p in products
        ]
        customer = self._pick("customers")
        return Call(
            "place order", "orders", "POST", "/orders", {"customer_id": customer, "lines": lines}, on_success="order"
        )

    def _order_in(self, status: str, invoiced: bool = False, paid: bool = False) -> Order | None:
        """A random order at this step that no command in flight is about."""
        bag = self.steps.get((status, invoiced, paid))
        order_id = bag.pick(self.rng, self.busy) if bag else None
        return None if order_id is None else self.orders[order_id]

    def _pay_order(self) -> Call | None:
        if order := self._order_in("placed"):
            return self._move(order, "pay")
        return None

    def _ship_order(self) -> Call | None:
        if order := self._order_in("paid", invoiced=True, paid=True):
            return self._move(order, "ship")
        return None

    def _cancel_order(self) -> Call | None:
        if order := self._order_in("placed"):
            return self._move(order, "cancel", {"reason": "changed my mind"})
        return None

    def _move(self, order: Order, verb: str, body: dict | None = None) -> Call:
        return Call(
            f"{verb} order",
            "orders",
            "POST",
            f"/orders/{order.id}/{verb}",
            body,
            if_match=order.version,
            on_success=f"order {verb}",
            subject=order.id,
        )

    def _add_line(self) -> Call | None:
        if not (order := self._order_in("placed")) or not self.products:
            return None
        product = self._pick("products")
        body = {"product_id": product, "quantity": 1, "unit_price": str(self.products[product])}
        return Call(
            "add line",
            "orders",
            "POST",
            f"/orders/{order.id}/lines",
            body,
            if_match=order.version,
            on_success="line added",
            subject=order.id,
            extra={"line": (product, 1, self.products[product])},
        )

    def _remove_line(self) -> Call | None:
        order = self._order_in("placed")
        if order is None or len(order.lines) < 2:
            return None
        line_no = self.rng.choice(sorted(order.lines))
        return Call(
            "remove line",
            "orders",
            "DELETE",
            f"/orders/{order.id}/lines/{line_no}",
            if_match=order.version,
            on_success="line removed",
            subject=order.id,
            extra={"line_no": line_no},
        )

    def _issue_invoice(self) -> Call | None:
        if not (order := self._order_in("paid", invoiced=False)):
            return None
        total = sum(q * p for _, q, p in order.lines.values())
        body = {
            "order_id": order.id,
            "amount": str(total),
            "due_date": str(date.today() + timedelta(days=30)),
            "document_url": f"https://invoices.example.com/{order.id}.pdf",
        }
        return Call("issue invoice", "invoices", "POST", "/invoices", body, on_success="invoice", subject=order.id)

    def _pay_invoice(self) -> Call | None:
        if not (order := self._order_in("paid", invoiced=True, paid=False)):
            return None
        return Call(
            "pay invoice",
            "invoices",
            "POST",
            f"/invoices/{order.invoice_id}/pay",
            on_success="invoice paid",
            subject=order.id,
        )

    def _void_invoice(self) -> Call | None:
        if not (order := self._order_in("paid", invoiced=True, paid=False)):
            return None
        return Call(
            "void invoice",
            "invoices",
            "POST",
            f"/invoices/{order.invoice_id}/void",
            on_success="invoice void",
            subject=order.id,
        )

    def _pick(self, kind: str) -> str | None:
        return self.picks[kind].pick(self.rng)

    # -- learning from answers -------------------------------------------------------------------
    def begin(self, call: Call) -> None:
        if call.subject in self.orders:
            self.busy.add(call.subject)

    def learn(self, call: Call, status: int, answer: dict) -> list[Call]:
        """Remember what a command did; return the commands it leads to (stock sold when an order ships)."""
        self.busy.discard(call.subject)
        if status >= 300:
            if call.on_success == "stock" and status == 409:
                self.stock[call.subject] = 0  # out of stock: restock soon
            return []
        version = answer.get("version")
        order = self.orders.get(call.subject or "")
        if order:
            self._file(order, away=True)
        match call.on_success:
            case "customer":
                self.customers[answer["id"]] = version
                self.picks["customers"].add(answer["id"])
            case "forget customer":
                self.customers.pop(call.subject, None)
                self.picks["customers"].discard(call.subject)
            case "product":
                self.products[answer["id"]] = call.extra["price"]
                self.picks["products"].add(answer["id"])
            case "price":
                self.products[call.subject] = call.extra["price"]
            case "stock":
                self.stock[call.subject] = self.stock.get(call.subject, 0) + call.extra["delta"]
            case "order":
                lines = {
                    i + 1: (line["product_id"], line["quantity"], Decimal(line["unit_price"]))
                    for i, line in enumerate(call.body["lines"])
                }
                self.orders[answer["id"]] = order = Order(answer["id"], call.body["customer_id"], lines)
            case "line added" if order:
                order.lines[answer["line_no"]] = call.extra["line"]
                order.version = version
            case "line removed" if order:
                order.lines.pop(call.extra["line_no"], None)
                order.version = version
            case "invoice" if order:
                order.invoice_id = answer["id"]
            case "invoice paid" if order:
                order.invoice_paid = True
            case "invoice void" if order:
                order.invoice_id = None
            case str(move) if move.startswith("order ") and order:
                order.status = {"pay": "paid", "ship": "shipped", "cancel": "cancelled"}[move.split()[1]]
                order.version = version
                if order.status in ("shipped", "cancelled"):
                    del self.orders[order.id]  # done: keep the shop's memory small
                    return self.sell(order) if order.status == "shipped" else []
        if order:
            self._file(order)
        return []

    def _file(self, order: Order, away: bool = False) -> None:
        """File the order under its step (or take it `away` from there, before it changes)."""
        bag = self.steps.setdefault(order.step, Bag())
        if away:
            bag.discard(order.id)
        else:
            bag.add(order.id)
