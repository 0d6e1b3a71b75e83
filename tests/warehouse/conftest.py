"""Helpers for the warehouse's tests: captured Debezium messages as Kafka messages, a scratch warehouse,
and the services running beside a fresh mirador home for the pipeline's end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Message

from cdc.config import SERVICES
from mirador.home import PROJECT_ROOT
from tests.ports import free_ports
from warehouse.ingest.configuration import LoaderSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"

STEPS = ["snapshot", "insert", "update_toast_unchanged", "update", "key_change", "delete", "transaction",
         "add_column", "widen_column", "truncate"]
"""Capture steps in the order they ran (`cdc/capture.py`); `heartbeat.jsonl` was captured last."""


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def captured(step: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{step}.jsonl").read_text().splitlines()]


def as_message(record: dict, **override) -> Message:
    """A captured record as the Message the consumer hands over: same topic, offset, key, value, headers."""
    record = record | override
    headers = [(k, _bytes(v)) for k, v in record["headers"]] or None
    return Message(topic=record["topic"], partition=record["partition"], offset=record["offset"],
                   key=_bytes(record["key"]) if isinstance(record["key"], str) or record["key"] is None
                   else record["key"],
                   value=_bytes(record["value"]) if isinstance(record["value"], str) or record["value"] is None
                   else record["value"], headers=headers)


def messages(step: str) -> list[Message]:
    return [as_message(r) for r in captured(step)]


def expected_rows() -> dict[str, list[dict]]:
    return json.loads((FIXTURES / "expected_rows.json").read_text())


@pytest.fixture
def loader_settings(tmp_path: Path) -> LoaderSettings:
    """Settings pointing at a scratch warehouse file; Kafka settings as the environment says."""
    return LoaderSettings(warehouse_path=tmp_path / "warehouse" / "mirador.duckdb")


ROOT = Path(__file__).resolve().parents[2]


def loader_env(settings: LoaderSettings, topics: list[str], **extra: str) -> dict[str, str]:
    """Environment for a `mirador load` subprocess on these topics and this scratch warehouse."""
    return os.environ | {
        "MIRADOR_WAREHOUSE_PATH": str(settings.warehouse),
        "MIRADOR_LOADER_TOPICS": json.dumps(topics),
        "MIRADOR_LOADER_GROUP": f"mirador-loader-test-{uuid.uuid4().hex[:8]}",
    } | extra


MIRADOR = str(ROOT / ".venv" / "bin" / "mirador")
BIN = Path(sys.executable).parent


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
    subprocess.run([BIN / "mirador", "services", "up"], env=env, check=True, timeout=120, cwd=PROJECT_ROOT)
    yield env, {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}, home
    subprocess.run([BIN / "mirador", "services", "down"], env=env, timeout=120, cwd=PROJECT_ROOT)
    shutil.rmtree(home, ignore_errors=True)


def verify(env: dict) -> None:
    """`mirador verify` in `env` passes: every view equals what the services' databases hold."""
    check = subprocess.run([BIN / "mirador", "verify", "--timeout", "300"], env=env, capture_output=True,
                           text=True, timeout=400, cwd=PROJECT_ROOT)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "orders_with_invoices" in check.stdout and "differences" not in check.stdout


@pytest.fixture
def simulated_home(tmp_path: Path, stack_settings) -> tuple[Path, Path, dict[str, str]]:
    """A scratch mirador home whose raw changelog a simulated service lands (tests/dbt_project/changelog.py):
    (warehouse file, published directory, environment for `mirador` there). `mirador run`'s own loader
    follows no topic, but it still connects to Kafka: the stack runs."""
    warehouse = tmp_path / "warehouse" / "mirador.duckdb"
    warehouse.parent.mkdir()
    env = {**os.environ, "MIRADOR_HOME": str(tmp_path), "MIRADOR_WAREHOUSE_PATH": str(warehouse),
           "MIRADOR_LOADER_TOPICS": '["^mirador-test-no-such-topic$"]', "MIRADOR_RUN_INTERVAL": "0.2"}
    return warehouse, warehouse.parent / "published", env
