"""Session fixtures over the real stack: Postgres, Kafka and Kafka Connect with Debezium.

The stack named by MIRADOR_PG_DSN / MIRADOR_KAFKA_BOOTSTRAP / MIRADOR_CONNECT_URL is used as it is;
otherwise the native stack under MIRADOR_HOME is started once (or found running) and, if this
session started it, stopped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdc import stack
from cdc.config import StackSettings


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[StackSettings]:
    settings = StackSettings()
    startup = stack.up(settings)
    yield settings
    stack.stop_components(settings, list(startup.started))
