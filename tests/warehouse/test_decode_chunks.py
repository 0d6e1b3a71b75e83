"""A batch decoded fetch by fetch, each fetch turned into Arrow at once, equals one decoded whole.

The loader converts every fetched chunk to Arrow right away (`frames.convert`) so a batch holds
columns, not decoded objects; chunk borders must not move a row, an old key or the group's maxima.
"""

from __future__ import annotations

from tests.warehouse.captures import STEPS, messages
from warehouse.ingest.catalog import Catalog
from warehouse.ingest.decode import Batch, Decoder
from warehouse.ingest.frames import convert, prepare


def _work(chunk: int | None):
    decoder = Decoder(Catalog())
    batch = Batch()
    every = [m for step in STEPS for m in messages(step)]
    for start in range(0, len(every), chunk or len(every)):
        decoder.decode(every[start : start + (chunk or len(every))], batch)
        if chunk:
            convert(batch)
    return batch, prepare(batch, decoder.catalog.tables, set())


def test_chunked_conversion_gives_the_same_frames_as_one_conversion():
    _, whole = _work(None)
    for size in (1, 2, 3):
        batch, chunked = _work(size)
        assert batch.held_bytes > 0
        assert [(f.table, f.topic, f.max_lsn, f.max_commit_us) for f in chunked.frames] == [
            (f.table, f.topic, f.max_lsn, f.max_commit_us) for f in whole.frames
        ]
        for one, other in zip(chunked.frames, whole.frames):
            assert one.data.combine_chunks().equals(other.data.combine_chunks()), one.table
        assert chunked.events == whole.events == batch.events


def test_the_old_key_stays_on_the_create_half_across_chunk_borders():
    _, work = _work(1)
    rows = [r for f in work.frames for r in f.data.select(["_op", "_old_key"]).to_pylist()]
    keyed = [r for r in rows if r["_old_key"] is not None]
    assert keyed and all(r["_op"] == "c" for r in keyed)
