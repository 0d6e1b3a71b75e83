"""Fixtures of the warehouse's tests: a scratch warehouse, a scratch mirador home fed by a simulated
service, and the services running beside a fresh mirador home for the pipeline's end-to-end tests.

Helpers live in plain modules: `captures` (the captured Debezium messages), `backlog` (messages
produced to Kafka), `commands` (`mirador` as the tests run it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from cdc.config import SERVICES
from mirador.home import PROJECT_ROOT
from tests.ports import free_ports
from tests.warehouse.commands import MIRADOR
from warehouse.ingest.configuration import LoaderSettings


@pytest.fixture
def loader_settings(tmp_path: Path) -> LoaderSettings:
    """Settings pointing at a scratch warehouse file; Kafka settings as the environment says."""
    return LoaderSettings(warehouse_path=tmp_path / "warehouse" / "mirador.duckdb")


@pytest.fixture
def pipeline_env(stack_settings):
    """The four services running on free ports, and the environment of a fresh mirador home beside them:
    (env, service URLs, home)."""
    home = PROJECT_ROOT / ".mirador" / f"test-e2e-{uuid.uuid4().hex[:8]}"
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    # Only the stack's settings carry over; other fixtures' ports, tokens, DSNs and paths do not.
    own_keys = (*(f"MIRADOR_{s.upper()}_" for s in SERVICES), "MIRADOR_WAREHOUSE_PATH", "MIRADOR_LOADER_")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(own_keys)}
    env = {**inherited, "MIRADOR_HOME": str(home), "MIRADOR_JARS_DIR": str(stack_settings.jars),
           **{f"MIRADOR_{s.upper()}_PORT": str(p) for s, p in ports.items()}}
    subprocess.run([MIRADOR, "services", "up"], env=env, check=True, timeout=120, cwd=PROJECT_ROOT)
    yield env, {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}, home
    subprocess.run([MIRADOR, "services", "down"], env=env, timeout=120, cwd=PROJECT_ROOT)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def scratch_home(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A scratch mirador home whose raw changelog a simulated service lands (tests/dbt_project/changelog.py):
    (warehouse file, published directory, environment for `mirador` there)."""
    warehouse = tmp_path / "warehouse" / "mirador.duckdb"
    warehouse.parent.mkdir()
    env = {**os.environ, "MIRADOR_HOME": str(tmp_path), "MIRADOR_WAREHOUSE_PATH": str(warehouse),
           "MIRADOR_LOADER_TOPICS": '["^mirador-test-no-such-topic$"]', "MIRADOR_RUN_INTERVAL": "0.2"}
    return warehouse, warehouse.parent / "published", env


@pytest.fixture
def simulated_home(scratch_home, stack_settings) -> tuple[Path, Path, dict[str, str]]:
    """`scratch_home` with the stack running: `mirador run`'s own loader follows no topic, but it still
    connects to Kafka."""
    return scratch_home
