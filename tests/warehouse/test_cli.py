"""`mirador load` as a scheduler or an operator sees it: exit codes, waiting its turn, stopping cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import duckdb
import pytest

from tests.warehouse.backlog import Template, create_topic, delete_topics, produce
from tests.warehouse.captures import heartbeat_template
from tests.warehouse.commands import MIRADOR, loader_env
from warehouse.lock import WarehouseLock


def run(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([MIRADOR, "load", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_without_a_mode_it_is_a_usage_error(loader_settings):
    result = run(loader_env(loader_settings, ["x"]))
    assert result.returncode == 2 and "--once" in result.stderr


def test_unreachable_kafka_is_transient_exit_3(loader_settings):
    env = loader_env(loader_settings, ["x"], MIRADOR_KAFKA_BOOTSTRAP="127.0.0.1:9", MIRADOR_LOADER_KAFKA_TIMEOUT="2")
    result = run(env, "--once")
    assert result.returncode == 3, result.stderr
    assert "did not answer" in result.stderr


@pytest.fixture
def backlog(stack_settings):
    """A topic holding copies of a real captured envelope, with new keys."""
    bootstrap = stack_settings.kafka_bootstrap_servers
    topic = f"clitest{uuid.uuid4().hex[:8]}.public.beats"
    create_topic(bootstrap, topic)
    template = Template(heartbeat_template())

    def fill(count: int) -> int:
        return produce(bootstrap, topic, [template], count)

    yield topic, fill
    delete_topics(bootstrap, [topic])


@pytest.mark.stack
def test_it_waits_for_the_holder_of_the_warehouse_file(stack_settings, loader_settings, backlog):
    topic, fill = backlog
    fill(1000)
    env = loader_env(loader_settings, [topic], MIRADOR_KAFKA_BOOTSTRAP=stack_settings.kafka_bootstrap_servers)
    with WarehouseLock(loader_settings.warehouse, "dbt build (test)"):
        process = subprocess.Popen(
            [MIRADOR, "load", "--once", "--no-progress"], env=env, stderr=subprocess.PIPE, text=True
        )
        time.sleep(3)
        assert process.poll() is None, "it must wait, not fail"
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "waiting for dbt build (test) (pid" in stderr
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        assert conn.execute("select sum(events) from loader.batches").fetchone()[0] == 1000


@pytest.mark.stack
def test_follow_finishes_its_batch_on_sigterm_and_exits_0(stack_settings, loader_settings, backlog):
    topic, fill = backlog
    fill(40_000)
    env = loader_env(
        loader_settings,
        [topic],
        MIRADOR_KAFKA_BOOTSTRAP=stack_settings.kafka_bootstrap_servers,
        MIRADOR_LOADER_BATCH_MESSAGES="1000",
    )
    process = subprocess.Popen(
        [MIRADOR, "load", "--follow", "--no-progress"], env=env, stderr=subprocess.PIPE, text=True
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "landed batch=" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    stderr = "".join(lines) + rest
    assert process.returncode == 0, stderr
    assert "SIGTERM: finishing the current batch" in stderr
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        (table,) = conn.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchone()
        rows = conn.execute(f'select count(*) from raw."{table}"').fetchone()[0]
        stored = conn.execute("select next_offset from loader.positions").fetchone()[0]
    assert 0 < rows == stored
    rerun = run(env, "--once", "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        assert conn.execute(f'select count(*), count(distinct _offset) from raw."{table}"').fetchone() == (40_000,) * 2
