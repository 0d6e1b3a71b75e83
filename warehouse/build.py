"""Build: run the dbt project in-process over the working DuckDB file, for what changed since last time.

dbt is invoked through `dbtRunner` with a manifest parsed once and reused (a fraction of a second a
build, against seconds for the dbt CLI). The models rebuilt are those downstream of the raw tables
that received batches since the last successful build, which the build records in
`loader.builds` along with the last batch it included. A build runs the models and their data tests
(`dbt build`; selecting what changed since the last tested build), or only the models (`dbt run`),
which `mirador run` follows with `dbt test` every `MIRADOR_RUN_TEST_INTERVAL` seconds. A builder that
lives across builds (`mirador run`) records the SQL dbt executes for each model and, once two runs
agree, executes it itself for the next runs of the models (warehouse/plan.py).

The loader may land more batches while dbt runs (inside `mirador run` they share the file). A build
reads the last batch and the watermark in one snapshot before dbt starts, and the models read the
raw tables only up to that batch (var `mirador_through_batch`, macros/raw_source.sql): every model of
a build sees the same batches, and the publication's watermark is exactly what it includes.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from graphlib import TopologicalSorter

import duckdb

from warehouse import ledger
from warehouse.configuration import PipelineSettings
from warehouse.exceptions import StageFailed, TerminalError
from warehouse.plan import Plans, schema_of

log = logging.getLogger(__name__)

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
    """The models' recorded SQL was executed without dbt (warehouse/plan.py)."""
    cpu_seconds: float | None = None
    """A replay's CPU time. With one DuckDB thread (`mirador run`'s default) the statements run in the
    replaying threads, so wall time beyond this was spent waiting for a core."""
    watermark: dict[str, dict] = field(default_factory=dict)
    """Per service, the source position every change up to which this build includes."""

    @property
    def success(self) -> bool:
        return not self.failures


class Builder:
    """Keeps a parsed dbt manifest and builds the models a set of new batches affects."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self.project_dir = settings.dbt_project_dir
        self._runner = None
        self._ready = False
        self.plans = Plans(settings.run_replay_recheck)

    @contextmanager
    def _profile_env(self):
        """The profile reads the warehouse path from the environment: set it for dbt's call only."""
        saved = os.environ.get("MIRADOR_WAREHOUSE_PATH")
        # Resolved as the session opens it: DuckDB shares an instance between connections to one path.
        os.environ["MIRADOR_WAREHOUSE_PATH"] = str(self.settings.warehouse.resolve())
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("MIRADOR_WAREHOUSE_PATH", None)
            else:
                os.environ["MIRADOR_WAREHOUSE_PATH"] = saved

    def _args(self, *args: str) -> list[str]:
        return [*args, "--project-dir", str(self.project_dir), "--profiles-dir", str(self.project_dir),
                "--log-level", "warn", "--log-level-file", "info",
                "--log-path", str(self.settings.home / "logs" / "dbt"),
                "--target-path", str(self.settings.home / "dbt-target")]

    def runner(self):
        """A dbtRunner holding a manifest parsed once for this process."""
        if self._runner is None:
            from dbt.cli.main import dbtRunner

            started = time.perf_counter()
            with self._profile_env():
                parsed = dbtRunner().invoke(self._args("parse"))
            if not parsed.success:
                raise TerminalError(f"dbt could not parse {self.project_dir}: {parsed.exception}")
            self.manifest = parsed.result
            nodes = self.manifest.nodes
            # Per model, what it reads (models and sources): the graph replays select from.
            self._depends = {uid: node.depends_on.nodes for uid, node in nodes.items()
                             if node.resource_type == "model"}
            self._schemas = sorted({nodes[uid].schema for uid in self._depends}
                                   | {source.schema for source in self.manifest.sources.values()})
            metas = {node.name: node.config.meta or node.meta or {} for node in nodes.values()
                     if node.resource_type == "model"}
            self._exposed = {name: list(meta.get("primary_key") or [])
                             for name, meta in sorted(metas.items()) if meta.get("expose")}
            self._catalog = {node.name: {"description": node.description or "", "meta": metas[node.name],
                                         "columns": {name: column.description or ""
                                                     for name, column in node.columns.items()}}
                             for node in nodes.values()
                             if node.resource_type == "model" and node.name in self._exposed}
            self._runner = dbtRunner(manifest=self.manifest, callbacks=[self.plans.observe])
            log.info("parsed the dbt project in %.2fs", time.perf_counter() - started)
        return self._runner

    def exposed_models(self) -> dict[str, list[str]]:
        """The marts marked `meta.expose` in their YAML, what gets published: name -> `meta.primary_key`."""
        self.runner()
        return self._exposed

    def catalog(self) -> dict[str, dict]:
        """What readers are told of each exposed mart: its description, `meta` and column descriptions."""
        self.runner()
        return self._catalog

    def sources_of(self, raw_tables: set[str]) -> list[str]:
        """dbt selectors `source:<name>.<table>+` for the raw tables that changed."""
        self.runner()
        selectors = []
        for source in self.manifest.sources.values():
            if source.identifier in raw_tables:
                selectors.append(f"source:{source.source_name}.{source.name}+")
        return sorted(selectors)

    def models_of(self, raw_tables: set[str]) -> list[str]:
        """The models downstream of the raw tables that changed, parents first."""
        self.runner()
        sources = self.manifest.sources
        selected = {uid for uid, ups in self._depends.items()
                    if any(p in sources and sources[p].identifier in raw_tables for p in ups)}
        while grown := {uid for uid, ups in self._depends.items()
                        if uid not in selected and selected.intersection(ups)}:
            selected |= grown
        return list(TopologicalSorter({uid: [p for p in self._depends[uid] if p in selected]
                                       for uid in sorted(selected)}).static_order())

    def build(self, connection, *, full_refresh: bool = False, tests: bool = True) -> BuildResult:
        """Build what changed since the last successful build (everything on the first one).

        `connection()` gives a connection to the working file, which the caller holds. With `tests`,
        data tests run too and the selection covers what changed since the last tested build.
        """
        with connection() as conn:
            if not self._ready:  # a build before any load sees an empty ledger, not an error
                ledger.create(conn)
                self._ready = True
            conn.execute("begin transaction")  # one snapshot: the batches and the watermark agree
            last = ledger.last_built_batch(conn, tested=tests)
            first = ledger.never_built(conn)
            through, changed = ledger.batches_after(conn, last)
            watermark = ledger.read_watermark(conn)
            conn.execute("commit")
        result = BuildResult(_build_id(), through, tested=tests or first or full_refresh, watermark=watermark)
        selected = ["fqn:*"] if first or full_refresh else self.sources_of(changed)
        if not result.tested and self.settings.run_replay and self._replay(
                connection, result, self.models_of(changed), selected):
            return result
        return self._invoke(connection, result, "build" if result.tested else "run", selected, full_refresh)

    def _replay(self, connection, result: BuildResult, nodes: list[str], selected: list[str]) -> bool:
        """Execute the recorded SQL of `nodes` (models: build them; tests: judge them as dbt does) if every
        one has a confirmed recording for the current schema; False leaves the work to dbt."""
        if not nodes or any(self.manifest.nodes[node].language != "sql" for node in nodes):
            return False
        started = time.perf_counter()
        with connection() as conn:
            if not self.plans.covers(nodes, schema_of(conn, self.schemas())):
                return False
            try:
                if nodes[0].startswith("test."):
                    self._judge(result, self.plans.check(conn, nodes))
                else:
                    result.cpu_seconds = self.plans.replay(
                        conn, nodes, result.through_batch, parents={node: set(self._depends[node]) for node in nodes},
                        threads=self.settings.run_replay_threads)
            except Exception as err:  # noqa: BLE001 - dbt runs it instead, and reports what it finds
                log.warning("replaying the recorded SQL of %s failed, going through dbt: %s",
                            ", ".join(node.split(".")[2] for node in nodes), err)
                return False
        result.selected, result.replayed = selected, True
        result.seconds = time.perf_counter() - started
        self._record(connection, result)
        return True

    def _judge(self, result: BuildResult, outcomes: dict[str, tuple[int, bool, bool]]) -> None:
        """Data tests' outcomes as dbt reads them: failing rows fail an `error` test, warn otherwise."""
        for test, (failures, should_warn, should_error) in outcomes.items():
            node = self.manifest.nodes[test]
            if should_error and str(node.config.severity).lower() == "error":
                result.failures.append(f"{node.name}: {failures} failing rows")
            elif should_warn or should_error:
                log.warning("data test %s: %s failing rows (severity warn)", node.name, failures)

    def test(self, connection) -> BuildResult:
        """Run the data tests of what was built since the last tested build (`mirador run` does, every
        `run_test_interval` seconds, after publishing): `tested_through_batch` moves on if they pass."""
        with connection() as conn:
            conn.execute("begin transaction")
            last = ledger.last_built_batch(conn, tested=True)
            built = ledger.last_built_batch(conn, tested=False)
            _, changed = ledger.batches_after(conn, last, built)
            conn.execute("commit")
        result, selected = BuildResult(_build_id(), built, tested=True), self.sources_of(changed)
        if self.settings.run_replay and self._replay(connection, result, self.tests_of(changed), selected):
            return result
        return self._invoke(connection, result, "test", selected)

    def schemas(self) -> list[str]:
        """The schemas of the project's sources and models: what dbt plans a build from."""
        self.runner()
        return self._schemas

    def tests_of(self, raw_tables: set[str]) -> list[str]:
        """The data tests `dbt test --select source:<table>+` runs: those on anything downstream. (dbt
        also runs the models' unit tests, which depend only on the project's code and column types.)"""
        models = set(self.models_of(raw_tables))
        sources = {uid for uid, source in self.manifest.sources.items() if source.identifier in raw_tables}
        return sorted(uid for uid, node in self.manifest.nodes.items()
                      if node.resource_type == "test" and (models | sources).intersection(node.depends_on.nodes))

    def _invoke(self, connection, result: BuildResult, command: str, selected: list[str],
                full_refresh: bool = False) -> BuildResult:
        """dbt `command` on `selected`, reading raw up to `result.through_batch`; recorded in loader.builds."""
        if not selected:
            result.skipped = True
            return result
        result.selected = selected
        started = time.perf_counter()
        args = self._args(command, *FAST_FLAGS, "--vars", json.dumps({"mirador_through_batch": result.through_batch}),
                          "--select", *selected)
        if full_refresh:
            args.append("--full-refresh")
        runner = self.runner()
        learning = not full_refresh
        if learning:
            with connection() as conn:
                schema = schema_of(conn, self.schemas())
            self.plans.start()
        try:
            with self._profile_env():
                outcome = runner.invoke(args)
        finally:
            recorded = self.plans.stop()
            release_dbt_connection()
        result.seconds = time.perf_counter() - started
        if outcome.exception is not None:
            self.plans.forget()
            raise StageFailed(command, None, {"build_id": result.build_id, "through_batch": str(result.through_batch)},
                              outcome.exception)
        for node in outcome.result or []:
            if str(node.status) in ("error", "fail"):
                result.failures.append(f"{node.node.name}: {node.message}")
        if learning and result.success:
            with connection() as conn:
                self.plans.learn(recorded, result.through_batch, schema, schema_of(conn, self.schemas()))
        elif learning:
            self.plans.forget()
        self._record(connection, result)
        return result

    @staticmethod
    def _record(connection, result: BuildResult) -> None:
        """The build, in `loader.builds`: what the next one starts after."""
        with connection() as conn:
            ledger.record_build(conn, result.build_id, seconds=result.seconds, through_batch=result.through_batch,
                                selected=result.selected, success=result.success, tested=result.tested)


def _build_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def release_dbt_connection() -> None:
    """dbt-duckdb keeps its DuckDB connection for the process; close it so the file is free again."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
