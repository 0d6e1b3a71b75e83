"""The pipeline: load what arrived -> build the affected models -> publish, once or in a loop.

`mirador build` is one build-and-publish for schedulers (after `mirador load --once`). `mirador run`
keeps a loader following Kafka in one thread and builds and publishes in another, in one process
with one parsed dbt manifest and one open DuckDB instance (`warehouse.runtime.session`). While a
build runs the loader holds what arrives; it lands it as the build ends, and the next build starts
as soon as that batch has committed. Data tests run with every build of `mirador build`. `mirador
run` builds the models and publishes, and every `run_test_interval` seconds tests what it published
since the last tests; once they fail, every cycle tests before it publishes (so nothing more is
published) until they pass. Once dbt has run a model or a test twice with the same SQL, the cycles
replay that SQL without dbt (warehouse/build/recordings.py). Other processes that want the file get
it between cycles.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from warehouse.build.builder import Builder, BuildResult
from warehouse.ingest.load import Loader, LoadReport
from warehouse.ingest.progress import Progress
from warehouse.publish import Publication, current_publication, publish, refresh_watermark, switch
from warehouse.runtime import status_file
from warehouse.runtime.configuration import PipelineSettings
from warehouse.runtime.exceptions import AlreadyRunning
from warehouse.runtime.session import Session

log = logging.getLogger(__name__)

DEAD_LETTERS_RECOUNT = 30.0
"""Seconds after which `mirador run` counts the dead letters and unmapped columns again for its status file."""


@dataclass
class CycleReport:
    build: BuildResult
    publication: Publication | None
    seconds: float
    publish_seconds: float = 0.0


class DataTestClock:
    """When `mirador run` runs the data tests: at the first cycle that built something, then every
    `interval` seconds. A dbt test run records the tests' SQL; the next cycle runs them once more to
    confirm the recording, so they replay from the first interval on (otherwise from the third)."""

    def __init__(self, interval: float, now: float) -> None:
        self.interval, self.last, self.confirm = interval, now - interval, False

    def due(self, now: float) -> bool:
        return self.confirm or now - self.last >= self.interval

    def ran(self, result: BuildResult, now: float) -> None:
        if result.skipped:  # nothing new to test: still due, at the next cycle
            return
        self.last = now
        # once: a second dbt run in a row means dbt rendered other SQL, and the interval applies
        self.confirm = not result.replayed and not self.confirm


class Pipeline:
    def __init__(self, settings: PipelineSettings) -> None:
        """Parses the dbt project (`Builder`), before any file is taken."""
        self.settings = settings
        self.builder = Builder(settings)

    def build_and_publish(
        self, *, full_refresh: bool = False, tests: bool = True, session: Session | None = None
    ) -> CycleReport:
        """One build of what changed since the last one, then publication (or a watermark refresh)."""
        if session is None:
            with Session(self.settings, "mirador build") as session:
                cycle = self.build_and_publish(full_refresh=full_refresh, tests=tests, session=session)
                self.record_status(session, "mirador build", cycle=cycle, tests=cycle.build, recount=True)
                return cycle
        started = time.perf_counter()
        result = self.builder.build(session.connection, full_refresh=full_refresh, tests=tests)
        publication = None
        publishing = time.perf_counter()
        if result.success and not result.skipped:
            current = current_publication(self.settings.published)
            tested_through = (
                result.through_batch if result.tested else (current.tested_through_batch if current else None)
            )
            with session.connection() as conn:
                publication = publish(
                    conn,
                    self.settings.published,
                    result.build_id,
                    result.through_batch,
                    self.builder.project.exposed,
                    result.watermark,
                    tested_through_batch=tested_through,
                    keep=self.settings.publish_keep,
                    rewrite_every=self.settings.publish_rewrite_every,
                    catalog=self.builder.project.catalog,
                )
        elif result.skipped:
            publication = refresh_watermark(self.settings.published, result.watermark)
        finished = time.perf_counter()
        return CycleReport(result, publication, finished - started, finished - publishing)

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: a loader thread follows Kafka; this thread builds and publishes what it landed."""
        _freeze_manifest()
        loader_settings = self.settings.model_copy(update={"loader_batch_seconds": self.settings.run_batch_seconds})
        failure: list[BaseException] = []
        with Session(self.settings, threads=self.settings.run_duckdb_threads) as session:
            loader = Loader(
                loader_settings,
                follow=True,
                progress=Progress(interactive=False),
                stop=stop,
                session=session,
                hold_on_landing=True,
            )

            def follow() -> None:
                try:
                    loader.run()
                except BaseException as err:  # reported by the main loop
                    failure.append(err)
                    stop.set()

            thread = threading.Thread(target=follow, name="loader", daemon=True)
            thread.start()
            tests, tests_failed = DataTestClock(self.settings.run_test_interval, time.monotonic()), False
            dead_letters_seen, counted_at = None, 0.0
            try:
                while not stop.is_set():
                    loader.hold.set()  # what arrives meanwhile lands when the cycle is over
                    try:
                        cycle = self.build_and_publish(tests=tests_failed, session=session)
                        tested = cycle.build if cycle.build.tested and not cycle.build.skipped else None
                        if not cycle.build.skipped:
                            self._log(cycle)
                            if cycle.build.tested:
                                tests.ran(cycle.build, time.monotonic())
                                tests_failed = not cycle.build.success
                        if not tests_failed and tests.due(time.monotonic()):
                            tested = self.test(session)
                            tests.ran(tested, time.monotonic())
                            tests_failed = not tested.success
                        # the ledger's counts again when the loader wrote dead letters, and now and then (a
                        # replay moves them; a batch may bring an unmapped column)
                        recount = (
                            dead_letters_seen != loader.report.dead_letters
                            or time.monotonic() - counted_at > DEAD_LETTERS_RECOUNT
                        )
                        self.record_status(
                            session, "mirador run", cycle=cycle, tests=tested, load=loader.report, recount=recount
                        )
                        if recount:
                            dead_letters_seen, counted_at = loader.report.dead_letters, time.monotonic()
                    finally:
                        loader.landed.clear()
                        loader.hold.clear()
                    session.hand_over()
                    # The next build starts as soon as a batch lands; with none, the watermark is
                    # refreshed every interval (sources' heartbeats move it on).
                    loader.landed.wait(self.settings.run_interval)
            finally:
                stop.set()
                thread.join()
        if failure:
            raise failure[0]

    def test(self, session: Session) -> BuildResult:
        """The data tests of what was published since they last ran; passing, the publication says so."""
        result = self.builder.test(session.connection)
        if result.skipped:
            return result
        log.info(
            "tests %s: %s in %.2fs (%s) through batch %s%s",
            result.build_id,
            "passed" if result.success else "FAILED",
            result.seconds,
            "replayed" if result.replayed else "dbt test",
            result.through_batch,
            "" if result.success else "; nothing is published until they pass: " + ", ".join(result.failures),
        )
        current = current_publication(self.settings.published)
        if result.success and current is not None and current.through_batch <= result.through_batch:
            current.tested_through_batch = current.through_batch
            switch(self.settings.published, current)
        return result

    def record_status(
        self,
        session: Session,
        command: str,
        *,
        cycle: CycleReport | None = None,
        tests: BuildResult | None = None,
        load: LoadReport | None = None,
        recount: bool = False,
    ) -> None:
        """Rewrite the status file `mirador status` reads (sections of what ran; the others kept);
        `recount`: the dead letters by topic and the unmapped columns too, from the ledger."""
        built = cycle is not None and not cycle.build.skipped
        published = built and cycle.publication is not None and cycle.build.success
        letters = unmapped = None
        if recount:
            with session.connection() as conn:
                letters, unmapped = status_file.dead_letters(conn), status_file.unmapped_columns(conn)
        status_file.record(
            status_file.location(self.settings),
            command,
            load=status_file.load_section(load) if load is not None else None,
            build=status_file.build_section(cycle.build, cycle.seconds) if built else None,
            publish=status_file.publish_section(cycle.publication, cycle.publish_seconds) if published else None,
            tests=status_file.tests_section(tests) if tests is not None and not tests.skipped else None,
            dead_letters=letters,
            unmapped_columns=unmapped,
        )

    @staticmethod
    def _log(cycle: CycleReport) -> None:
        build = cycle.build
        cpu = "" if build.cpu_seconds is None else f", {build.cpu_seconds:.2f}s on CPU"
        log.info(
            "build %s: %s in %.2fs (%s %.2fs%s, publish %.2fs), through batch %s, %s",
            build.build_id,
            "ok" if build.success else "FAILED",
            cycle.seconds,
            "replayed" if build.replayed else "dbt build" if build.tested else "dbt run",
            build.seconds,
            cpu,
            cycle.publish_seconds,
            build.through_batch,
            ", ".join(build.failures) or "published",
        )


def _freeze_manifest() -> None:
    """Keep the parsed manifest, which lives as long as the process, out of the GC's full collections:
    each one traverses every object it tracks (some 176k more with the manifest), holding the GIL.
    Under traffic, their longest pause fell from 0.5-0.7 s to 0.1-0.3 s (ADR 18)."""
    gc.collect()  # what parsing left behind goes first: frozen, it would stay
    gc.freeze()


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
        raise AlreadyRunning(f"another `mirador run` is already running on this warehouse ({holder})") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}".encode())
    try:
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
