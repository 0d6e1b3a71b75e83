"""The pipeline: load what arrived -> build the affected models -> publish, once or in a loop.

`mirador build` is one build-and-publish for schedulers (after `mirador load --once`). `mirador run`
keeps a loader following Kafka in one thread and builds and publishes in another, in one process
with one parsed dbt manifest. The loader and the build take turns on the working file through the
warehouse lock; an analyst's `dbt build` takes its turn the same way (warehouse.dbt_lock).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from warehouse import dbt_lock
from warehouse.build import Builder, BuildResult
from warehouse.configuration import PipelineSettings
from warehouse.exceptions import TransientError
from warehouse.land import connect
from warehouse.load import Loader
from warehouse.lock import WarehouseLock
from warehouse.progress import Progress
from warehouse.publish import Publication, publish, refresh_watermark

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    build: BuildResult
    publication: Publication | None
    lock_wait: float
    seconds: float
    publish_seconds: float = 0.0


class Pipeline:
    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self.builder = Builder(settings)

    @contextmanager
    def _holding_warehouse(self, holder: str):
        path = self.settings.warehouse.resolve()
        with WarehouseLock(path, holder, timeout=self.settings.loader_lock_timeout) as lock:
            dbt_lock.held_by_this_process.add(path)
            try:
                yield lock
            finally:
                dbt_lock.held_by_this_process.discard(path)

    def build_and_publish(self, *, full_refresh: bool = False) -> CycleReport:
        """One build of what changed since the last one, then publication (or a watermark refresh)."""
        started = time.perf_counter()
        self.builder.runner()  # parse outside the lock
        with self._holding_warehouse("mirador build") as lock:
            result = self.builder.build(self._connect, full_refresh=full_refresh)
            publication = None
            publishing = time.perf_counter()
            with self._connect() as conn:
                if result.success and not result.skipped:
                    publication = publish(conn, self.settings.published, result.build_id, result.through_batch,
                                          self.builder.exposed_models(), keep=self.settings.publish_keep)
                elif result.skipped:
                    publication = refresh_watermark(conn, self.settings.published)
        finished = time.perf_counter()
        return CycleReport(result, publication, lock.waited, finished - started, finished - publishing)

    def _connect(self):
        return connect(self.settings.warehouse, self.settings)

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: a loader thread follows Kafka; this thread builds and publishes what it landed."""
        loader_settings = self.settings.model_copy(update={"loader_batch_seconds": self.settings.run_batch_seconds})
        loader = Loader(loader_settings, follow=True, progress=Progress(interactive=False), stop=stop)
        failure: list[BaseException] = []

        def follow() -> None:
            try:
                loader.run()
            except BaseException as err:  # noqa: BLE001 - reported by the main loop
                failure.append(err)
                stop.set()

        thread = threading.Thread(target=follow, name="loader", daemon=True)
        thread.start()
        try:
            while not stop.is_set():
                cycle = self.build_and_publish()
                if not cycle.build.skipped:
                    log.info("build %s: %s in %.2fs (dbt %.2fs, publish %.2fs, lock wait %.2fs), %s",
                             cycle.build.build_id, "ok" if cycle.build.success else "FAILED", cycle.seconds,
                             cycle.build.seconds, cycle.publish_seconds, cycle.lock_wait,
                             ", ".join(cycle.build.failures) or "published")
                # Always leave the loader a turn at the file before building again (flock is not fair).
                stop.wait(self.settings.run_interval)
        finally:
            stop.set()
            thread.join()
        if failure:
            raise failure[0]


@contextmanager
def single_run(settings: PipelineSettings):
    """Refuse a second `mirador run` on the same warehouse: it would only contend for the lock."""
    path = settings.home / "run" / "pipeline.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = Path(path).read_text().strip() or "another process"
        os.close(fd)
        raise TransientError(f"another `mirador run` is already running on this warehouse ({holder})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}".encode())
    try:
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
