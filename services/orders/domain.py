"""The rules of the orders service: an order moves placed -> paid -> shipped, or is cancelled."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from services.common.errors import NotFoundError, Retry, RuleViolation, check_version

PLACED, PAID, SHIPPED, CANCELLED = "placed", "paid", "shipped", "cancelled"

TRANSITIONS = {
    PLACED: (PAID, CANCELLED),
    PAID: (SHIPPED, CANCELLED),
    SHIPPED: (),
    CANCELLED: (),
}
"""Where an order may go from each status; shipped and cancelled are final."""


class OrderNotFoundError(NotFoundError):
    """No order has this id."""


class LineNotFoundError(NotFoundError):
    """The order has no line with this number."""


class InvalidTransitionError(RuleViolation):
    """The order's status cannot move to the one asked for."""


class OrderNotOpenError(RuleViolation):
    """Lines change only while the order is placed."""


class LastLineError(RuleViolation):
    """An order keeps at least one line; cancel the order instead."""


class LineNumberTaken(Retry):
    """Another command added a line to this order first."""


@dataclass(frozen=True)
class Order:
    """An order as its commands see it: status, version, its lines' numbers and the last number used."""

    id: UUID
    status: str
    version: int
    last_line_no: int
    line_nos: tuple[int, ...]

    def move_to(self, status: str, expected_version: int | None) -> int:
        """The version after moving to `status`, if the move is allowed from here."""
        check_version(expected_version, self.version)
        if status not in TRANSITIONS[self.status]:
            allowed = " or ".join(TRANSITIONS[self.status]) or "nothing (it is final)"
            raise InvalidTransitionError(
                f"an order that is {self.status} cannot become {status}; it can become {allowed}",
                current_status=self.status,
            )
        return self.version + 1

    def add_line(self, expected_version: int | None) -> tuple[int, int]:
        """The new line's number and the order's new version."""
        check_version(expected_version, self.version)
        self._require_open()
        return self.last_line_no + 1, self.version + 1

    def remove_line(self, line_no: int, expected_version: int | None) -> int:
        check_version(expected_version, self.version)
        self._require_open()
        if line_no not in self.line_nos:
            raise LineNotFoundError(f"order {self.id} has no line {line_no}")
        if len(self.line_nos) <= 1:
            raise LastLineError("this is the order's only line; an order keeps at least one line")
        return self.version + 1

    def _require_open(self) -> None:
        if self.status != PLACED:
            raise OrderNotOpenError(
                f"the order is {self.status}; lines change only while it is placed", current_status=self.status
            )
