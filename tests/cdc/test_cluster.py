"""Capture on a Kafka Connect cluster: a worker killed with SIGKILL hands its task to a survivor, and
every committed row still reaches Kafka.

A scratch group of two native workers (their own group id, internal topics and REST ports) beside the
session's stack, on its Kafka and Postgres, with scratch databases, slots, topic prefixes and
connectors of its own: the shared stack and its connectors are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import sql

from cdc import connect, postgres
from cdc.config import StackSettings
from mirador.home import PROJECT_ROOT
from tests.cdc import workers
from tests.ports import free_port_run
from tests.warehouse.commands import MIRADOR

pytestmark = pytest.mark.stack

WORKERS = 2
DATABASES = 2
"""One Debezium task per connector: two connectors spread over the two workers."""

ACTIVE_SLOT = "select 1 from pg_replication_slots where slot_name = any(%s) and active"
SLOTS = "select database, active from pg_replication_slots where database = any(%s) order by database"
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
    # Assigned, not subscribed: no group to join. Each topic has one partition.
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING) for topic in by_topic])
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


def _until(holds, what: str, then=None, timeout: float = 60) -> None:
    """Poll `holds` until true; after `timeout`, fail with `what` and what `then()` shows now."""
    deadline = time.monotonic() + timeout
    while not holds():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}" + (f" ({then()})" if then else "")
        time.sleep(0.5)


def _tasks_by_worker(settings: StackSettings) -> dict[str, list[str]]:
    return {worker: held["tasks"] for worker, held in connect.assignments(settings).items() if held["tasks"]}


def _spread(settings: StackSettings) -> bool:
    """Each worker runs a task."""
    return len(_tasks_by_worker(settings)) == settings.connect_workers


def _connectors_known_to(worker_id: str) -> list[str]:
    """The connectors one worker lists: those of its group once it has joined."""
    try:
        return sorted(httpx.get(f"http://{worker_id}/connectors", timeout=10).json())
    except (httpx.HTTPError, ValueError):
        return []


def _slots(cluster: Cluster) -> list[tuple[str, bool]]:
    """The replication slots of the scratch databases: (database, in use)."""
    with psycopg.connect(postgres.superuser_dsn(cluster.settings)) as conn:
        return conn.execute(SLOTS, (cluster.databases,)).fetchall()


def _stack_status(settings: StackSettings) -> list[str]:
    """`mirador stack status` as a user of this cluster runs it: its lines."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MIRADOR_")}
    env = inherited | {
        "MIRADOR_HOME": str(settings.home),
        "MIRADOR_JARS_DIR": str(settings.jars),
        "MIRADOR_PG_DSN": settings.pg_dsn,
        "MIRADOR_KAFKA_BOOTSTRAP": settings.kafka_bootstrap_servers,
        "MIRADOR_CONNECT_PORT": str(settings.connect_port),
        "MIRADOR_CONNECT_WORKERS": str(settings.connect_workers),
        "MIRADOR_CONNECT_GROUP": settings.connect_group,
    }
    done = subprocess.run([MIRADOR, "stack", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert not done.stderr, done.stderr
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_a_killed_workers_task_moves_to_a_survivor_and_no_committed_row_is_lost(cluster):
    settings = cluster.settings
    names = {w.worker_id: w.name for w in connect.workers(settings)}
    assert set(connect.worker_pids(settings)) == set(names)
    traffic = Traffic(settings, cluster.databases)
    traffic.start()
    try:
        configs = [_connector(cluster, database) for database in cluster.databases]
        for config in configs:
            connect.register(settings, config)
            cluster.connectors.append(config["name"])
        for name in cluster.connectors:
            connect.wait_running(settings, name, timeout=120)
        # The tasks spread: each worker runs one.
        _until(lambda: _spread(settings), "a task on each worker", lambda: _tasks_by_worker(settings))

        victim = workers.holder(settings, cluster.connectors[0])
        on_victim = [name for name in cluster.connectors if workers.holder(settings, name) == victim]
        workers.kill(settings, victim)
        killed_at = time.monotonic()
        survivors = {workers.wait_moved(settings, name, away_from=victim) for name in on_victim}
        seconds = time.monotonic() - killed_at
        print(f"\n{len(on_victim)} task(s) moved off {victim} to {survivors} in {seconds:.1f}s after SIGKILL")
        (survivor,) = survivors
        assert survivor in connect.worker_pids(settings) and survivor != victim

        # Capture goes on from the survivor: rows committed from now on must arrive as well.
        after_move = traffic.total()
        _until(lambda: traffic.total() >= after_move + 200 or traffic.error, "200 more rows committed")
    finally:
        committed = traffic.stop()

    # Nothing left behind: the dead worker holds nothing, each database keeps one slot, in use.
    _until(
        lambda: set(_tasks_by_worker(settings)) == {survivor},
        "every task on the survivor",
        lambda: _tasks_by_worker(settings),
    )
    # (A task is RUNNING before Debezium's streaming has taken its slot back: give it time.)
    in_use = [(database, True) for database in cluster.databases]
    _until(lambda: _slots(cluster) == in_use, "one slot per database, in use", lambda: _slots(cluster))

    # `stack status` shows the dead worker down and the survivor holding every task.
    lines = _stack_status(settings)
    assert any(line.startswith(f"{names[victim]} down native") for line in lines), lines
    tasks = ", ".join(sorted(f"{name}/0" for name in cluster.connectors))
    assert f"worker {survivor} {names[survivor]} tasks {tasks}" in lines, lines

    # `stack up` starts the killed worker again (while Kafka is read: a rebalance only adds redeliveries).
    restarted: list[bool] = []
    restart = threading.Thread(target=lambda: restarted.append(connect.start(settings)), daemon=True)
    restart.start()

    seen = _keys(cluster, committed)
    for database in cluster.databases:
        missing = sorted(committed[database] - seen[database])
        assert not missing, f"{len(missing)} committed rows of {database} never reached Kafka: {missing[:10]}..."
        assert seen[database] == committed[database], "rows reached Kafka that Postgres never committed"

    # ... and it is in the group again: it answers for the group's connectors. (The group then hands it a
    # task too; under load that took over a minute here, too long to wait for in this test.)
    restart.join(settings.startup_timeout)
    assert restarted == [True]
    assert set(connect.worker_pids(settings)) == set(names)
    _until(lambda: _connectors_known_to(victim) == sorted(cluster.connectors), f"{victim} answers for the group")
