"""Kafka's committed offsets (for lag dashboards) catch up with the positions stored in DuckDB, also
when a loader was killed between the two commits and the next run has nothing left to land."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.warehouse.backlog import Template, create_topic, delete_topics, produce
from tests.warehouse.captures import heartbeat_template
from warehouse.ingest.load import Loader

pytestmark = pytest.mark.stack


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


def test_a_run_with_nothing_to_land_commits_the_stored_positions(stack_settings, loader_settings):
    bootstrap = stack_settings.kafka_bootstrap_servers
    topic = f"commit{uuid.uuid4().hex[:8]}.public.beats"
    template = Template(heartbeat_template())
    create_topic(bootstrap, topic)
    settings = loader_settings.model_copy(
        update={
            "kafka_bootstrap": bootstrap,
            "loader_topics": [topic],
            "loader_group": f"mirador-loader-test-{uuid.uuid4().hex[:8]}",
        }
    )
    try:
        produce(bootstrap, topic, [template], 300)
        assert Loader(settings).run().events == 300
        assert committed(bootstrap, settings.loader_group, topic) == 300

        # As if the loader had been killed after committing in DuckDB, before Kafka heard of it.
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": settings.loader_group})
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 100)], asynchronous=False)
        finally:
            consumer.close()
        assert committed(bootstrap, settings.loader_group, topic) == 100

        assert Loader(settings).run().events == 0
        assert committed(bootstrap, settings.loader_group, topic) == 300
    finally:
        delete_topics(bootstrap, [topic])
