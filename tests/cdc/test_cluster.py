"""Capture on a Kafka Connect cluster: a worker killed with SIGKILL hands its task to a survivor, and
every committed row still reaches Kafka.

A scratch group of two native workers (their own group id, internal topics and REST ports) beside the
session's stack, on its Kafka and Postgres, with scratch databases, slots, topic prefixes and
connectors of its own: the shared stack and its connectors are never touched.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient
from psycopg import sql

from cdc import connect, postgres
from cdc.config import StackSettings
from mirador.home import PROJECT_ROOT
from tests.cdc import workers
from tests.ports import free_port_run

pytestmark = pytest.mark.stack

WORKERS = 2
DATABASES = 2
"""One Debezium task per connector: two connectors spread over the two workers."""

ACTIVE_SLOT = "select 1 from pg_replication_slots where slot_name = any(%s) and active"
QUIET = (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART)


@dataclass
class Cluster:
    settings: StackSettings
    databases: list[str]
    connectors: list[str] = field(default_factory=list)

    def topic(self, database: str) -> str:
        return f"{database}.public.events"


@pytest.fixture
def cluster(stack_settings) -> Iterator[Cluster]:
    tag = uuid.uuid4().hex[:8]
    settings = stack_settings.model_copy(
        update={
            "home": PROJECT_ROOT / ".mirador" / f"test-cluster-{tag}",
            "jars_dir": stack_settings.jars,
            "pg_dsn": postgres.superuser_dsn(stack_settings),
            "kafka_bootstrap": stack_settings.kafka_bootstrap_servers,
            "connect_url": None,
            "connect_port": free_port_run(WORKERS),
            "connect_workers": WORKERS,
            "connect_group": f"mirador-test-cluster-{tag}",
            "connect_heap": "512m",
            # Two JVMs starting on a shared 2-core machine: generous, as the deadline is not what is tested.
            "startup_timeout": 300.0,
        }
    )
    found = Cluster(settings, [f"cluster_{tag}_{n}" for n in range(1, DATABASES + 1)])
    try:
        postgres.bootstrap(settings, services=tuple(found.databases))
        for database in found.databases:
            with psycopg.connect(postgres.service_dsn(settings, database), autocommit=True) as conn:
                conn.execute("create table events (id bigint primary key, note text not null)")
        connect.start(settings)
        yield found
    finally:
        _remove(found)


def _remove(cluster: Cluster) -> None:
    """Connectors, workers, slots, databases, roles, topics and home of the scratch cluster."""
    settings = cluster.settings
    for name in cluster.connectors:
        try:
            connect.delete(settings, name)
        except Exception:  # noqa: BLE001 - the workers may be gone; they are stopped next anyway
            pass
    connect.stop(settings)
    slots = [f"mirador_{database}" for database in cluster.databases]
    with psycopg.connect(postgres.superuser_dsn(settings), autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while conn.execute(ACTIVE_SLOT, (slots,)).fetchone():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        conn.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = any(%s)", (slots,)
        )
        for database in cluster.databases:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(database)))
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    prefixes = tuple(f"{database}." for database in cluster.databases)
    heartbeats = {f"__debezium-heartbeat.{database}" for database in cluster.databases}
    group = settings.connect_group
    topics = [
        topic
        for topic in admin.list_topics(timeout=10).topics
        if topic.startswith(prefixes) or topic in heartbeats or topic.startswith(f"{group}-")
    ]
    for future in admin.delete_topics(topics).values() if topics else []:
        future.result()
    shutil.rmtree(settings.home, ignore_errors=True)


class Traffic(threading.Thread):
    """Single-row insert transactions round the scratch databases; the ids Postgres committed, by database."""

    def __init__(self, settings: StackSettings, databases: list[str]) -> None:
        super().__init__(daemon=True)
        self.dsns = {database: postgres.service_dsn(settings, database) for database in databases}
        self.committed: dict[str, set[int]] = {database: set() for database in databases}
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conns = {database: psycopg.connect(dsn, autocommit=True) for database, dsn in self.dsns.items()}
            next_id = 1
            while not self.stopping.is_set():
                for database, conn in conns.items():
                    conn.execute("insert into events (id, note) values (%s, %s)", (next_id, f"row {next_id}"))
                    self.committed[database].add(next_id)
                next_id += 1
                time.sleep(0.01)
            for conn in conns.values():
                conn.close()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            self.error = err

    def total(self) -> int:
        return sum(len(ids) for ids in self.committed.values())

    def stop(self) -> dict[str, set[int]]:
        self.stopping.set()
        self.join(30)
        assert self.error is None, f"the traffic failed: {self.error!r}"
        return self.committed


def _connector(cluster: Cluster, database: str) -> dict[str, str]:
    settings = cluster.settings
    config = connect.load_config(connect.connector_files(("customers",))[0], connect.placeholders(settings))
    return config | {
        "name": f"mirador-test-{database}",
        "database.dbname": database,
        "topic.prefix": database,
        "slot.name": f"mirador_{database}",
    }


def _keys(cluster: Cluster, expected: dict[str, set[int]], timeout: float = 120) -> dict[str, set[int]]:
    """The distinct row ids on each database's topic, read until they cover `expected` or time runs out."""
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.settings.kafka_bootstrap_servers,
            "group.id": f"mirador-test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    by_topic = {cluster.topic(database): database for database in cluster.databases}
    consumer.subscribe(list(by_topic))
    seen: dict[str, set[int]] = {database: set() for database in cluster.databases}
    deadline = time.monotonic() + timeout
    try:
        while any(not expected[d] <= seen[d] for d in seen) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error():
                    assert msg.error().code() in QUIET, msg.error()
                    continue
                seen[by_topic[msg.topic()]].add(json.loads(msg.key())["payload"]["id"])
    finally:
        consumer.close()
    return seen


def test_a_killed_workers_task_moves_to_a_survivor_and_no_committed_row_is_lost(cluster):
    settings = cluster.settings
    assert len(connect.worker_pids(settings)) == WORKERS
    traffic = Traffic(settings, cluster.databases)
    traffic.start()
    try:
        configs = [_connector(cluster, database) for database in cluster.databases]
        for config in configs:
            connect.register(settings, config)
            cluster.connectors.append(config["name"])
        for name in cluster.connectors:
            connect.wait_running(settings, name, timeout=120)
        assert set(connect.assignments(settings)) <= set(connect.worker_pids(settings))

        victim = workers.holder(settings, cluster.connectors[0])
        on_victim = [name for name in cluster.connectors if workers.holder(settings, name) == victim]
        workers.kill(settings, victim)
        killed_at = time.monotonic()
        survivors = {workers.wait_moved(settings, name, away_from=victim) for name in on_victim}
        seconds = time.monotonic() - killed_at
        print(f"\n{len(on_victim)} task(s) moved off {victim} to {survivors} in {seconds:.1f}s after SIGKILL")
        assert survivors <= set(connect.worker_pids(settings)) - {victim}

        # Capture goes on from the survivor: rows committed from now on must arrive as well.
        after_move = traffic.total()
        deadline = time.monotonic() + 60
        while traffic.total() < after_move + 200 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        committed = traffic.stop()
    assert traffic.total() >= after_move + 200, "the traffic stalled after the move"

    seen = _keys(cluster, committed)
    for database in cluster.databases:
        missing = sorted(committed[database] - seen[database])
        assert not missing, f"{len(missing)} committed rows of {database} never reached Kafka: {missing[:10]}..."
        assert seen[database] == committed[database], "rows reached Kafka that Postgres never committed"

    # Nothing left behind: the dead worker holds nothing, each database keeps one slot, in use.
    deadline = time.monotonic() + 60
    while victim in connect.assignments(settings) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert victim not in connect.assignments(settings)
    with psycopg.connect(postgres.superuser_dsn(settings)) as conn:
        slots = conn.execute(
            "select database, active from pg_replication_slots where database = any(%s) order by database",
            (cluster.databases,),
        ).fetchall()
    assert slots == [(database, True) for database in cluster.databases]

    # `stack up` brings the killed worker back into the group.
    assert connect.start(settings)
    assert len(connect.worker_pids(settings)) == WORKERS
