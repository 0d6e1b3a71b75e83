"""`mirador build` for schedulers: what it prints and its exit codes.

0 when it built and published, or found nothing new (the watermark refreshed); 1 when a data test
fails, with nothing published; 3 when another process holds the warehouse file past the timeout.
A simulated orders service lands the raw changelog, as the loader does; nothing needs the stack.
"""

from __future__ import annotations

import random
import subprocess

import duckdb

from mirador.home import PROJECT_ROOT
from tests.dbt_project.changelog import Changelog
from tests.warehouse.commands import MIRADOR
from warehouse.lock import WarehouseLock
from warehouse.publish import current_publication


def _build(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([MIRADOR, "build"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def test_build_exit_codes(scratch_home):
    warehouse, published, env = scratch_home
    env = {**env, "MIRADOR_LOADER_LOCK_TIMEOUT": "2"}
    source = Changelog(random.Random(5))
    for _ in range(60):
        source.step(truncates=False)
    with duckdb.connect(str(warehouse)) as conn:
        source.flush(conn)

    built = _build(env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "built " in built.stdout and "published " in built.stdout
    good = current_publication(published)
    with duckdb.connect(str(good.path(published)), read_only=True) as conn:
        assert conn.execute("select count(*) from orders_with_invoices").fetchone()[0] == len(source.orders)

    again = _build(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"nothing new since batch {good.through_batch}; watermark refreshed" in again.stdout

    # An order in a status no service writes: the staging model's accepted_values test fails.
    order = source.last_order
    order.update(status="lost", version=order["version"] + 1)
    source._emit("orders__orders", "u", order)
    with duckdb.connect(str(warehouse)) as conn:
        source.flush(conn)
    refused = _build(env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "failed; nothing published" in refused.stderr and "accepted_values" in refused.stderr, refused.stderr
    assert current_publication(published).build_id == good.build_id

    with WarehouseLock(warehouse, "a test holding the file"):
        held = _build(env)
    assert held.returncode == 3, held.stdout + held.stderr
    assert "still held by a test holding the file" in held.stderr, held.stderr
