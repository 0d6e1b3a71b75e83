"""A scratch warehouse that publishes with the warehouse's own `publish`, and `mirador serve` over it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import pytest

from warehouse.publish import publish

BIN = Path(sys.executable).parent
CATALOG = {
    "orders_with_invoices": {
        "description": "Every order with its invoice.",
        "meta": {"expose": True, "primary_key": ["order_id"], "default_order": ["placed_at desc", "order_id"]},
        "columns": {
            "order_id": "The order.",
            "customer_id": "Who placed it.",
            "status": "placed, paid ...",
            "order_total": "Exact total.",
            "placed_at": "When placed.",
            "invoice_due_date": "Due.",
            "is_paid": "Paid?",
            "line_count": "Lines.",
            "invoice_document_url": "Where.",
        },
    },
    "order_lines": {
        "description": "A composite key.",
        "meta": {"expose": True, "primary_key": ["order_id", "line_no"], "default_order": ["order_id", "line_no"]},
        "columns": {},
    },
}


class ScratchWarehouse:
    """`marts.orders_with_invoices` and `marts.order_lines` in a working file; `publish()` as the pipeline does."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.published = root / "published"
        self.conn = duckdb.connect(str(root / "work.duckdb"))
        self.batch = 0
        self.conn.execute("""
            create schema marts; create schema loader;
            create table loader.builds (build_id varchar primary key, started_at timestamptz, finished_at timestamptz,
                through_batch bigint, selected varchar, success boolean, seconds double, tested boolean default true);
            create table marts.orders_with_invoices (order_id varchar, customer_id varchar, status varchar,
                order_total decimal(18,2), placed_at timestamptz, invoice_due_date date, is_paid boolean,
                line_count integer, invoice_document_url varchar, _batch_id bigint, _built_batch bigint);
            create table marts.order_lines (order_id varchar, line_no integer, quantity integer, _built_batch bigint);
        """)

    def upsert(self, rows: list[dict]) -> None:
        self.batch += 1
        for row in rows:
            self.conn.execute("delete from marts.orders_with_invoices where order_id = ?", [row["order_id"]])
            self.conn.execute(
                "insert into marts.orders_with_invoices values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    row["order_id"],
                    row.get("customer_id"),
                    row.get("status", "placed"),
                    row.get("order_total", "1.00"),
                    row.get("placed_at", "2026-01-01T00:00:00Z"),
                    row.get("invoice_due_date"),
                    row.get("is_paid", False),
                    row.get("line_count", 1),
                    row.get("invoice_document_url"),
                    self.batch,
                    self.batch,
                ],
            )

    def delete(self, order_ids: list[str]) -> None:
        self.batch += 1
        for order_id in order_ids:
            self.conn.execute("delete from marts.orders_with_invoices where order_id = ?", [order_id])

    def publish(self, watermark: dict | None = None, catalog: dict | None = None) -> str:
        build_id = f"b{self.batch:05d}-{uuid.uuid4().hex[:6]}"
        self.conn.execute(
            "insert into loader.builds values (?, now(), now(), ?, '', true, 0, true)", [build_id, self.batch]
        )
        publish(
            self.conn,
            self.published,
            build_id,
            self.batch,
            {"orders_with_invoices": ["order_id"], "order_lines": ["order_id", "line_no"]},
            watermark or {"orders": {"lsn": self.batch * 100, "commit_ts": "2026-01-01T00:00:00+00:00"}},
            catalog=catalog or CATALOG,
        )
        return build_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home: Path, published: Path, workers: int = 1, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "MIRADOR_HOME": str(home), "MIRADOR_PUBLISH_DIR": str(published), **(env or {})}
        self.log = (home / "serve.log").open("w")
        self.process = subprocess.Popen(
            [str(BIN / "mirador"), "serve", "--port", str(self.port), "--workers", str(workers)],
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mirador serve did not start:\n" + (home / "serve.log").read_text())
            time.sleep(0.1)

    def wait_for_build(self, build_id: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = httpx.get(f"{self.url}/views")
            if answer.headers.get("mirador-build") == build_id:
                return
            time.sleep(0.02)
        raise AssertionError(f"build {build_id} not served within {timeout}s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()


@pytest.fixture
def warehouse(tmp_path: Path) -> ScratchWarehouse:
    scratch = ScratchWarehouse(tmp_path)
    yield scratch
    scratch.conn.close()


@pytest.fixture
def serve(tmp_path: Path, warehouse: ScratchWarehouse):
    servers = []

    def start(workers: int = 1, env: dict | None = None) -> Server:
        server = Server(tmp_path, warehouse.published, workers, env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
