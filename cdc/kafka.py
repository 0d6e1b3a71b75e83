"""A single-node Apache Kafka 4 cluster in KRaft mode (broker and controller in one JVM)."""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid

from confluent_kafka.admin import AdminClient

from cdc import jars, jvm
from cdc.config import StackSettings
from cdc.errors import StackError
from cdc.processes import require_free_port, running_pid, spawn, tail, wait_until
from cdc.processes import stop as stop_pid

log = logging.getLogger(__name__)

NAME = "kafka"

SERVER_PROPERTIES = """\
# Written by mirador: one KRaft node, broker and controller, on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dirs}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.network.threads=2
num.io.threads=4
background.threads=4
log.retention.hours=168
"""


def _pidfile(settings: StackSettings):
    return settings.run / f"{NAME}.pid"


def pid(settings: StackSettings) -> int | None:
    return running_pid(_pidfile(settings), jvm.marker(settings))


def healthy(bootstrap: str, timeout: float = 2.0) -> bool:
    # log_level 0: a broker still starting is the expected answer here, not an error to print.
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000), "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - unreachable or not ready
        return False
    return bool(metadata.brokers)


def start(settings: StackSettings) -> bool:
    """Format the log dir once and start the broker; False if ours was already running."""
    if pid(settings):
        return False
    for port, key in (
        (settings.kafka_port, "MIRADOR_KAFKA_PORT"),
        (settings.kafka_controller_port, "MIRADOR_KAFKA_CONTROLLER_PORT"),
    ):
        require_free_port("127.0.0.1", port, "Kafka", key)
    data = settings.home / "kafka"
    config = settings.run / "kafka-server.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        SERVER_PROPERTIES.format(
            port=settings.kafka_port, controller_port=settings.kafka_controller_port, log_dirs=data
        )
    )
    classpath = jars.kafka_classpath(settings)
    if not (data / "meta.properties").exists():
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's own ids: a leading "-" would read as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = jvm.command(
            settings,
            "kafka-storage",
            "256m",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
        )
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(f"formatting the Kafka log dir failed: {proc.stderr.strip() or proc.stdout}")
    log.info("starting Kafka on 127.0.0.1:%s", settings.kafka_port)
    out = jvm.out_file(settings, NAME)
    started = spawn(
        jvm.command(settings, NAME, settings.kafka_heap, classpath, "kafka.Kafka", str(config)), _pidfile(settings), out
    )
    wait_until(
        lambda: healthy(settings.kafka_bootstrap_servers),
        what="Kafka",
        timeout=settings.startup_timeout,
        log=settings.logs / f"{NAME}.log",
        pid=started,
    )
    return True


def stop(settings: StackSettings) -> bool:
    if stopped := stop_pid(_pidfile(settings), jvm.marker(settings), timeout=60):
        log.info("stopped Kafka")
    return stopped


def log_tail(settings: StackSettings) -> str:
    return tail(settings.logs / f"{NAME}.log")
