"""Fixtures of the warehouse's tests: a scratch warehouse, and a scratch mirador home fed by a simulated
service (the services beside a fresh home, `pipeline_env`, are shared from tests/conftest.py).

Helpers live in plain modules: `captures` (the captured Debezium messages), `backlog` (messages
produced to Kafka), `commands` (`mirador` as the tests run it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warehouse.ingest.configuration import LoaderSettings


@pytest.fixture
def loader_settings(tmp_path: Path) -> LoaderSettings:
    """Settings pointing at a scratch warehouse file; Kafka settings as the environment says."""
    return LoaderSettings(warehouse_path=tmp_path / "warehouse" / "mirador.duckdb")


@pytest.fixture
def scratch_home(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A scratch mirador home whose raw changelog a simulated service lands (tests/dbt_project/changelog.py):
    (warehouse file, published directory, environment for `mirador` there)."""
    warehouse = tmp_path / "warehouse" / "mirador.duckdb"
    warehouse.parent.mkdir()
    env = {
        **os.environ,
        "MIRADOR_HOME": str(tmp_path),
        "MIRADOR_WAREHOUSE_PATH": str(warehouse),
        "MIRADOR_LOADER_TOPICS": '["^mirador-test-no-such-topic$"]',
        "MIRADOR_RUN_INTERVAL": "0.2",
    }
    return warehouse, warehouse.parent / "published", env


@pytest.fixture
def simulated_home(scratch_home, stack_settings) -> tuple[Path, Path, dict[str, str]]:
    """`scratch_home` with the stack running: `mirador run`'s own loader follows no topic, but it still
    connects to Kafka."""
    return scratch_home
