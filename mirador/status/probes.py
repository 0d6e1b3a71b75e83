"""What the servers say now: the source's position and slots (Postgres), the connectors' states (Kafka
Connect's REST API), the loader's consumer lag (Kafka). Each asks with a short timeout and raises
`Unreachable`, naming the server, instead of waiting."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import psycopg
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg.rows import dict_row

from cdc import connect, postgres
from cdc.config import SERVICES, StackSettings
from cdc.processes import port_in_use
from mirador.status.configuration import StatusSettings


class Unreachable(Exception):
    """A server did not answer: `component` (postgres, connect, kafka) and why, in one line."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(reason)
        self.component = component


SOURCE = """
    select pg_current_wal_lsn()::text as lsn,
           pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint as lsn_int,
           current_setting('track_commit_timestamp') = 'on' as commit_timestamps
"""
SLOTS = """
    select slot_name, database, active, wal_status,
           pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint as retained_bytes,
           confirmed_flush_lsn::text as confirmed_flush_lsn
    from pg_replication_slots where slot_type = 'logical' order by slot_name
"""


def source(stack: StackSettings, timeout: float) -> dict:
    """The cluster's current WAL position, its last commit time (with `track_commit_timestamp`), its slots."""
    host, port = postgres.endpoint(stack)
    try:
        with psycopg.connect(
            postgres.superuser_dsn(stack), connect_timeout=max(1, round(timeout)), row_factory=dict_row
        ) as conn:
            conn.execute("select set_config('statement_timeout', %s, false)", [str(int(timeout * 1000))])
            found = conn.execute(SOURCE).fetchone()
            committed = None
            if found["commit_timestamps"]:
                row = conn.execute("select timestamp from pg_last_committed_xact()").fetchone()
                committed = row["timestamp"] if row else None
            slots = conn.execute(SLOTS).fetchall()
    except psycopg.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unreachable("postgres", f"Postgres at {host}:{port} did not answer: {first}") from None
    return {
        "lsn": found["lsn"],
        "lsn_int": found["lsn_int"],
        "commit_ts": _iso(committed),
        "commit_timestamps": found["commit_timestamps"],
        "slots": {slot["slot_name"]: slot for slot in slots},
    }


def connectors(stack: StackSettings, timeout: float, services: tuple[str, ...] = SERVICES) -> dict[str, dict]:
    """Per service, its connector's state and its tasks' (state None: not registered). Any worker of the
    group answers for all: the first that listens is asked, so one worker down is not Connect down."""
    url = _connect_url(stack)
    found: dict[str, dict] = {}
    for service in services:
        name = f"mirador-{service}"
        try:
            with urllib.request.urlopen(f"{url}/connectors/{name}/status", timeout=timeout) as response:
                state = json.load(response)
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise Unreachable("connect", f"Kafka Connect at {url} answered {err.code} for {name}") from None
            found[service] = {"name": name, "state": None, "tasks": [], "trace": None, "resnapshot": None}
            continue
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err or type(err).__name__
            raise Unreachable("connect", f"Kafka Connect at {url} did not answer: {reason}") from None
        traces = [task["trace"] for task in state["tasks"] if task.get("trace")]
        found[service] = {
            "name": name,
            "state": state["connector"]["state"],
            "tasks": [task["state"] for task in state["tasks"]],
            "trace": traces[0].strip().splitlines()[0] if traces else None,
            **_offsets(url, name, timeout),
        }
    return found


def _connect_url(stack: StackSettings) -> str:
    if stack.connect_url:
        return stack.connect_rest_url
    asked = connect.workers(stack)
    return next((w.url for w in asked if port_in_use("127.0.0.1", w.port)), asked[0].url)


def _offsets(url: str, name: str, timeout: float) -> dict:
    """What the connector's committed source offsets say: the source commit it has read up to
    (`committed_commit_ts`, flushed every 2 s) and the incremental snapshot (`mirador resnapshot`) running,
    with the tables still to read, the one being read first (None when none runs)."""
    try:
        with urllib.request.urlopen(f"{url}/connectors/{name}/offsets", timeout=timeout) as response:
            offsets = json.load(response).get("offsets") or []
        offset = offsets[0]["offset"] if offsets else {}
        collections = json.loads(offset.get("incremental_snapshot_collections") or "[]")
    except (OSError, ValueError, KeyError, TypeError):  # an older Connect, or a worker rebalancing
        return {"committed_commit_ts": None, "resnapshot": None}
    micros = offset.get("ts_usec")
    committed = None if not isinstance(micros, int) else datetime.fromtimestamp(micros / 1e6, UTC)
    tables = [c["incremental_snapshot_collections_id"] for c in collections if isinstance(c, dict)]
    resnapshot = {"tables": tables, "signal_id": offset.get("incremental_snapshot_correlation_id")}
    return {"committed_commit_ts": _iso(committed), "resnapshot": resnapshot if tables else None}


def consumer_lag(settings: StatusSettings, timeout: float) -> dict[str, dict]:
    """Per topic the loader reads: messages its consumer group has not committed, and how long the oldest
    of them has waited (the group's offsets are committed after each batch lands, for monitoring)."""
    bootstrap = settings.bootstrap_servers
    config = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(timeout * 1000),
        "socket.connection.setup.timeout.ms": int(timeout * 1000),
        "log_level": 0,  # a broker that is down is this probe's answer, not librdkafka's noise
    }
    wants = _matcher(settings.loader_topics)
    consumer = None
    try:
        metadata = AdminClient(config).list_topics(timeout=timeout)
        partitions = [
            TopicPartition(name, p)
            for name, topic in sorted(metadata.topics.items())
            if wants(name) and topic.error is None
            for p in topic.partitions
        ]
        consumer = Consumer(
            config | {"group.id": settings.loader_group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=timeout)}
        lag: dict[str, dict] = {}
        oldest: dict[tuple[str, int], int] = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
            position = committed[(tp.topic, tp.partition)]
            start = low if position in (OFFSET_INVALID, None) or position < 0 else max(position, low)
            entry = lag.setdefault(
                tp.topic, {"service": service_of(tp.topic), "messages": 0, "seconds": 0.0, "end_offset": 0}
            )
            entry["messages"] += max(high - start, 0)
            entry["end_offset"] += high
            if high > start:
                oldest[(tp.topic, tp.partition)] = start
        for (topic, _), seconds in _waited(consumer, oldest, timeout).items():
            lag[topic]["seconds"] = max(lag[topic]["seconds"], seconds) if seconds is not None else None
        return lag
    except KafkaException as err:
        raise Unreachable("kafka", f"Kafka at {bootstrap} did not answer: {err.args[0].str()}") from None
    finally:
        if consumer is not None:
            consumer.close()


def _waited(consumer: Consumer, oldest: dict[tuple[str, int], int], timeout: float) -> dict:
    """Seconds since the first unloaded message of each partition was written (None: not read in time)."""
    if not oldest:
        return {}
    waited: dict[tuple[str, int], float | None] = dict.fromkeys(oldest)
    consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in oldest.items()])
    deadline = time.monotonic() + timeout
    while any(v is None for v in waited.values()) and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=len(oldest) * 10, timeout=0.2):
            key = (message.topic(), message.partition())
            if message.error() is None and key in waited and waited[key] is None:
                _, stamp = message.timestamp()
                waited[key] = max(time.time() - stamp / 1000, 0.0)
                consumer.incremental_unassign([TopicPartition(*key)])
    return waited


def service_of(topic: str) -> str:
    """The service (its connector's topic prefix) of a change, transaction or heartbeat topic."""
    if topic.startswith("__debezium-heartbeat."):
        return topic.removeprefix("__debezium-heartbeat.")
    return topic.split(".", 1)[0]


def _matcher(topics: list[str]):
    exact = {t for t in topics if not t.startswith("^")}
    patterns = [re.compile(t) for t in topics if t.startswith("^")]
    return lambda name: name in exact or any(p.match(name) for p in patterns)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")
