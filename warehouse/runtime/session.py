"""The pipeline's hold on the working file: one DuckDB instance for its loader, its builds and publication.

DuckDB lets one process write a file, but inside that process any number of connections share one
database instance and write concurrently (MVCC). `mirador run` therefore opens the file once, under
the warehouse lock, and gives each user a cursor of that instance: the loader thread lands batches
without waiting for the lock (between builds: the pipeline holds them back while one runs).
dbt-duckdb opens the same instance because the `warehouse.runtime.dbt_lock` plugin hands it this
session's configuration.

Other processes (an analyst's `dbt build`, `mirador verify`, a standalone `mirador load`) still take
turns through the lock: while they wait they leave a note (`warehouse.lock.others_waiting`), and
between cycles the pipeline hands the file over: it waits for its users to finish what they do,
closes the instance, releases the lock, lets the other process take it, and takes it back after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from warehouse import ledger
from warehouse.build.dbt_duckdb import release_connection
from warehouse.exceptions import TransientError
from warehouse.ingest.land import connect
from warehouse.lock import WarehouseLock, held_by_this_process, others_waiting
from warehouse.runtime.configuration import PipelineSettings

log = logging.getLogger(__name__)

HAND_OVER_SECONDS = 10.0
"""How long the pipeline waits for a waiting process to take the file before it takes it back."""


class Session:
    """`with Session(settings) as session: with session.connection() as conn: ...`"""

    def __init__(self, settings: PipelineSettings, holder: str = "mirador run", threads: int | None = None) -> None:
        self.settings, self.holder = settings, holder
        self.path: Path = settings.warehouse.resolve()
        self.config = {"threads": threads or settings.loader_duckdb_threads, "memory_limit": settings.run_duckdb_memory}
        self._db: duckdb.DuckDBPyConnection | None = None
        self._lock: WarehouseLock | None = None
        self._users = 0
        self._changing = threading.Condition()
        self._ended = False  # closed for good: connection() stops waiting for the file to come back

    def __enter__(self) -> Session:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._end()
        self.close()

    def _end(self) -> None:
        with self._changing:
            self._ended = True
            self._changing.notify_all()

    def open(self) -> None:
        lock = WarehouseLock(self.path, self.holder, timeout=self.settings.loader_lock_timeout)
        lock.acquire()
        try:
            db = connect(self.path, self.settings, config=self.config)
        except BaseException:
            lock.release()
            raise
        try:  # the ledger first, before its users run concurrently (two creating one schema conflict)
            ledger.create(db)
        except BaseException:
            db.close()
            lock.release()
            raise
        with self._changing:
            self._lock, self._db = lock, db
            held_by_this_process[self.path] = self.config
            self._changing.notify_all()

    def close(self) -> None:
        """Wait for every connection in use to be given back, then close the instance and the lock."""
        with self._changing:
            if self._db is None:
                return
            db, self._db = self._db, None  # no new users from here on
            while self._users:
                self._changing.wait()
            release_connection()
            db.close()
            held_by_this_process.pop(self.path, None)
            lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the shared instance; waits while the file is handed over to another process."""
        with self._changing:
            while self._db is None:
                if self._ended:
                    raise TransientError(f"{self.holder} no longer holds {self.path.name}")
                self._changing.wait()
            self._users += 1
            cursor = self._db.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            with self._changing:
                self._users -= 1
                self._changing.notify_all()

    def hand_over(self) -> float | None:
        """If another process waits for the file, give it its turn; the seconds it took, else None."""
        waiting = others_waiting(self.path)
        if not waiting:
            return None
        started = time.monotonic()
        log.info("handing the warehouse file over to %s", ", ".join(waiting))
        self.close()
        deadline = started + HAND_OVER_SECONDS
        while others_waiting(self.path) and time.monotonic() < deadline:
            time.sleep(0.05)  # until they hold it (their note goes) ...
        try:
            self.open()  # ... and then for as long as they hold it
        except BaseException:
            self._end()  # whoever waits for the file inside this process must not wait forever
            raise
        seconds = time.monotonic() - started
        log.info("took the warehouse file back after %.1fs", seconds)
        return seconds
