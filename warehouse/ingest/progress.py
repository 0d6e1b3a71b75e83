"""What the loader tells its operator: a live line on a terminal, structured log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from warehouse.ingest.frames import Work
    from warehouse.ingest.land import Landed
    from warehouse.ingest.load import LoadReport

log = logging.getLogger("warehouse.ingest.load")  # the loader's lines, under its name

REFRESH_SECONDS = 0.2


class Progress:
    def __init__(self, stream: TextIO = sys.stderr, interactive: bool | None = None) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.started = time.monotonic()
        self._drawn = 0.0

    def batch(self, landed: Landed, work: Work, report: LoadReport) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if self.interactive:
            if time.monotonic() - self._drawn >= REFRESH_SECONDS:
                self._drawn = time.monotonic()
                self.stream.write(
                    f"\r  loaded {report.events:>12,} events  {report.events / elapsed:>9,.0f}/s  "
                    f"lag {report.lag:>11,}  dead letters {report.dead_letters:,}  "
                    f"batch {landed.batch_id}   "
                )
                self.stream.flush()
            return
        log.info(
            "landed batch=%d messages=%d events=%d dead_letters=%d already_landed=%d lag=%d "
            "rate=%.0f/s land_ms=%.0f lock_wait_ms=%.0f tables=%d",
            landed.batch_id,
            work.messages,
            landed.events,
            landed.dead_letters,
            landed.already_landed,
            report.lag,
            report.events / elapsed,
            landed.seconds * 1000,
            landed.lock_wait * 1000,
            len(work.frames),
        )

    def close(self, report: LoadReport) -> None:
        if self.interactive and report.batches:
            self.stream.write("\n")
            self.stream.flush()
        log.info(
            "done batches=%d messages=%d events=%d dead_letters=%d tombstones=%d lag=%d seconds=%.1f "
            "rate=%.0f/s stopped=%s",
            report.batches,
            report.messages,
            report.events,
            report.dead_letters,
            report.tombstones,
            report.lag,
            report.seconds,
            report.rate,
            report.stopped,
        )
