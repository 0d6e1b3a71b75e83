"""The serving copy follows publications by their changed keys, and always equals the published views."""

from __future__ import annotations

import json
import random

import orjson

from api.store import Refresher, table_of
from tests.api.conftest import CATALOG, ScratchWarehouse
from warehouse import publish as publishing


def served_rows(refresher: Refresher) -> dict[str, dict]:
    return {json.loads(body)["order_id"]: json.loads(body)
            for (body,) in refresher.conn.execute(f"select _json from {table_of('orders_with_invoices')}")}


def mart_rows(warehouse: ScratchWarehouse) -> dict[str, dict]:
    rows = warehouse.conn.execute(
        "select order_id, customer_id, status, order_total::varchar, is_paid from marts.orders_with_invoices").fetchall()
    return {r[0]: {"customer_id": r[1], "status": r[2], "order_total": r[3], "is_paid": r[4]} for r in rows}


def test_random_publications_are_served_exactly(tmp_path, monkeypatch):
    warehouse = ScratchWarehouse(tmp_path)
    refresher = Refresher(warehouse.published, tmp_path / "serving.sqlite", keep=5)
    applied = []
    original = refresher._apply_changes
    monkeypatch.setattr(refresher, "_apply_changes", lambda *a: applied.append(1) or original(*a))
    rng = random.Random(3)
    keys = [f"o{i:03d}" for i in range(300)]
    for round_ in range(30):
        if round_ % 5 == 4:
            warehouse.delete(rng.sample(keys, 10))
        warehouse.upsert([{"order_id": key, "customer_id": f"c{rng.randrange(9)}", "status": rng.choice(["paid", "placed"]),
                           "order_total": f"{rng.randrange(10_000)}.{rng.randrange(100):02d}"}
                          for key in rng.sample(keys, 40 if round_ else 300)])
        warehouse.publish()
        refresher.refresh()
        served = {k: {c: v[c] for c in ("customer_id", "status", "order_total", "is_paid")}
                  for k, v in served_rows(refresher).items()}
        assert served == mart_rows(warehouse), f"round {round_}"
    assert len(applied) >= 20, "most publications must be applied by their changed keys, not whole"
    changes = refresher.conn.execute("select count(*), count(distinct seq) from _changes").fetchone()
    assert changes[1] <= 5  # only the kept publications' changes remain


def test_a_whole_copy_is_compared_and_logs_only_real_changes(tmp_path):
    warehouse = ScratchWarehouse(tmp_path)
    refresher = Refresher(warehouse.published, tmp_path / "serving.sqlite")
    warehouse.upsert([{"order_id": f"o{i}", "customer_id": "c1"} for i in range(50)])
    warehouse.publish()
    refresher.refresh()
    warehouse.upsert([{"order_id": "o1", "customer_id": "c2"}])
    warehouse.conn.execute("update marts.orders_with_invoices set _built_batch = null")  # unstamped: compared
    build = f"whole-{warehouse.batch}"
    warehouse.conn.execute("insert into loader.builds values (?, now(), now(), ?, '', true, 0, true)",
                           [build, warehouse.batch])
    publishing.publish(warehouse.conn, warehouse.published, build, warehouse.batch,
                       {"orders_with_invoices": ["order_id"]}, {}, rewrite_every=1,
                       catalog={"orders_with_invoices": CATALOG["orders_with_invoices"]})
    seq = refresher.refresh()
    logged = refresher.conn.execute("select key, after from _changes where seq = ?", [seq]).fetchall()
    assert [json.loads(k) for k, _ in logged] == [["o1"]] and orjson.loads(logged[0][1])[1] == "c2"
