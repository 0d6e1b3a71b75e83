"""The serving copy follows publications by their changed keys, and always equals the published views."""

from __future__ import annotations

import copy
import json
import random

import duckdb
import orjson
import pytest

from api.store import Refresher, quote, table_of
from tests.api.conftest import CATALOG, ScratchWarehouse
from warehouse import publish as publishing


def served_rows(refresher: Refresher) -> dict[str, dict]:
    return {
        json.loads(body)["order_id"]: json.loads(body)
        for (body,) in refresher.conn.execute(f"select _json from {table_of('orders_with_invoices')}")
    }


def mart_rows(warehouse: ScratchWarehouse) -> dict[str, dict]:
    rows = warehouse.conn.execute(
        "select order_id, customer_id, status, order_total::varchar, is_paid from marts.orders_with_invoices"
    ).fetchall()
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
        warehouse.upsert(
            [
                {
                    "order_id": key,
                    "customer_id": f"c{rng.randrange(9)}",
                    "status": rng.choice(["paid", "placed"]),
                    "order_total": f"{rng.randrange(10_000)}.{rng.randrange(100):02d}",
                }
                for key in rng.sample(keys, 40 if round_ else 300)
            ]
        )
        warehouse.publish()
        refresher.refresh()
        served = {
            k: {c: v[c] for c in ("customer_id", "status", "order_total", "is_paid")}
            for k, v in served_rows(refresher).items()
        }
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
    warehouse.conn.execute(
        "insert into loader.builds values (?, now(), now(), ?, '', true, 0, true)", [build, warehouse.batch]
    )
    publishing.publish(
        warehouse.conn,
        warehouse.published,
        build,
        warehouse.batch,
        {"orders_with_invoices": ["order_id"]},
        {},
        rewrite_every=1,
        catalog={"orders_with_invoices": CATALOG["orders_with_invoices"]},
    )
    seq = refresher.refresh()
    logged = refresher.conn.execute("select key, after from _changes where seq = ?", [seq]).fetchall()
    assert [json.loads(k) for k, _ in logged] == [["o1"]] and orjson.loads(logged[0][1])[1] == "c2"


def current_build(warehouse: ScratchWarehouse) -> str:
    return publishing.current_publication(warehouse.published).build_id


def test_serving_never_makes_publication_copy_whole_files(tmp_path):
    """The refresher opens only the current publication, briefly: publication keeps writing the oldest
    kept file in place (ADR 17), increments growing, while the copy follows every publication."""
    import threading
    import time

    from api.store import connect

    warehouse = ScratchWarehouse(tmp_path)
    refresher = Refresher(warehouse.published, tmp_path / "serving.sqlite")
    stop = threading.Event()
    follower = threading.Thread(target=refresher.run, args=(stop, 0.001))
    warehouse.upsert([{"order_id": f"o{i}", "customer_id": "c1"} for i in range(2000)])
    warehouse.publish()
    follower.start()
    reader = connect(tmp_path / "serving.sqlite", readonly=True)
    reused = 0
    try:
        for round_ in range(12):
            warehouse.upsert([{"order_id": f"o{round_}", "customer_id": f"c{round_}"}])
            inodes = {p.stat().st_ino for p in warehouse.published.glob("*.duckdb")}
            build = warehouse.publish()
            current = publishing.current_publication(warehouse.published)
            reused += current.path(warehouse.published).stat().st_ino in inodes
            deadline = time.monotonic() + 10
            while (
                (
                    reader.execute(
                        "select max(build_id) filter (where seq = (select max(seq) from _builds)) from _builds"
                    ).fetchone()[0]
                )
                != build
            ):
                assert time.monotonic() < deadline, "the copy did not follow"
                time.sleep(0.005)
    finally:
        stop.set()
        follower.join()
    # Past the first three (fewer than `keep` kept: the current one is copied), each publication is
    # written into the oldest kept file, never into a copy of the one before it.
    assert reused >= 9, reused


def test_a_copy_that_skipped_publications_follows_their_changes(tmp_path):
    """Refreshed only every third publication, the copy reads the keys the skipped ones name from their
    files and stays exact; once those files are pruned, it compares the view whole, still exact."""
    warehouse = ScratchWarehouse(tmp_path)
    refresher = Refresher(warehouse.published, tmp_path / "serving.sqlite")
    rng = random.Random(5)
    keys = [f"o{i:03d}" for i in range(200)]
    warehouse.upsert([{"order_id": key, "customer_id": "c0"} for key in keys])
    warehouse.publish()
    refresher.refresh()
    for round_ in range(1, 13):
        if round_ % 2:
            warehouse.delete(rng.sample(keys, 5))
        warehouse.upsert([{"order_id": k, "customer_id": f"c{round_}"} for k in rng.sample(keys, 10)])
        warehouse.publish()
        if round_ % 3 == 0:
            refresher.refresh()
            assert set(served_rows(refresher)) == set(mart_rows(warehouse)), round_
            assert {k: v["customer_id"] for k, v in served_rows(refresher).items()} == {
                k: v["customer_id"] for k, v in mart_rows(warehouse).items()
            }, round_
            assert refresher.applied["orders_with_invoices"] == "by the changes of 3 publications"
            # every publication file it read is let go once the refresh is over, so it can be pruned
            attached = refresher.duck.execute("select database_name from duckdb_databases() where not internal")
            assert [name for (name,) in attached.fetchall()] == ["memory"], round_
    for _ in range(6):  # more than the publications kept: the chain from the copy is gone
        warehouse.upsert([{"order_id": "o001", "customer_id": f"c{_}x"}])
        warehouse.publish()
    refresher.refresh()
    assert refresher.applied["orders_with_invoices"] == "compared whole"
    assert served_rows(refresher)["o001"]["customer_id"] == "c5x"


def test_a_row_added_and_deleted_between_a_base_and_its_publication_goes(tmp_path):
    """A publication's changes count from the oldest kept file (ADR 17): a row added after that base
    and deleted again is in neither, and the copy, which served it, must still drop it."""
    warehouse = ScratchWarehouse(tmp_path)
    refresher = Refresher(warehouse.published, tmp_path / "serving.sqlite")
    warehouse.upsert([{"order_id": f"o{i:03d}", "customer_id": "c1"} for i in range(101)])
    for _ in range(4):
        warehouse.publish()
        refresher.refresh()
    warehouse.upsert([{"order_id": "k", "customer_id": "c2"}])
    warehouse.publish()
    refresher.refresh()
    assert "k" in served_rows(refresher)
    warehouse.delete(["k"])
    warehouse.upsert([{"order_id": "o007", "customer_id": "c3"}])
    warehouse.publish()
    refresher.refresh()
    assert set(served_rows(refresher)) == set(mart_rows(warehouse))
    assert served_rows(refresher)["o007"]["customer_id"] == "c3"
    assert refresher.applied["orders_with_invoices"].startswith("by the changes"), refresher.applied


def test_a_publication_file_that_cannot_be_read_fails_one_refresh_only(tmp_path):
    """The current publication's file gone (pruned under the refresher): that refresh fails, nothing is
    left attached, and the next publication is applied by its changes."""
    warehouse = ScratchWarehouse(tmp_path)
    refresher = Refresher(warehouse.published, tmp_path / "serving.sqlite")
    warehouse.upsert([{"order_id": f"o{i}", "customer_id": "c0"} for i in range(20)])
    warehouse.publish()
    refresher.refresh()
    warehouse.upsert([{"order_id": "o1", "customer_id": "c1"}])
    warehouse.publish()
    current = publishing.current_publication(warehouse.published)
    saved = current.path(warehouse.published).read_bytes()
    current.path(warehouse.published).unlink()
    with pytest.raises(duckdb.Error):
        refresher.refresh()
    attached = refresher.duck.execute("select database_name from duckdb_databases() where not internal")
    assert [name for (name,) in attached.fetchall()] == ["memory"]
    current.path(warehouse.published).write_bytes(saved)
    warehouse.upsert([{"order_id": "o2", "customer_id": "c2"}])
    warehouse.publish()
    refresher.refresh()
    assert refresher.applied["orders_with_invoices"] == "by the changes of 2 publications"
    assert {k: v["customer_id"] for k, v in served_rows(refresher).items()} == {
        k: v["customer_id"] for k, v in mart_rows(warehouse).items()
    }


def test_the_columns_a_model_names_in_meta_indexed_are_index_lookups(tmp_path):
    """`meta.indexed` (a column, or a list of them) adds an index to the serving copy, each followed by
    the default order: a filter on it reads the index, not the whole view. Added later, the table is
    made anew, and stays exact."""
    warehouse = ScratchWarehouse(tmp_path)
    refresher = Refresher(warehouse.published, tmp_path / "serving.sqlite")
    warehouse.upsert(
        [{"order_id": f"o{i}", "customer_id": "c0", "status": "paid" if i % 3 else "placed"} for i in range(30)]
    )
    warehouse.publish()
    refresher.refresh()
    table = table_of("orders_with_invoices")
    plan = " ".join(
        str(r) for r in refresher.conn.execute(f"explain query plan select * from {table} where status = 'paid'")
    )
    assert "SCAN" in plan and "USING INDEX" not in plan

    catalog = copy.deepcopy(CATALOG)
    catalog["orders_with_invoices"]["meta"]["indexed"] = [
        "status",
        ["invoice_document_url", "is_paid"],
        "no_such_column",
    ]
    warehouse.upsert([{"order_id": "o1", "customer_id": "c1", "status": "shipped"}])
    warehouse.publish(catalog=catalog)
    refresher.refresh()
    indexes = {
        name: [c for (_, _, c) in refresher.conn.execute(f"pragma index_info({quote(name)})")]
        for (name,) in refresher.conn.execute(
            "select name from sqlite_master where type = 'index' and tbl_name = 'view__orders_with_invoices'"
        )
    }
    assert ["status", "placed_at", "order_id"] in indexes.values()
    assert ["invoice_document_url", "is_paid", "placed_at", "order_id"] in indexes.values()
    plan = " ".join(
        str(r) for r in refresher.conn.execute(f"explain query plan select * from {table} where status = 'paid'")
    )
    assert "USING INDEX" in plan
    assert {k: v["status"] for k, v in served_rows(refresher).items()} == {
        k: v["status"] for k, v in mart_rows(warehouse).items()
    }
