"""Errors of the runtime that composes the stages."""

from __future__ import annotations

from warehouse.exceptions import TransientError


class AlreadyRunning(TransientError):
    """Another `mirador run` holds this warehouse: a second one would only contend for the file."""
