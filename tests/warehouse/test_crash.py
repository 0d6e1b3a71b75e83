"""kill -9 the loader at random points while it drains a backlog: every event lands exactly once.

The backlog is copies of a real captured envelope (`heartbeat.jsonl`) with new keys, produced straight
to a dedicated topic. The loader is killed at least ten times mid-drain, checked after every kill, and
finally left to finish: then each event is in `raw` once and the positions stored in DuckDB are the
topic's end, which is also what Kafka got as the group's committed offset.
"""

from __future__ import annotations

import random
import subprocess
import time
import uuid

import duckdb
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.warehouse.backlog import Template, create_topic, delete_topics, produce
from tests.warehouse.captures import heartbeat_template
from tests.warehouse.commands import MIRADOR, loader_env

pytestmark = pytest.mark.stack

BACKLOG = 100_000
KILLS = 10


def landed(path) -> tuple[int, int, int, int]:
    """(rows, distinct offsets, distinct ids, stored next offset) of the crash table."""
    if not path.exists():
        return 0, 0, 0, 0
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = {
            r[0] for r in conn.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchall()
        }
        if not tables:
            return (
                0,
                0,
                0,
                (
                    conn.execute("select coalesce(max(next_offset), 0) from loader.positions").fetchone()[0]
                    if conn.execute("select count(*) from duckdb_tables() where schema_name = 'loader'").fetchone()[0]
                    else 0
                ),
            )
        (table,) = tables
        rows, offsets, ids = conn.execute(
            f'select count(*), count(distinct _offset), count(distinct id) from raw."{table}"'
        ).fetchone()
        stored = conn.execute("select coalesce(max(next_offset), 0) from loader.positions").fetchone()[0]
    return rows, offsets, ids, stored


def wait_for_line(log, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text() and process.poll() is None:
        assert time.monotonic() < deadline, f"no {text!r} in {timeout}s:\n{log.read_text()[-2000:]}"
        time.sleep(0.02)


def test_kill_9_at_random_points_loses_and_duplicates_nothing(stack_settings, loader_settings):
    bootstrap = stack_settings.kafka_bootstrap_servers
    topic = f"crash{uuid.uuid4().hex[:8]}.public.beats"
    template = Template(heartbeat_template())
    create_topic(bootstrap, topic)
    env = loader_env(loader_settings, [topic], MIRADOR_KAFKA_BOOTSTRAP=bootstrap, MIRADOR_LOADER_BATCH_MESSAGES="2500")
    produced = produce(bootstrap, topic, [template], BACKLOG)
    rng = random.Random(20260327)
    kills = mid_drain = 0
    try:
        while True:
            log = loader_settings.warehouse.parent.parent / f"run{kills}-{produced}.log"
            with log.open("w") as stderr:
                process = subprocess.Popen(
                    [MIRADOR, "load", "--once", "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
                )
            if kills < KILLS:
                # mostly once batches are landing (mid-batch, mid-commit), sometimes during start-up
                if rng.random() < 0.8:
                    wait_for_line(log, "landed batch=", process, timeout=60)
                    time.sleep(rng.uniform(0.0, 0.8))
                else:
                    time.sleep(rng.uniform(0.0, 0.6))
                if process.poll() is None:
                    process.kill()  # SIGKILL: no handler, no cleanup
                    process.wait()
                    kills += 1
                    rows, offsets, ids, stored = landed(loader_settings.warehouse)
                    assert rows == offsets == ids == stored, f"after kill {kills}: {(rows, offsets, ids, stored)}"
                    mid_drain += 0 < rows < produced
                    continue
                # drained before we could kill it: give it more backlog, keep killing
                assert process.wait() == 0, log.read_text()[-2000:]
                produced += produce(bootstrap, topic, [template], 20_000, first_id=produced + 1)
                continue
            assert process.wait(timeout=120) == 0, log.read_text()[-2000:]
            break
        assert landed(loader_settings.warehouse) == (produced, produced, produced, produced)
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": env["MIRADOR_LOADER_GROUP"]})
        try:
            committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
            _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        finally:
            consumer.close()
        assert committed == end == produced
        assert kills >= KILLS and mid_drain >= KILLS // 2, (kills, mid_drain)
    finally:
        delete_topics(bootstrap, [topic])
