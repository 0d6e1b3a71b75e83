"""Dead letters after a fix: what is dead, per topic and reason, and their replay.

A replay decodes each dead letter's stored bytes again with the current decoder (this release's types,
today's `MIRADOR_LOADER_REFUSE_TYPES`) and lands what now decodes as the loader would have, at its own
Kafka topic, partition and offset and with its own source position. Staging folds a key's changes by
source LSN, then offset, never by landing order, so a replayed change older than one already landed
stays behind it; the new batch makes the next build fold its keys again.

Dead letters are replayed in source order, a page at a time. Each page lands in one transaction with
its bookkeeping (the rows as a new batch, the dead letters moved to `loader.replayed_letters`, the new
reasons of those that still fail), so a replay killed at any point and run again lands nothing twice.
It holds the warehouse lock for the whole replay, as `mirador load` does per batch: while `mirador
run` runs, it waits for the file to be handed over.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Message

from warehouse import ledger
from warehouse.exceptions import StageFailed, TerminalError, WarehouseError
from warehouse.ingest.catalog import Catalog
from warehouse.ingest.configuration import LoaderSettings
from warehouse.ingest.decode import Batch, Decoder
from warehouse.ingest.frames import prepare
from warehouse.ingest.land import connect, land_in_transaction, raw_columns
from warehouse.lock import WarehouseLock

log = logging.getLogger(__name__)

PAGE = 5_000
"""Dead letters decoded and landed per transaction, fewer when their values pass
`MIRADOR_LOADER_BATCH_BYTES` (memory stays bounded whatever the messages' size)."""


@dataclass
class ReplayReport:
    tried: int = 0
    replayed: int = 0
    batches: list[int] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    still_dead: Counter = field(default_factory=Counter)
    """Reason -> how many of the dead letters tried failed again."""
    remaining: dict[str, int] = field(default_factory=dict)
    """Topic -> dead letters left after the replay, of every topic and reason."""
    seconds: float = 0.0
    lock_wait: float = 0.0


def summary(settings: LoaderSettings) -> dict:
    """The dead letters per topic, partition and reason, and how many replays landed, read under the lock."""
    path = _existing(settings)
    with (
        WarehouseLock(path, "mirador deadletters list", timeout=settings.loader_lock_timeout),
        connect(path, settings, config={"access_mode": "read_only"}) as conn,
    ):
        conn.execute("set TimeZone = 'UTC'")
        groups = ledger.dead_letter_groups(conn)
        return {
            "warehouse": str(path),
            "dead_letters": sum(g["count"] for g in groups),
            "replayed": ledger.count_replayed(conn),
            "groups": groups,
        }


def replay(
    settings: LoaderSettings, topic: str | None = None, reason: str | None = None, page: int = PAGE
) -> ReplayReport:
    """Decode the dead letters (of `topic`, with `reason` in their reason) again and land what now decodes."""
    path = _existing(settings)
    report, started = ReplayReport(), time.perf_counter()
    with (
        WarehouseLock(path, "mirador deadletters replay", timeout=settings.loader_lock_timeout) as lock,
        connect(path, settings) as conn,
    ):
        report.lock_wait = lock.waited
        ledger.create(conn)
        conn.execute("set TimeZone = 'UTC'")
        decoder = Decoder(Catalog(raw_columns(conn)), refuse=settings.refused_types)
        after = None
        while letters := ledger.dead_letters_after(conn, after, topic, reason, page, settings.loader_batch_bytes):
            after = letters[-1][:3]
            _replay_page(conn, decoder, letters, report)
        report.remaining = Counter()
        for group in ledger.dead_letter_groups(conn):
            report.remaining[group["topic"]] += group["count"]
    report.seconds = time.perf_counter() - started
    return report


def _replay_page(conn, decoder: Decoder, letters: list[tuple], report: ReplayReport) -> None:
    batch = Batch()
    messages = [Message(topic=t, partition=p, offset=o, key=k, value=v) for t, p, o, k, v in letters]
    try:
        decoder.decode(messages, batch)
        work = prepare(batch, decoder.catalog.tables, set())
    except WarehouseError:
        raise
    except Exception as err:  # a bug in decoding or building Arrow: say where, stop
        raise StageFailed("decode", None, batch.span(), err) from err
    span = work.span()
    # Behind the stored positions by nature: nothing of it was landed before, and no position moves.
    work = dataclasses.replace(work, positions={}, first_offsets={})
    failed = [(d.topic, d.partition, d.offset, d.reason, d.stage) for d in batch.dead]
    dead = {f[:3] for f in failed}
    landed = [key for key in (letter[:3] for letter in letters) if key not in dead]
    conn.execute("begin transaction")
    try:
        if landed:
            result = land_in_transaction(conn, work)
            ledger.revive_dead_letters(conn, landed, result.batch_id, datetime.now(UTC))
            report.batches.append(result.batch_id)
        ledger.record_new_reasons(conn, failed)
        conn.execute("commit")
    except BaseException as err:
        try:
            conn.execute("rollback")
        except Exception:
            pass  # the cause matters; closing the connection discards the transaction
        if isinstance(err, WarehouseError) or not isinstance(err, Exception):
            raise
        raise StageFailed("land", None, span, err) from err
    report.tried += len(letters)
    report.replayed += len(landed)
    report.tables |= {f.table for f in work.frames}
    report.still_dead.update(f[3] for f in failed)
    log.info(
        "replayed batch=%s landed=%d still_dead=%d offsets=%s",
        report.batches[-1] if landed else "-",
        len(landed),
        len(failed),
        " ".join(f"{tp}:{s}" for tp, s in sorted(span.items())),
    )


def _existing(settings: LoaderSettings) -> Path:
    if not settings.warehouse.exists():
        raise TerminalError(f"no warehouse at {settings.warehouse} yet: run `mirador load --once` first")
    return settings.warehouse
