"""`mirador services up | status | down` and `mirador simulate`, as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services import runner
from tests.ports import free_ports

from .conftest import AUTH, TOKEN

MIRADOR = str(Path(sys.executable).parent / "mirador")


def mirador(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([MIRADOR, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def ports() -> dict[str, int]:
    return dict(zip(runner.SETTINGS, free_ports(len(runner.SETTINGS)), strict=True))


@pytest.fixture
def cli_env(dsns, ports, tmp_path) -> dict[str, str]:
    env = {"MIRADOR_HOME": str(tmp_path)}
    for name, port in ports.items():
        prefix = f"MIRADOR_{name.upper()}_"
        env |= {f"{prefix}PORT": str(port), f"{prefix}DSN": dsns[name], f"{prefix}TOKEN": TOKEN}
    return env


def test_up_status_down(cli_env, ports, tmp_path):
    try:
        up = mirador("services", "up", env=cli_env)
        assert up.returncode == 0, up.stderr
        for name, port in ports.items():
            assert f"http://127.0.0.1:{port}" in up.stdout
            assert (tmp_path / "run" / f"service-{name}.pid").exists()
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        again = mirador("services", "up", env=cli_env)  # idempotent: the running ones are kept
        assert again.returncode == 0 and again.stdout == up.stdout
        status = mirador("services", "status", env=cli_env)
        assert status.returncode == 0 and status.stdout.count("ready") == 4
        order = httpx.post(
            f"http://127.0.0.1:{ports['orders']}/orders",
            headers=AUTH,
            json={
                "customer_id": "0b6e6f3a-4d0c-4c55-9a4f-0d7c3f2b8a11",
                "lines": [{"product_id": "5f7d1a8e-2b3c-4d5e-8f90-1a2b3c4d5e6f", "quantity": 1, "unit_price": "2.00"}],
            },
        )
        assert order.status_code == 201
    finally:
        down = mirador("services", "down", env=cli_env)
    assert down.returncode == 0 and "stopped" in down.stdout
    for port in ports.values():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    assert not list((tmp_path / "run").glob("service-*.pid"))
    status = mirador("services", "status", env=cli_env)
    assert status.returncode == 1 and status.stdout.count("down") == 4


def test_up_names_a_port_in_use(cli_env, ports):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["invoices"]))
        taken.listen()
        result = mirador("services", "up", "invoices", env=cli_env)
    assert result.returncode == 1
    assert f"port 127.0.0.1:{ports['invoices']}" in result.stderr and "MIRADOR_INVOICES_PORT" in result.stderr


def test_up_says_when_the_database_is_unreachable(cli_env):
    env = cli_env | {"MIRADOR_CUSTOMERS_DSN": "host=127.0.0.1 port=1 dbname=customers user=customers"}
    result = mirador("services", "up", "customers", env=env)
    assert result.returncode == 1
    assert "cannot reach its database 'customers'" in result.stderr and "mirador stack up" in result.stderr
    assert mirador("services", "status", env=env).returncode == 1


def test_production_refuses_the_development_token(cli_env):
    env = {k: v for k, v in cli_env.items() if not k.endswith("_TOKEN")} | {"MIRADOR_ENV": "production"}
    result = mirador("services", "up", "orders", env=env)
    assert result.returncode == 1 and "MIRADOR_ORDERS_TOKEN is the development default" in result.stderr


def test_simulate_sends_shop_traffic_without_errors(running_services, service_env, query):
    before = query("orders", "select count(*) from orders")[0][0]
    result = mirador("simulate", "--rate", "40", "--duration", "4", "--seed", "7", env=service_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "commands/s" in result.stdout and "p99" in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("160 commands") and summary.endswith("0 errors (5xx or no answer)"), summary
    for kind in ("sign up", "place order", "pay order", "receive stock"):
        assert kind in result.stdout
    assert query("orders", "select count(*) from orders")[0][0] > before
