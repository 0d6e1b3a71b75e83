"""Kinds of refusal a command can meet; each service's domain names its own rules after these.

The kinds carry no HTTP: `problems.py` maps each kind to a status once, for every service.
"""

from __future__ import annotations


class CommandRefused(Exception):
    """A command was not carried out; nothing was written."""

    title = "Command refused"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFoundError(CommandRefused):
    """The command names something that does not exist (or no longer does)."""

    title = "Not found"


class RuleViolation(CommandRefused):
    """Carrying the command out would break a business rule."""

    title = "Business rule violated"


class ConcurrencyConflict(CommandRefused):
    """Concurrent writers kept winning; the command may be sent again."""

    title = "Concurrent update"


class Retry(ConcurrencyConflict):
    """A constraint only a concurrent writer can break: the command is run again on the new state."""


class VersionChanged(Retry):
    """Another writer changed the aggregate between the command's read and its write."""


class StaleVersionError(CommandRefused):
    """`If-Match` names a version that is no longer current."""

    title = "Stale version"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"If-Match names version {expected}, but the current version is {current}", current_version=current
        )


class IdempotencyKeyReused(CommandRefused):
    """An `Idempotency-Key` came back with a different request than the one it first carried."""

    title = "Idempotency key reused"


def check_version(expected: int | None, current: int) -> None:
    """Optimistic concurrency: refuse when the caller's `If-Match` version is not the current one."""
    if expected is not None and expected != current:
        raise StaleVersionError(expected, current)
