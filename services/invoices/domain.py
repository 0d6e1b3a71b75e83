"""The rules of the invoices service: issued -> paid, or issued -> void."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from services.common.errors import NotFoundError, RuleViolation, check_version

ISSUED, PAID, VOID = "issued", "paid", "void"


class InvoiceNotFoundError(NotFoundError):
    """No invoice has this id."""


class OrderAlreadyInvoicedError(RuleViolation):
    """The order already has an invoice that is not void."""


class DueDateInPastError(RuleViolation):
    """An invoice cannot be due before the day it is issued."""


class InvoiceNotOpenError(RuleViolation):
    """Only an issued invoice can be paid or voided."""


def check_due_date(due_date: date, today: date) -> None:
    if due_date < today:
        raise DueDateInPastError(f"due date {due_date} is before today ({today})")


@dataclass(frozen=True)
class Invoice:
    id: UUID
    status: str
    version: int

    def pay(self, expected_version: int | None) -> int:
        return self._close(PAID, expected_version)

    def void(self, expected_version: int | None) -> int:
        return self._close(VOID, expected_version)

    def _close(self, status: str, expected_version: int | None) -> int:
        check_version(expected_version, self.version)
        if self.status != ISSUED:
            raise InvoiceNotOpenError(
                f"the invoice is {self.status}; only an issued invoice can become {status}", current_status=self.status
            )
        return self.version + 1
