"""The rules of the customers service."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from services.common.errors import NotFoundError, RuleViolation, check_version


class CustomerNotFoundError(NotFoundError):
    """No customer has this id."""


class EmailTakenError(RuleViolation):
    """Another customer already has this email address."""


@dataclass(frozen=True)
class Customer:
    """A registered customer, as far as commands need to know it."""

    id: UUID
    version: int

    def update(self, expected_version: int | None) -> int:
        """The version the update creates, if the caller saw the current one."""
        check_version(expected_version, self.version)
        return self.version + 1

    def delete(self, expected_version: int | None) -> None:
        check_version(expected_version, self.version)
