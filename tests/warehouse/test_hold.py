"""Inside `mirador run` the loader holds its batch while dbt builds, and lands it as the build ends; each
landing holds what arrives next until the pipeline releases it."""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager

import duckdb
import pytest

from tests.warehouse.conftest import captured
from tests.warehouse.replay import Template, create_topic, delete_topics, replay
from warehouse.ingest.load import Loader

pytestmark = pytest.mark.stack


@contextmanager
def following(stack_settings, loader_settings, **options):
    """A loader following a new topic of heartbeats; yields it and `send(first_id)` (100 beats)."""
    bootstrap = stack_settings.kafka_bootstrap_servers
    topic = f"hold{uuid.uuid4().hex[:8]}.public.beats"
    template = Template(next(r for r in captured("heartbeat") if r["topic"].endswith("mirador.heartbeat")))
    create_topic(bootstrap, topic)
    settings = loader_settings.model_copy(update={
        "kafka_bootstrap": bootstrap, "loader_topics": [topic], "loader_batch_seconds": 0.1,
        "loader_group": f"mirador-loader-test-{uuid.uuid4().hex[:8]}"})
    stop = threading.Event()
    loader = Loader(settings, follow=True, stop=stop, **options)
    thread = threading.Thread(target=loader.run, daemon=True)
    thread.start()
    try:
        yield loader, lambda first_id: replay(bootstrap, topic, [template], 100, first_id=first_id)
    finally:
        stop.set()
        thread.join(timeout=60)
        delete_topics(bootstrap, [topic])
    assert not thread.is_alive()
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        table = conn.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchone()[0]
        assert conn.execute(f'select count(*), count(distinct id) from raw."{table}"').fetchone() == (200, 200)


def test_a_held_batch_lands_once_released(stack_settings, loader_settings):
    with following(stack_settings, loader_settings) as (loader, send):
        send(1)
        assert loader.landed.wait(30), "nothing landed while not held"
        assert not loader.hold.is_set()
        time.sleep(0.5)  # five batch times: whatever else the first replay brings is in

        loader.hold.set()
        loader.landed.clear()
        send(101)
        assert not loader.landed.wait(1.5), "a batch landed while the loader was held"

        loader.hold.clear()
        assert loader.landed.wait(10), "the held batch did not land once released"


def test_a_landing_holds_what_arrives_next_until_released(stack_settings, loader_settings):
    """`hold_on_landing` (`mirador run` builds on every landing): the batch after a landing waits for the
    release, though nobody set `hold` between the two."""
    with following(stack_settings, loader_settings, hold_on_landing=True) as (loader, send):
        send(1)
        assert loader.landed.wait(30), "nothing landed"
        assert loader.hold.is_set(), "the landing did not hold what comes next"
        time.sleep(0.5)

        loader.landed.clear()
        send(101)
        assert not loader.landed.wait(1.5), "a batch landed before the release"

        loader.hold.clear()
        assert loader.landed.wait(10), "the held batch did not land once released"
