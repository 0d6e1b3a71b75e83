"""While a component is down, each command that needs it answers with one line and its exit code.

A component is "down" here by its address: a free port nobody listens on, the other components being
the session's stack. The line names the component and its address, what the command tried, and the
fix; never a traceback, nor a screen of librdkafka's connection lines.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from mirador.home import PROJECT_ROOT
from tests.ports import free_ports
from tests.warehouse.commands import MIRADOR

pytestmark = pytest.mark.stack

EXIT_TERMINAL, EXIT_TRANSIENT = 1, 3
PROGRESS = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (INFO|DEBUG) ")
"""`mirador run`'s own log lines of what it did before it met the component down (a daemon's progress)."""

CASES = [
    # (command, component down, exit code, words the line must hold)
    (["load", "--once", "--no-progress"], "kafka", EXIT_TRANSIENT, ["Kafka at", "mirador stack up"]),
    (["run"], "kafka", EXIT_TRANSIENT, ["Kafka at", "mirador stack up"]),
    (["verify", "--timeout", "30"], "kafka", EXIT_TRANSIENT, ["Kafka at", "mirador stack up"]),
    (["verify", "--timeout", "30"], "postgres", EXIT_TRANSIENT, ["Postgres at", "mirador stack up"]),
    (["services", "up"], "postgres", EXIT_TERMINAL, ["cannot reach its database", "mirador stack up"]),
    (["simulate", "--duration", "1"], "services", EXIT_TERMINAL, ["not ready at", "mirador services up"]),
]


@pytest.mark.parametrize(
    ("command", "component", "code", "words"), CASES, ids=[f"{' '.join(c[0][:2])}-{c[1]}" for c in CASES]
)
def test_a_component_down_is_one_line_and_an_exit_code(stack_settings, tmp_path, command, component, code, words):
    down, *service_ports = free_ports(5)
    env = {
        "PATH": "/usr/bin:/bin",
        "MIRADOR_HOME": str(tmp_path),
        "MIRADOR_JARS_DIR": str(stack_settings.jars),
        "MIRADOR_PG_PORT": str(stack_settings.pg_port),
        "MIRADOR_KAFKA_BOOTSTRAP": stack_settings.kafka_bootstrap_servers,
        "MIRADOR_CONNECT_URL": stack_settings.connect_rest_url,
        "MIRADOR_LOADER_KAFKA_TIMEOUT": "5",
        **{
            f"MIRADOR_{name}_PORT": str(port)
            for name, port in zip(("CUSTOMERS", "ORDERS", "INVOICES", "INVENTORY"), service_ports)
        },
    }
    if stack_settings.pg_dsn:
        env["MIRADOR_PG_DSN"] = stack_settings.pg_dsn
    address = f"127.0.0.1:{down}"
    if component == "postgres":
        env["MIRADOR_PG_PORT"] = str(down)
        env.pop("MIRADOR_PG_DSN", None)
    elif component == "kafka":
        env["MIRADOR_KAFKA_BOOTSTRAP"] = address
    elif component == "services":
        address = f"127.0.0.1:{service_ports[0]}"
    result = subprocess.run([MIRADOR, *command], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    lines = [line for line in result.stderr.strip().splitlines() if not PROGRESS.match(line)]
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and address in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
