"""A message the loader cannot load is not an error of the loader: it goes to the dead letters and
the batch goes on."""

from __future__ import annotations


class PoisonMessage(Exception):
    """One message cannot be loaded (not JSON, not an envelope, unknown type): it goes to the dead letters."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IncompatibleSchema(PoisonMessage):
    """A source column changed to a type its raw column cannot hold without losing values."""


class UnsupportedType(PoisonMessage):
    """A field whose Connect type or logical name the loader cannot map exactly."""
