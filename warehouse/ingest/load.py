"""The loader: consume -> decode -> land, batch after batch, until drained or told to stop.

Batch N+1 is fetched and decoded while batch N is written: DuckDB works outside the GIL, so the
two overlap on two cores. Only one batch is ever in flight, which bounds memory to two batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from warehouse.exceptions import StageFailed, TransientError, WarehouseError
from warehouse.ingest.catalog import Catalog
from warehouse.ingest.configuration import LoaderSettings
from warehouse.ingest.consume import ChangeConsumer
from warehouse.ingest.decode import Batch, Decoder
from warehouse.ingest.frames import ARROW_CHUNK, Work, convert, prepare
from warehouse.ingest.land import Landed, Warehouse
from warehouse.ingest.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    batches: int = 0
    messages: int = 0
    events: int = 0
    dead_letters: int = 0
    tombstones: int = 0
    already_landed: int = 0
    seconds: float = 0.0
    lag: int = 0
    stopped: bool = False
    tables: set[str] = field(default_factory=set)
    last: Landed | None = None
    """The last batch landed, and when (`last_at`, ISO 8601 UTC): for `mirador status`."""
    last_at: str | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


HOLD_POLL = 0.02
"""Seconds between looks at `Loader.hold` once a held batch is due."""


class Loader:
    def __init__(
        self,
        settings: LoaderSettings,
        follow: bool = False,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        session=None,
        hold_on_landing: bool = False,
    ) -> None:
        self.settings, self.follow = settings, follow
        self.progress = progress or Progress(interactive=False)
        self.stop = stop or threading.Event()
        self.session = session
        """Inside `mirador run`: the pipeline's `warehouse.runtime.session.Session`, whose instance it writes."""
        self.landed = threading.Event()
        """Set after each batch commits (the pipeline builds as soon as something landed)."""
        self.hold = threading.Event()
        """Set by the pipeline while it builds: a batch then closes only when full, so batches land
        between builds instead of competing with dbt for the instance and the CPU."""
        self.hold_on_landing = hold_on_landing
        """Inside `mirador run`, where each landing starts a build: the landing itself sets `hold`, so
        what arrives from then on waits for the end of that build, without a race with the pipeline."""
        self.report = LoadReport()

    def run(self) -> LoadReport:
        started = time.monotonic()
        warehouse = Warehouse(self.settings, session=self.session)
        stored, raw_columns = warehouse.read_state()
        self.decoder = Decoder(Catalog(raw_columns), refuse=self.settings.refused_types)
        self.consumer = consumer = ChangeConsumer(self.settings, stored)
        consumer.discover()
        self.targets = None if self.follow else consumer.high_watermarks(cached=False)
        discovered = time.monotonic()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="land")
        pending: tuple[Future, Work] | None = None
        try:
            while True:
                if self.follow and time.monotonic() - discovered > self.settings.loader_discover_seconds:
                    self._rediscover()
                    discovered = time.monotonic()
                batch = self._collect(lambda pending=pending: pending is not None and not pending[0].done())
                if batch.messages:
                    high = self._high()
                    try:
                        work = prepare(batch, self.decoder.catalog.tables, consumer.caught_up_services(high))
                        work.topics = {topic for topic, _ in consumer.assigned}
                        work.behind = consumer.behind_topics(high)
                    except WarehouseError:
                        raise
                    except Exception as err:  # a bug in building Arrow: say where, stop
                        raise StageFailed("decode", None, batch.span(), err) from err
                    if pending:
                        self._finish(*pending)
                    pending = (executor.submit(warehouse.land, work), work)
                    pending[0].add_done_callback(self._signal)
                if self.stop.is_set() or (not self.follow and self._drained()):
                    break
            if pending:
                self._finish(*pending)
                pending = None
            consumer.commit_last()
        finally:
            if pending:  # an error elsewhere: still let the batch in flight commit or fail cleanly
                pending[0].exception()
            executor.shutdown(wait=True)
            consumer.close()
            self.report.seconds = time.monotonic() - started
            self.report.stopped = self.stop.is_set()
            self.progress.close(self.report)
        return self.report

    def _rediscover(self) -> None:
        """New topics, while following. Kafka away (a broker restarting) is no reason to stop: librdkafka
        reconnects by itself, and the loader asks again at the next interval."""
        try:
            self.consumer.discover()
        except TransientError:
            log.warning(
                "Kafka at %s did not answer listing its topics; still following, asking again in %.0fs",
                self.settings.bootstrap_servers,
                self.settings.loader_discover_seconds,
            )

    def _collect(self, landing: Callable[[], bool]) -> Batch:
        """Fetch and decode until the batch is full by count, bytes or time, drained, or stopped.

        Not closed by time while held, nor while the previous batch is `landing`: it could not land
        before that one anyway, and closed early it would land apart, in the middle of the next build.
        """
        s, batch = self.settings, Batch()
        deadline = time.monotonic() + s.loader_batch_seconds
        quiet_since = time.monotonic()
        while batch.messages < s.loader_batch_messages and batch.held_bytes < s.loader_batch_bytes:
            if self.stop.is_set() or (not self.follow and self._drained()):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not self.hold.is_set() and not landing():
                break
            messages = self.consumer.fetch(
                s.loader_batch_messages - batch.messages, min(remaining, 0.25) if remaining > 0 else HOLD_POLL
            )
            if messages:
                try:
                    self.decoder.decode(messages, batch)
                    convert(batch, ARROW_CHUNK)
                except WarehouseError:
                    raise
                except Exception as err:
                    raise StageFailed("decode", None, batch.span(), err) from err
                self.consumer.advance(batch.positions)
                quiet_since = time.monotonic()
            elif not self.follow and time.monotonic() - quiet_since > s.loader_kafka_timeout:
                raise self.consumer.unreachable(
                    f"with the {self.consumer.lag(self.targets or {}):,} messages left to drain"
                )
        return batch

    def _drained(self) -> bool:
        return all(self.consumer.position(tp) >= end for tp, end in (self.targets or {}).items())

    def _high(self) -> dict:
        high = self.consumer.high_watermarks(cached=True)
        for tp, end in (self.targets or {}).items():
            high[tp] = max(end, high.get(tp, end))
        return high

    def _signal(self, future: Future) -> None:
        """As a batch commits, not once the next one is collected: the pipeline builds on it at once."""
        if not future.cancelled() and future.exception() is None:
            if self.hold_on_landing:
                self.hold.set()
            self.landed.set()

    def _finish(self, future: Future, work: Work) -> None:
        """Wait for a batch to land, then tell Kafka (monitoring) and the operator."""
        try:
            landed: Landed = future.result()
        except Exception as err:
            raise StageFailed("land", None, work.span(), err) from err
        self.consumer.commit(work.positions)
        r = self.report
        r.batches += 1
        r.messages += work.messages
        r.events += landed.events
        r.dead_letters += landed.dead_letters
        r.tombstones += work.tombstones
        r.already_landed += landed.already_landed
        r.tables |= {f.table for f in work.frames}
        r.lag = self.consumer.lag(self._high())
        r.last, r.last_at = landed, datetime.now(UTC).isoformat(timespec="microseconds")
        self.progress.batch(landed, work, r)
