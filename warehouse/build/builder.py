"""The builder: dbt over the working DuckDB file, for the models what landed since the last build affects.

The models rebuilt are those downstream of the raw tables that received batches since the last
successful build, which the build records in `loader.builds` along with the last batch it included.
A build runs the models and their data tests (`dbt build`; selecting what changed since the last
tested build), or only the models (`dbt run`), which `mirador run` follows with `dbt test` every
`MIRADOR_RUN_TEST_INTERVAL` seconds. A builder that replays (`MIRADOR_RUN_REPLAY`) records the SQL dbt
executes for each model and, once two runs agree, executes it itself for the next runs of the models
(warehouse/build/recordings.py).

The loader may land more batches while dbt runs (inside `mirador run` they share the file). A build
reads the last batch and the watermark in one snapshot before dbt starts, and the models read the
raw tables only up to that batch (var `mirador_through_batch`, macros/raw_source.sql): every model of
a build sees the same batches, and the publication's watermark is exactly what it includes.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import duckdb

from warehouse import ledger
from warehouse.build.configuration import BuildSettings
from warehouse.build.dbt_duckdb import release_connection
from warehouse.build.determinism import nondeterministic_nodes
from warehouse.build.exceptions import NondeterministicSQL
from warehouse.build.project import Project
from warehouse.build.recordings import Recordings, schema_of
from warehouse.exceptions import StageFailed

log = logging.getLogger(__name__)

Connection = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
"""Gives a connection to the working file, which the caller holds (a session's cursor, or the file)."""

FAST_FLAGS = ("--no-write-json", "--no-populate-cache")
"""What a build in a loop does not need: artifacts on disk, and listing every schema up front."""


@dataclass
class BuildResult:
    build_id: str
    through_batch: int
    selected: list[str] = field(default_factory=list)
    skipped: bool = False
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    tested: bool = True
    replayed: bool = False
    """The models' recorded SQL was executed without dbt (warehouse/build/recordings.py)."""
    cpu_seconds: float | None = None
    """A replay's CPU time. With one DuckDB thread (`mirador run`'s default) the statements run in the
    replaying threads, so wall time beyond this was spent waiting for a core."""
    watermark: dict[str, dict] = field(default_factory=dict)
    """Per service, the source position every change up to which this build includes."""

    @property
    def success(self) -> bool:
        return not self.failures


class Builder:
    """Builds what a set of new batches affects, with a project parsed once for the builder's life."""

    def __init__(self, settings: BuildSettings, project: Project | None = None) -> None:
        """Parses the dbt project unless given one (a second or so: before the caller takes the file).
        A builder that replays refuses a project whose SQL would differ from run to run."""
        from dbt.cli.main import dbtRunner

        self.settings = settings
        self.project = project or Project.parse(settings)
        self.recordings: Recordings | None = None
        """What dbt executed for each node, when this builder replays (`MIRADOR_RUN_REPLAY`)."""
        if settings.run_replay:
            if findings := nondeterministic_nodes(self.project.manifest):
                raise NondeterministicSQL(findings)
            self.recordings = Recordings(settings.run_replay_recheck)
        self._dbt = dbtRunner(
            manifest=self.project.manifest, callbacks=[self.recordings.observe] if self.recordings else None
        )
        self._ledger_ready = False
        self._unmapped_warned: set[tuple[str, str]] = set()

    def build(self, connection: Connection, *, full_refresh: bool = False, tests: bool = True) -> BuildResult:
        """Build what changed since the last successful build (everything on the first one).

        With `tests`, data tests run too and the selection covers what changed since the last tested build.
        """
        with connection() as conn:
            if not self._ledger_ready:  # a build before any load sees an empty ledger, not an error
                ledger.create(conn)
                self._ledger_ready = True
            conn.execute("begin transaction")  # one snapshot: the batches and the watermark agree
            last = ledger.last_built_batch(conn, tested=tests)
            first = ledger.never_built(conn)
            through, changed = ledger.batches_after(conn, last)
            watermark = ledger.read_watermark(conn)
            unmapped = ledger.unmapped_columns(conn)
            conn.execute("commit")
        self._warn_unmapped(unmapped)
        result = BuildResult(_build_id(), through, tested=tests or first or full_refresh, watermark=watermark)
        selected = ["fqn:*"] if first or full_refresh else self.project.sources_of(changed)
        if not result.tested and self._replay(connection, result, self.project.models_of(changed), selected):
            return result
        return self._invoke(connection, result, "build" if result.tested else "run", selected, full_refresh)

    def _warn_unmapped(self, unmapped: list[tuple[str, str, str, int]]) -> None:
        """Once per builder and column: a raw column of a type the loader does not map holds JSON text."""
        for table, column, kind, batch in unmapped:
            if (table, column) not in self._unmapped_warned:
                self._unmapped_warned.add((table, column))
                log.warning(
                    "raw.%s.%s holds JSON text: the loader does not map its type %s (since batch %s)",
                    table,
                    column,
                    kind,
                    batch,
                )

    def test(self, connection: Connection) -> BuildResult:
        """Run the data tests of what was built since the last tested build (`mirador run` does, every
        `run_test_interval` seconds, after publishing): `tested_through_batch` moves on if they pass."""
        with connection() as conn:
            conn.execute("begin transaction")
            last = ledger.last_built_batch(conn, tested=True)
            built = ledger.last_built_batch(conn, tested=False)
            _, changed = ledger.batches_after(conn, last, built)
            conn.execute("commit")
        result, selected = BuildResult(_build_id(), built, tested=True), self.project.sources_of(changed)
        if self._replay(connection, result, self.project.tests_of(changed), selected):
            return result
        return self._invoke(connection, result, "test", selected)

    def _replay(self, connection: Connection, result: BuildResult, nodes: list[str], selected: list[str]) -> bool:
        """Execute the recorded SQL of `nodes` (models: build them; tests: judge them as dbt does) if every
        one has a confirmed recording for the current schema; False leaves the work to dbt."""
        recordings = self.recordings
        if recordings is None or not nodes or any(self.project.node(node).language != "sql" for node in nodes):
            return False
        started = time.perf_counter()
        with connection() as conn:
            if not recordings.covers(nodes, schema_of(conn, self.project.schemas)):
                return False
            try:
                if nodes[0].startswith("test."):
                    self._judge(result, recordings.check(conn, nodes))
                else:
                    result.cpu_seconds = recordings.replay(
                        conn,
                        nodes,
                        result.through_batch,
                        parents={node: set(self.project.depends[node]) for node in nodes},
                        threads=self.settings.run_replay_threads,
                    )
            except Exception as err:  # dbt runs it instead, and reports what it finds
                log.warning(
                    "replaying the recorded SQL of %s failed, going through dbt: %s",
                    ", ".join(node.split(".")[2] for node in nodes),
                    err,
                )
                return False
        result.selected, result.replayed = selected, True
        result.seconds = time.perf_counter() - started
        self._record(connection, result)
        return True

    def _judge(self, result: BuildResult, outcomes: dict[str, tuple[int, bool, bool]]) -> None:
        """Data tests' outcomes as dbt reads them: failing rows fail an `error` test, warn otherwise."""
        for test, (failures, should_warn, should_error) in outcomes.items():
            node = self.project.node(test)
            if should_error and str(node.config.severity).lower() == "error":
                result.failures.append(f"{node.name}: {failures} failing rows")
            elif should_warn or should_error:
                log.warning("data test %s: %s failing rows (severity warn)", node.name, failures)

    def _invoke(
        self, connection: Connection, result: BuildResult, command: str, selected: list[str], full_refresh: bool = False
    ) -> BuildResult:
        """dbt `command` on `selected`, reading raw up to `result.through_batch`; recorded in loader.builds."""
        if not selected:
            result.skipped = True
            return result
        result.selected = selected
        started = time.perf_counter()
        args = self.project.args(
            command,
            *FAST_FLAGS,
            "--vars",
            json.dumps({"mirador_through_batch": result.through_batch}),
            "--select",
            *selected,
        )
        if full_refresh:
            args.append("--full-refresh")
        recordings = self.recordings if not full_refresh else None
        if recordings is not None:
            with connection() as conn:
                schema = schema_of(conn, self.project.schemas)
            recordings.start()
        try:
            outcome = self._dbt.invoke(args)
        finally:
            recorded = recordings.stop() if recordings is not None else {}
            release_connection()
        result.seconds = time.perf_counter() - started
        if outcome.exception is not None:
            if self.recordings is not None:
                self.recordings.forget()
            raise StageFailed(
                command,
                None,
                {"build_id": result.build_id, "through_batch": str(result.through_batch)},
                outcome.exception,
            )
        for node in outcome.result or []:
            if str(node.status) in ("error", "fail"):
                result.failures.append(f"{node.node.name}: {node.message}")
        if recordings is not None and result.success:
            with connection() as conn:
                recordings.learn(recorded, result.through_batch, schema, schema_of(conn, self.project.schemas))
        elif recordings is not None:
            recordings.forget()
        self._record(connection, result)
        return result

    @staticmethod
    def _record(connection: Connection, result: BuildResult) -> None:
        """The build, in `loader.builds`: what the next one starts after."""
        with connection() as conn:
            ledger.record_build(
                conn,
                result.build_id,
                seconds=result.seconds,
                through_batch=result.through_batch,
                selected=result.selected,
                success=result.success,
                tested=result.tested,
            )


def _build_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
