"""`mirador sql`: an analyst's query takes its turn with `mirador run`, read-only, and both go on.

A simulated orders service lands batches under the warehouse lock, as the loader does; the real
`mirador run` builds and publishes them. A query against the working file waits for the pipeline
to hand it over (and says so), sees the staged state of what was built, cannot write, and the
pipeline takes the file back and keeps publishing.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import duckdb
import pytest

from mirador.home import PROJECT_ROOT
from tests.dbt_project.changelog import Changelog
from tests.warehouse.commands import MIRADOR
from warehouse.lock import WarehouseLock
from warehouse.publish import current_publication

pytestmark = pytest.mark.stack


def _sql(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MIRADOR, "sql", *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180
    )


def _land(source: Changelog, warehouse, steps: int) -> None:
    for _ in range(steps):
        source.step(truncates=False)
    with WarehouseLock(warehouse, "simulated loader"), duckdb.connect(str(warehouse)) as conn:
        source.flush(conn)


def _published_orders(published) -> int | None:
    pointer = current_publication(published)
    if pointer is None:
        return None
    with duckdb.connect(str(pointer.path(published)), read_only=True) as conn:
        return conn.execute("select count(*) from orders_with_invoices").fetchone()[0]


def test_a_query_and_the_pipeline_take_turns(tmp_path, simulated_home):
    warehouse, published, env = simulated_home

    missing = _sql(env, "select 1")
    assert missing.returncode == 1 and "no warehouse" in missing.stderr
    source = Changelog(random.Random(3))
    _land(source, warehouse, 40)
    unpublished = _sql(env, "--published", "select 1")
    assert unpublished.returncode == 1 and "nothing published yet" in unpublished.stderr

    log = tmp_path / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen([MIRADOR, "run"], env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while _published_orders(published) != len(source.orders):
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

        staged = _sql(env, "--csv", "select count(*) as orders from staging.stg_orders__orders where not _deleted")
        assert staged.returncode == 0, staged.stderr
        assert staged.stdout.splitlines() == ["orders", str(len(source.orders))]
        assert "waiting for mirador run" in staged.stderr
        refused = _sql(env, "delete from loader.positions")
        assert refused.returncode == 1 and "read-only" in refused.stderr
        published_view = _sql(env, "--published", "--csv", "select count(*) as orders from orders_with_invoices")
        assert published_view.stdout.splitlines() == ["orders", str(len(source.orders))]

        _land(source, warehouse, 40)  # the pipeline took the file back and builds what comes next
        while _published_orders(published) != len(source.orders):
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=120)
    output = log.read_text()
    assert run.returncode == 0, output[-3000:]
    assert "handing the warehouse file over to mirador sql" in output
