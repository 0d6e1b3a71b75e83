"""Inside `mirador run` the loader holds its batch while dbt builds, and lands it as the build ends; each
landing holds what arrives next until the pipeline releases it.

A held batch stays open: messages read while it is held, seconds apart, land together, in one batch,
once it is released. A loader that closed the batch and merely landed it slowly would land them apart.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager

import duckdb
import pytest

from tests.warehouse.backlog import Template, create_topic, delete_topics, produce
from tests.warehouse.captures import heartbeat_template
from warehouse.ingest.load import Loader

pytestmark = pytest.mark.stack

BATCH_SECONDS = 0.1
BEATS = 100


@contextmanager
def following(stack_settings, loader_settings, **options):
    """A loader following a new topic of heartbeats; yields it, `send(first_id)` (100 beats, once read by
    the loader) and the warehouse file, readable once the loader has stopped."""
    bootstrap = stack_settings.kafka_bootstrap_servers
    topic = f"hold{uuid.uuid4().hex[:8]}.public.beats"
    template = Template(heartbeat_template())
    create_topic(bootstrap, topic)
    settings = loader_settings.model_copy(
        update={
            "kafka_bootstrap": bootstrap,
            "loader_topics": [topic],
            "loader_batch_seconds": BATCH_SECONDS,
            "loader_group": f"mirador-loader-test-{uuid.uuid4().hex[:8]}",
        }
    )
    stop = threading.Event()
    loader = Loader(settings, follow=True, stop=stop, **options)
    thread = threading.Thread(target=loader.run, daemon=True)
    thread.start()

    def send(first_id: int) -> None:
        """Produce beats `first_id`.. and wait until the loader has read them (offset = id - 1)."""
        produce(bootstrap, topic, [template], BEATS, first_id=first_id)
        deadline = time.monotonic() + 30
        while getattr(loader, "consumer", None) is None or loader.consumer.position((topic, 0)) < first_id - 1 + BEATS:
            assert time.monotonic() < deadline, "the loader did not read what was sent"
            time.sleep(0.01)

    try:
        yield loader, send
    finally:
        stop.set()
        thread.join(timeout=60)
        delete_topics(bootstrap, [topic])
    assert not thread.is_alive()


def _batches_of(warehouse, ids: range) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        table = conn.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchone()[0]
        assert conn.execute(f'select count(*), count(distinct id) from raw."{table}"').fetchone() == (3 * BEATS,) * 2
        return conn.execute(
            f'select count(distinct _batch_id) from raw."{table}" where id between ? and ?', [ids.start, ids.stop - 1]
        ).fetchone()[0]


def _held_then_released(loader, send) -> None:
    """Two sends read while held, a few batch times apart: nothing lands until the release, then both."""
    loader.landed.clear()
    send(BEATS + 1)
    time.sleep(10 * BATCH_SECONDS)
    send(2 * BEATS + 1)
    assert not loader.landed.wait(10 * BATCH_SECONDS), "a batch landed while the loader was held"

    loader.hold.clear()
    assert loader.landed.wait(10), "the held batch did not land once released"


def test_a_held_batch_lands_once_released(stack_settings, loader_settings):
    with following(stack_settings, loader_settings) as (loader, send):
        send(1)
        assert loader.landed.wait(30), "nothing landed while not held"
        assert not loader.hold.is_set()
        time.sleep(5 * BATCH_SECONDS)  # whatever else the first send brings is in
        loader.hold.set()
        _held_then_released(loader, send)
    assert _batches_of(loader_settings.warehouse, range(BEATS + 1, 3 * BEATS + 1)) == 1


def test_a_landing_holds_what_arrives_next_until_released(stack_settings, loader_settings):
    """`hold_on_landing` (`mirador run` builds on every landing): the batch after a landing waits for the
    release, though nobody set `hold` between the two."""
    with following(stack_settings, loader_settings, hold_on_landing=True) as (loader, send):
        send(1)
        assert loader.landed.wait(30), "nothing landed"
        assert loader.hold.is_set(), "the landing did not hold what comes next"
        time.sleep(5 * BATCH_SECONDS)
        _held_then_released(loader, send)
    assert _batches_of(loader_settings.warehouse, range(BEATS + 1, 3 * BEATS + 1)) == 1
