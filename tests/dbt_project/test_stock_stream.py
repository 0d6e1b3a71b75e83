"""The stock event stream, built incrementally batch by batch, gives exactly the full-refresh result.

`stock_movements` appends: new movements carry on from the balance it holds for a product's last one,
and an event landing after a later one of its stream makes it recompute that stream whole.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import duckdb
import pytest

from .changelog import StockSource
from .test_incremental import _build, _table, builder_for


@pytest.mark.parametrize("seed", [1, 2])
def test_stock_movements_append_and_equal_a_full_refresh(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    source = StockSource(rng)
    built = tmp_path / "incremental" / "warehouse.duckdb"
    built.parent.mkdir()
    builder = builder_for(built)
    for batch in range(12):
        for _ in range(rng.randrange(1, 25) if batch < 11 else 0):  # the last batch lands the late ones
            source.step()
        with duckdb.connect(str(built)) as conn:
            source.flush(conn)
        _build(built, tests=rng.random() < 0.3, builder=builder)
    assert not source.late and source.deferred, "the seed lands no event late: pick another"

    full = tmp_path / "full" / "warehouse.duckdb"
    full.parent.mkdir()
    shutil.copy(built, full)
    _build(full, full_refresh=True)
    with duckdb.connect(str(built), read_only=True) as a, duckdb.connect(str(full), read_only=True) as b:
        assert _table(a, "stg_inventory__stock_events", "staging") == _table(b, "stg_inventory__stock_events",
                                                                             "staging")
        assert _table(a, "stock_movements", "marts") == _table(b, "stock_movements", "marts")
        # And the last balance of each stream is the source's stock.
        last = dict(a.execute("select product_id, arg_max(balance_after, version) from marts.stock_movements "
                              "group by product_id").fetchall())
    assert last == {product: stock for product, stock in source.stock.items() if source.versions[product]}
