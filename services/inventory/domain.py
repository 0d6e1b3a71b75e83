"""The rules of the inventory service: a product catalogue, and stock folded from its events."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from services.common.errors import NotFoundError, Retry, RuleViolation, check_version

INCREASED, DECREASED = "StockIncreased", "StockDecreased"
SCHEMA_VERSION = 1
"""Version of the stock events written now; older ones are upcast in `_upcast` before folding."""


class ProductNotFoundError(NotFoundError):
    """No product has this id."""


class SkuTakenError(RuleViolation):
    """Another product already has this SKU."""


class ProductRetiredError(RuleViolation):
    """The product is retired: it cannot be changed or take new stock."""


class InsufficientStockError(RuleViolation):
    """The decrease would take stock below zero."""


class StreamVersionTaken(Retry):
    """Another command appended to this product's stock first."""


@dataclass(frozen=True, slots=True)
class Product:
    id: UUID
    version: int
    retired: bool

    def change(self, expected_version: int | None) -> int:
        """The version after a rename or reprice."""
        check_version(expected_version, self.version)
        self._require_active()
        return self.version + 1

    def retire(self, expected_version: int | None) -> int:
        return self.change(expected_version)

    def _require_active(self) -> None:
        if self.retired:
            raise ProductRetiredError(f"product {self.id} is retired")


@dataclass(frozen=True, slots=True)
class StockEvent:
    stream: UUID
    version: int
    event_type: str
    quantity: int
    reason: str | None = None
    command_id: str = ""
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Stock:
    """A product's stock: what is on hand after the events up to `version`."""

    product_id: UUID
    version: int
    on_hand: int
    retired: bool = False

    @classmethod
    def fold(cls, start: Stock, events: list[StockEvent]) -> Stock:
        stock = start
        for event in events:
            stock = stock.apply(_upcast(event))
        return stock

    def apply(self, event: StockEvent) -> Stock:
        delta = event.quantity if event.event_type == INCREASED else -event.quantity
        return Stock(self.product_id, event.version, self.on_hand + delta, self.retired)

    def increase(self, quantity: int, reason: str | None, command_id: str) -> StockEvent:
        if self.retired:
            raise ProductRetiredError(f"product {self.product_id} is retired and takes no new stock")
        return self._next(INCREASED, quantity, reason, command_id)

    def decrease(self, quantity: int, reason: str | None, command_id: str) -> StockEvent:
        if quantity > self.on_hand:
            raise InsufficientStockError(f"{quantity} asked, {self.on_hand} in stock", on_hand=self.on_hand)
        return self._next(DECREASED, quantity, reason, command_id)

    def _next(self, event_type: str, quantity: int, reason: str | None, command_id: str) -> StockEvent:
        return StockEvent(self.product_id, self.version + 1, event_type, quantity, reason, command_id)


def _upcast(event: StockEvent) -> StockEvent:
    if event.schema_version != SCHEMA_VERSION:
        raise ValueError(f"stock event schema version {event.schema_version} has no upcaster")
    return event
