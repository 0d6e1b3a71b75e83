"""Real Debezium envelopes of a typical service table, captured from the running stack for the bench.

A scratch table shaped like a service's (uuid, text, numeric money, integer, enum-like text,
timestamptz, jsonb, text[]) is created in the `inventory` database, where the connector captures
every `public` table; one row is inserted, updated twice and deleted, and the messages Debezium
sent for it (creates, updates, the delete and its tombstone) are read back and the table dropped.
"""

from __future__ import annotations

import time
import uuid

import psycopg
from confluent_kafka import Consumer

from cdc import postgres
from cdc.config import StackSettings
from tests.warehouse.backlog import delete_topics

DDL = """
create table {table} (
    id          bigint primary key,
    public_id   uuid not null,
    sku         text not null,
    name        text not null,
    unit_price  numeric(12, 2) not null,
    quantity    integer not null,
    status      text not null,
    attributes  jsonb,
    tags        text[],
    created_at  timestamptz not null,
    updated_at  timestamptz not null
)
"""


def capture_envelopes(settings: StackSettings, timeout: float = 60.0) -> list[dict]:
    table = f"loader_bench_{uuid.uuid4().hex[:8]}"
    topic = f"inventory.public.{table}"
    with psycopg.connect(postgres.service_dsn(settings, "inventory"), autocommit=True) as conn:
        conn.execute(DDL.format(table=table))
        try:
            conn.execute(
                f"insert into {table} values (1, gen_random_uuid(), 'SKU-000123', 'Espresso cup, "
                'white porcelain\', 12.90, 40, \'active\', \'{"color": "white", "volume_ml": 90}\', '
                "'{kitchen,porcelain}', now(), now())"
            )
            conn.execute(f"update {table} set quantity = 39, updated_at = now() where id = 1")
            conn.execute(f"update {table} set unit_price = 13.50, status = 'repriced', updated_at = now() where id = 1")
            conn.execute(f"delete from {table} where id = 1")
            return _read(settings, topic, expected=5, timeout=timeout)
        finally:
            conn.execute(f"drop table {table}")
            delete_topics(settings.kafka_bootstrap_servers, [topic])


def _read(settings: StackSettings, topic: str, expected: int, timeout: float) -> list[dict]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"bench-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    records: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(records)} of {expected} messages on {topic} after {timeout:.0f}s")
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            records.append(
                {
                    "topic": msg.topic(),
                    "key": msg.key() and msg.key().decode(),
                    "value": msg.value() and msg.value().decode(),
                    "headers": [(k, v and v.decode()) for k, v in (msg.headers() or [])],
                }
            )
    finally:
        consumer.close()
    return records
