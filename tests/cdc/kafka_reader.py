"""Read Debezium messages back from Kafka in tests."""

from __future__ import annotations

import json
import time
import uuid

from confluent_kafka import Consumer, KafkaError


class TopicReader:
    """A throw-away consumer on one topic (which may not exist yet), from its beginning."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"mirador-test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        self.consumer.subscribe([f"^{topic.replace('.', '[.]')}$"])

    def read(self, count: int, timeout: float = 60.0) -> list[dict]:
        """`count` messages as {key, value, received_at}: JSON-decoded; None for a tombstone."""
        messages: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or (
                msg.error() and msg.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART)
            ):
                continue
            assert not msg.error(), msg.error()
            messages.append(
                {
                    "key": json.loads(msg.key()) if msg.key() else None,
                    "value": json.loads(msg.value()) if msg.value() else None,
                    "received_at": time.time(),
                }
            )
        return messages

    def close(self) -> None:
        self.consumer.close()
