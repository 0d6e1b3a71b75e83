"""`stack up` / `down` on a second, private stack: idempotent, clean, and clear when it cannot start."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest

from cdc import jars, postgres, stack
from cdc.config import StackSettings
from cdc.errors import StackError
from cdc.processes import port_in_use
from mirador.home import PROJECT_ROOT
from tests.ports import free_ports

pytestmark = pytest.mark.stack


@pytest.fixture
def private(stack_settings) -> StackSettings:
    """Settings for a second stack on free ports, sharing the session's jar cache."""
    home = PROJECT_ROOT / ".mirador" / f"test-{uuid.uuid4().hex[:8]}"
    pg_port, kafka_port, kafka_controller_port, connect_port = free_ports(4)
    settings = StackSettings(
        home=home,
        jars_dir=stack_settings.jars,
        pg_dsn=None,
        kafka_bootstrap=None,
        connect_url=None,
        pg_port=pg_port,
        kafka_port=kafka_port,
        kafka_controller_port=kafka_controller_port,
        connect_port=connect_port,
    )
    yield settings
    stack.down(settings)
    shutil.rmtree(postgres.data_dir(settings).parent, ignore_errors=True)  # outside home under /root
    shutil.rmtree(home, ignore_errors=True)


def _processes_of(settings: StackSettings) -> list[int]:
    """Every live process that belongs to this stack: JVMs by their marker, Postgres by its data dir."""
    markers = [f"-Dmirador.home={settings.home}".encode(), str(postgres.data_dir(settings)).encode()]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if any(marker in cmdline for marker in markers):
                found.append(int(entry.name))
    return found


def _postgres_children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return children


def _ports(settings: StackSettings) -> list[int]:
    return [settings.pg_port, settings.kafka_port, settings.kafka_controller_port, settings.connect_port]


def test_up_is_idempotent_and_down_leaves_no_process_behind(private):
    first = stack.up(private)
    assert set(first.started) == {"postgres", "kafka", "connect", "connectors"}
    second = stack.up(private)
    assert set(second.already_running) == {"postgres", "kafka", "connect"}
    report = stack.status(private)
    assert all(c["state"] == "up" for c in report["components"].values())
    assert all(c["state"] == "RUNNING" and c["tasks"] == ["RUNNING"] for c in report["connectors"])

    pids = _processes_of(private) + _postgres_children(postgres.pid(private))
    assert len(pids) >= 3
    assert stack.down(private) == ["connect", "kafka", "postgres"]
    assert not [
        pid
        for pid in pids
        if Path(f"/proc/{pid}").exists() and (Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z")
    ]
    assert not _processes_of(private)
    assert not any(port_in_use("127.0.0.1", port) for port in _ports(private))
    assert stack.down(private) == []  # nothing left to stop


def test_a_port_in_use_is_named_and_nothing_half_started_is_left(private):
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", private.connect_port))
        squatter.listen()
        with pytest.raises(StackError, match=f"port 127.0.0.1:{private.connect_port} for Kafka Connect") as err:
            stack.up(private)
    assert "MIRADOR_CONNECT_PORT" in str(err.value)
    assert not _processes_of(private)  # Postgres and Kafka, started first, were stopped again


def test_missing_tools_are_named_with_the_fix(private, tmp_path):
    with pytest.raises(StackError, match="Java .* is not on PATH") as err:
        stack.up(private.model_copy(update={"java": "/nonexistent/java"}))
    assert "MIRADOR_JAVA" in str(err.value)

    with pytest.raises(StackError, match="PostgreSQL server binaries") as err:
        stack.up(private.model_copy(update={"pg_bin_dir": tmp_path}))
    assert "postgresql-15" in str(err.value)

    empty = private.model_copy(update={"jars_dir": tmp_path / "jars", "maven": "/nonexistent/mvn"})
    with pytest.raises(StackError, match="Maven .* is not on PATH"):
        stack.up(empty)
    assert not _processes_of(private)


def test_maven_central_unreachable_with_an_empty_cache(private, tmp_path):
    if shutil.which("mvn") is None:
        pytest.skip("Maven is not installed")
    settings_xml = tmp_path / "settings.xml"
    settings_xml.write_text(
        "<settings><mirrors><mirror><id>nowhere</id><mirrorOf>*</mirrorOf>"
        "<url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
    )
    offline = private.model_copy(
        update={
            "jars_dir": tmp_path / "jars",
            "maven_args": f"-s {settings_xml} -Dmaven.repo.local={tmp_path / 'm2'}",
        }
    )
    with pytest.raises(StackError, match="Maven could not resolve") as err:
        jars.resolve(offline)
    assert "Maven Central is reachable" in str(err.value)
    assert not (tmp_path / "jars").exists()  # no half-filled cache to mistake for a good one
    assert os.environ.get("MIRADOR_HOME") != str(private.home)
