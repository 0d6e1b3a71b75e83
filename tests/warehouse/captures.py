"""The captured Debezium messages (tests/fixtures/debezium, `cdc/capture.py`) as the loader's consumer
hands them over, and what Postgres held after each capture step."""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka import Message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debezium"

STEPS = [
    "snapshot",
    "insert",
    "update_toast_unchanged",
    "update",
    "key_change",
    "delete",
    "transaction",
    "add_column",
    "widen_column",
    "truncate",
]
"""Capture steps in the order they ran (`cdc/capture.py`); `heartbeat.jsonl` was captured last."""


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def captured(step: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{step}.jsonl").read_text().splitlines()]


def as_message(record: dict, **override) -> Message:
    """A captured record as the Message the consumer hands over: same topic, offset, key, value, headers."""
    record = record | override
    headers = [(k, _bytes(v)) for k, v in record["headers"]] or None
    return Message(
        topic=record["topic"],
        partition=record["partition"],
        offset=record["offset"],
        key=_bytes(record["key"]) if isinstance(record["key"], str) or record["key"] is None else record["key"],
        value=_bytes(record["value"])
        if isinstance(record["value"], str) or record["value"] is None
        else record["value"],
        headers=headers,
    )


def messages(step: str) -> list[Message]:
    return [as_message(r) for r in captured(step)]


def expected_rows() -> dict[str, list[dict]]:
    return json.loads((FIXTURES / "expected_rows.json").read_text())


def heartbeat_template() -> dict:
    """The captured heartbeat row change: the envelope the backlogs of the loader's tests copy."""
    return next(r for r in captured("heartbeat") if r["topic"].endswith("mirador.heartbeat"))
