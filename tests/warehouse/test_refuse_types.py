"""`MIRADOR_LOADER_REFUSE_TYPES` sends every message with a field of a refused type to the dead letters."""

from __future__ import annotations

import json

from tests.warehouse.captures import FIXTURES, as_message, messages
from warehouse.ingest.catalog import Catalog
from warehouse.ingest.configuration import LoaderSettings
from warehouse.ingest.decode import Batch, Decoder


def test_the_setting_is_a_comma_list(monkeypatch):
    monkeypatch.setenv("MIRADOR_LOADER_REFUSE_TYPES", " float64, io.debezium.time.MicroTimestamp ,")
    assert LoaderSettings().refused_types == {"float64", "io.debezium.time.MicroTimestamp"}
    monkeypatch.delenv("MIRADOR_LOADER_REFUSE_TYPES")
    assert LoaderSettings().refused_types == frozenset()


def _decode(refuse: frozenset[str]) -> Batch:
    batch = Batch()
    decoder = Decoder(Catalog(), refuse=refuse)
    for step in ("snapshot", "insert", "update"):
        decoder.decode(messages(step), batch)
    return batch


def test_a_refused_logical_type_dead_letters_every_change_of_its_table():
    batch = _decode(frozenset({"io.debezium.time.MicroTimestamp"}))
    assert batch.events == 0
    assert len(batch.dead) == 4  # two snapshot rows, the insert, the update
    assert {d.reason for d in batch.dead} == {
        "field 'ts_col' has type 'io.debezium.time.MicroTimestamp', refused by MIRADOR_LOADER_REFUSE_TYPES"
    }
    assert batch.transactions  # the transaction markers still load


def test_lifted_it_refuses_nothing():
    batch = _decode(frozenset())
    assert not batch.dead and batch.events == 4


def test_a_refused_element_type_names_the_array_and_spares_other_tables():
    """JSON names float32 `float`; refusing either name refuses real columns and real[] elements."""
    records = [json.loads(line) for line in (FIXTURES / "types" / "snapshot.jsonl").read_text().splitlines()]
    batch = Batch()
    Decoder(Catalog(), refuse=frozenset({"float32"})).decode([as_message(r) for r in records], batch)
    reasons = {d.topic.rsplit(".", 1)[1]: d.reason for d in batch.dead}
    assert reasons == {
        "numbers": "field 'real_col' has type 'float32', refused by MIRADOR_LOADER_REFUSE_TYPES",
        "arrays": "field 'real_arr[]' has type 'float32', refused by MIRADOR_LOADER_REFUSE_TYPES",
    }
    assert {g.schema.table for g in batch.groups.values()} == {
        "fixtures_types__texts",
        "fixtures_types__times",
        "fixtures_types__others",
        "fixtures_types__keys",
    }
