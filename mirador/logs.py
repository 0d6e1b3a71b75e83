"""Logging helpers shared by the commands."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def only_to(logger: logging.Logger, handler: logging.Handler, level: int) -> Iterator[logging.Logger]:
    """While the block runs, `logger`'s records from `level` up go to `handler` and nowhere else
    (not to whatever handlers dbt or the root logger have)."""
    previous_level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        logger.propagate = propagate
