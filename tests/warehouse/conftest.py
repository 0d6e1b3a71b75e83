"""Helpers for the loader's tests: captured Debezium messages as Kafka messages, a scratch warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Message

from warehouse.configuration import LoaderSettings

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
    import os
    import uuid

    return os.environ | {
        "MIRADOR_WAREHOUSE_PATH": str(settings.warehouse),
        "MIRADOR_LOADER_TOPICS": json.dumps(topics),
        "MIRADOR_LOADER_GROUP": f"mirador-loader-test-{uuid.uuid4().hex[:8]}",
    } | extra


MIRADOR = str(ROOT / ".venv" / "bin" / "mirador")
