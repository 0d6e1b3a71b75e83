"""A backlog of real messages: captured Debezium envelopes produced to a Kafka topic with new keys.

Each template is a captured message whose primary key `id` is replaced by a placeholder once; a
copy is the template text with a new id spliced in, so producing a million costs string joins, not
JSON work. Everything else (schema, source block, headers) stays as Debezium sent it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

SENTINEL = 987654321987654


class Template:
    def __init__(self, record: dict) -> None:
        key, value = json.loads(record["key"]) if record["key"] else None, record["value"]
        self.headers = [(k, v.encode() if v is not None else None) for k, v in record.get("headers", [])]
        if key is not None:
            key["payload"]["id"] = SENTINEL
            self.key_parts = json.dumps(key, separators=(",", ":")).encode().split(str(SENTINEL).encode())
        else:
            self.key_parts = None
        if value is None:
            self.value_parts = None
            return
        envelope = json.loads(value)
        for side in ("before", "after"):
            if envelope["payload"].get(side):
                envelope["payload"][side]["id"] = SENTINEL
        self.value_parts = (
            json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode().split(str(SENTINEL).encode())
        )

    def key(self, new_id: int) -> bytes | None:
        return None if self.key_parts is None else str(new_id).encode().join(self.key_parts)

    def value(self, new_id: int) -> bytes | None:
        return None if self.value_parts is None else str(new_id).encode().join(self.value_parts)


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create `topic` and return once every partition has a leader (asking for offsets before that
    fails with NOT_LEADER_FOR_PARTITION)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result()
    deadline = time.monotonic() + 30
    while True:
        found = admin.list_topics(topic, timeout=10).topics.get(topic)
        if (
            found
            and found.error is None
            and len(found.partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in found.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no leader for every partition after 30s")
        time.sleep(0.1)


def delete_topics(bootstrap: str, topics: Iterable[str]) -> None:
    topics = list(topics)
    if topics:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_topics(topics).values():
            try:
                future.result()
            except Exception:  # already gone is fine for clean-up
                pass


def produce(bootstrap: str, topic: str, templates: list[Template], count: int, first_id: int = 1) -> int:
    """Produce `count` messages cycling through the templates, message i with id `first_id + i`."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 512 * 1024,
            "acks": "1",
        }
    )
    for i in range(count):
        template = templates[i % len(templates)]
        new_id = first_id + i
        while True:
            try:
                producer.produce(
                    topic, value=template.value(new_id), key=template.key(new_id), headers=template.headers or None
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError(f"could not deliver every message of the backlog to {topic}")
    return count
