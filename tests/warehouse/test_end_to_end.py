"""On the real stack: commands through the services show up in the published views, and `verify` agrees.

Services run as real processes, `mirador simulate` sends shop traffic, `mirador run` loads, builds and
publishes into a fresh warehouse, and `mirador verify` recomputes every view from Postgres.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from datetime import date

import duckdb
import httpx
import pytest

from mirador.home import PROJECT_ROOT
from tests.warehouse.commands import MIRADOR, verify
from warehouse.publish import current_publication

pytestmark = pytest.mark.stack

TOKEN = {"Authorization": "Bearer mirador-dev"}


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _post(url: str, json: dict) -> dict:
    response = httpx.post(url, json=json, headers={**TOKEN, "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_commands_reach_the_published_views_and_verify_passes(pipeline_env):
    env, urls, home = pipeline_env
    tag = uuid.uuid4().hex[:8]
    customer = _post(
        f"{urls['customers']}/customers", {"email": f"ada-{tag}@example.com", "name": "Ada Lovelace", "country": "GB"}
    )
    product = _post(
        f"{urls['inventory']}/products", {"sku": f"SKU-{tag}", "name": "Analytical Engine", "list_price": "1250.00"}
    )
    _post(f"{urls['inventory']}/products/{product['id']}/stock/increase", {"quantity": 10, "reason": "received"})
    sold = _post(f"{urls['inventory']}/products/{product['id']}/stock/decrease", {"quantity": 3, "reason": "sold"})
    order = _post(
        f"{urls['orders']}/orders",
        {
            "customer_id": customer["id"],
            "lines": [
                {"product_id": product["id"], "quantity": 2, "unit_price": "1250.00"},
                {"product_id": product["id"], "quantity": 1, "unit_price": "0.10"},
            ],
        },
    )
    url = f"https://invoices.example.com/{tag}.pdf"
    invoice = _post(
        f"{urls['invoices']}/invoices",
        {"order_id": order["id"], "amount": "2500.10", "due_date": date.today().isoformat(), "document_url": url},
    )
    paid = _post(f"{urls['invoices']}/invoices/{invoice['id']}/pay", {})
    last_writes = {"customers": customer, "inventory": sold, "orders": order, "invoices": paid}
    simulate = subprocess.run(
        [MIRADOR, "simulate", "--rate", "40", "--duration", "4", "--seed", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert simulate.returncode == 0, simulate.stdout + simulate.stderr

    # Data tests after every build: the publications must come to say so.
    run_log = home / "run.log"
    with run_log.open("w") as out:  # a file: a pipe nobody reads meanwhile would fill and block the run
        run = subprocess.Popen(
            [MIRADOR, "run"],
            env={**env, "MIRADOR_RUN_TEST_INTERVAL": "0"},
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    published = home / "warehouse" / "published"
    try:
        # Read-your-writes: wait until the publication includes each service's last write.
        deadline = time.monotonic() + 300
        while True:
            publication = current_publication(published)
            if publication and all(
                (publication.watermark.get(service, {}).get("lsn") or 0) >= _lsn(result["position"]["lsn"])
                for service, result in last_writes.items()
            ):
                break
            assert time.monotonic() < deadline, "the views never caught up with the commands"
            assert run.poll() is None, run_log.read_text()[-3000:]
            time.sleep(0.5)
        with duckdb.connect(str(publication.path(published)), read_only=True) as conn:
            row = conn.execute(
                "select customer_name, line_count, order_total::varchar, invoice_document_url, is_paid, status "
                "from orders_with_invoices where order_id = ?",
                [order["id"]],
            ).fetchone()
            stock = conn.execute(
                "select current_stock, event_count from product_stock where product_id = ?", [product["id"]]
            ).fetchone()
        assert row == ("Ada Lovelace", 2, "2500.10", url, True, "placed")
        assert stock == (7, 2)

        verify(env)
        while (current := current_publication(published)).tested_through_batch != current.through_batch:
            assert time.monotonic() < deadline + 300, "the data tests never passed on the current publication"
            time.sleep(0.5)

        # Traffic while the pipeline runs: after two dbt runs record them, cycles replay the models'
        # and the tests' SQL (warehouse/build/recordings.py), and the views still match the sources exactly.
        simulate = subprocess.run(
            [MIRADOR, "simulate", "--rate", "40", "--duration", "8", "--seed", "6"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=PROJECT_ROOT,
        )
        assert simulate.returncode == 0, simulate.stdout + simulate.stderr
        verify(env)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=180)
    output = run_log.read_text()
    assert run.returncode == 0, output[-3000:]
    assert "(replayed " in output and "(replayed) through" in output, output[-3000:]

    # `verify` is not a formality: a publication that lost a row and changed a value is caught.
    # Every kept publication and the marts they are made from: verify catches up first (heartbeats have
    # arrived meanwhile), and its publication starts from a kept one plus what the builds changed.
    marts = [(path, "") for path in published.glob("*.duckdb")] + [(home / "warehouse" / "mirador.duckdb", "marts.")]
    for path, schema in marts:
        with duckdb.connect(str(path)) as conn:
            conn.execute(
                f"update {schema}orders_with_invoices set customer_name = 'Mallory' where order_id = ?", [order["id"]]
            )
            conn.execute(f"delete from {schema}product_stock where product_id = ?", [product["id"]])
    check = subprocess.run(
        [MIRADOR, "verify", "--timeout", "120"], env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert (
        f"{order['id']}: values" in check.stdout
        and "customer_name: source 'Ada Lovelace', published 'Mallory'" in check.stdout
    ), check.stdout
    assert f"{product['id']}: source only" in check.stdout, check.stdout
