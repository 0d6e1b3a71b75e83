"""On the real stack: a command's answer, handed to the read API, gives back the row it wrote
(read-your-writes), and the live stream names it; with the services, `mirador run` and `mirador serve`
as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid

import httpx
import pytest

from mirador.home import PROJECT_ROOT
from tests.api.conftest import free_port
from tests.warehouse.commands import BIN

pytestmark = pytest.mark.stack

TOKEN = {"Authorization": "Bearer mirador-dev"}


def post(url: str, body: dict) -> dict:
    answer = httpx.post(url, json=body, headers={**TOKEN, "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_command_becomes_a_row_read_with_its_position(pipeline_env):
    env, urls, home = pipeline_env
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    logs = {name: (home / f"{name}.log").open("w") for name in ("run", "serve")}
    run = subprocess.Popen(
        [BIN / "mirador", "run"], env=env, cwd=PROJECT_ROOT, stdout=logs["run"], stderr=subprocess.STDOUT
    )
    serve = subprocess.Popen(
        [BIN / "mirador", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=logs["serve"],
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not _up(f"{api}/healthz"):
            assert serve.poll() is None and time.monotonic() < deadline, (home / "serve.log").read_text()
            time.sleep(0.1)
        tag = uuid.uuid4().hex[:8]
        customer = post(
            f"{urls['customers']}/customers",
            {"email": f"grace-{tag}@example.com", "name": "Grace Hopper", "country": "US"},
        )
        product = post(
            f"{urls['inventory']}/products", {"sku": f"SKU-{tag}", "name": "Compiler", "list_price": "99.95"}
        )
        first = post(
            f"{urls['orders']}/orders",
            {
                "customer_id": customer["id"],
                "lines": [{"product_id": product["id"], "quantity": 3, "unit_price": "99.95"}],
            },
        )
        # The first publication may take a while (dbt parses, the first build runs).
        row = httpx.get(
            f"{api}/views/orders_with_invoices/{first['id']}",
            params={"after": f"orders:{first['position']['lsn']},customers:{customer['position']['lsn']}", "wait": 30},
            timeout=40,
        )
        deadline = time.monotonic() + 240
        while row.status_code in (503, 404) and time.monotonic() < deadline:
            assert run.poll() is None and serve.poll() is None, (home / "run.log").read_text()[-3000:]
            time.sleep(1)
            row = httpx.get(
                f"{api}/views/orders_with_invoices/{first['id']}",
                timeout=40,
                params={"after": f"orders:{first['position']['lsn']}", "wait": 30},
            )
        assert row.status_code == 200, row.text
        assert (row.json()["customer_name"], row.json()["order_total"]) == ("Grace Hopper", "299.85")

        # Now warm: traffic runs, a page subscribes to the customer's orders, and a new order is read back.
        traffic = subprocess.Popen(
            [BIN / "mirador", "simulate", "--rate", "30", "--duration", "15", "--seed", "9"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seen: list[dict] = []

        def follow() -> None:
            with httpx.stream(
                "GET", f"{api}/views/orders_with_invoices/changes", params={"customer_id": customer["id"]}, timeout=60
            ) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
                        if any(k["order_id"] == second["id"] for e in seen for k in e.get("upserted", [])):
                            return

        second: dict = {}
        listener = threading.Thread(target=follow, daemon=True)
        listener.start()
        time.sleep(0.5)
        second.update(
            post(
                f"{urls['orders']}/orders",
                {
                    "customer_id": customer["id"],
                    "lines": [{"product_id": product["id"], "quantity": 1, "unit_price": "0.05"}],
                },
            )
        )
        started = time.perf_counter()
        deadline = time.monotonic() + 180  # a loaded machine may take longer than one wait: 503 says retry
        while (
            row := httpx.get(
                f"{api}/views/orders_with_invoices/{second['id']}",
                params={"after": f"orders:{second['position']['lsn']}", "wait": 30},
                timeout=40,
            )
        ).status_code == 503 and time.monotonic() < deadline:
            assert row.json()["type"] == "urn:mirador:problem:not_yet_visible", row.text
            assert run.poll() is None and serve.poll() is None, (home / "run.log").read_text()[-3000:]
        waited = time.perf_counter() - started
        assert row.status_code == 200, row.text
        assert row.json()["order_total"] == "0.05" and row.json()["customer_id"] == customer["id"]
        print(f"read-your-writes answered {waited:.2f}s after the command")
        listener.join(timeout=30)
        assert any(k["order_id"] == second["id"] for e in seen for k in e.get("upserted", [])), seen
        assert all(
            k["order_id"] != first["id"] for e in seen for k in e.get("upserted", [])
        )  # the filter: changed rows only
        page = httpx.get(f"{api}/views/orders_with_invoices", params={"customer_id": customer["id"]}).json()
        assert {r["order_id"] for r in page["rows"]} == {first["id"], second["id"]}
        traffic.wait(timeout=60)
    finally:
        for process in (serve, run):
            process.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        run.wait(timeout=180)
        for log in logs.values():
            log.close()
