"""Recordings: the SQL an incremental dbt run executed for each model, replayed without dbt.

An incremental build of a model executes the same statements every cycle: the rendered model, the
delete+insert of its materialization, its hooks. Only the last batch the build reads changes, and
macros/raw_source.sql marks it. dbt spends most of a small build rendering and planning those
statements (about 50 ms of CPU a model, against a few ms of SQL), so `mirador run` records what dbt
executes for each model and, once two consecutive dbt runs of a model executed the same statements,
executes them itself for the next batches, in the same transactions, each model once its parents
are done, a few at once (as dbt's threads).

A recording holds only while what dbt rendered it from holds:
- the project: parsed once per process, and recordings live in the process's memory;
- the tables, views and columns of the project's schemas: dbt chooses statements from them (an empty
  stand-in for a raw table not landed yet, columns to add); any change forgets every recording;
- the rendering: a project whose SQL depends on the run, the clock or the data is refused before
  anything is recorded (warehouse/build/determinism.py); a model whose statements still differ between
  two runs is never replayed, and every `recheck` seconds dbt runs a replayed model again to see that
  its statements still agree.
Statements that only read the catalog (dbt's planning queries) are left out. A replay that fails is
rolled back and the cycle goes through dbt, which records anew; a node that failed `GIVE_UP` times
stays with dbt.

Data tests are recorded the same way: a test is one query counting its failing rows (dbt's wrapper
also says whether they reach the test's `warn_if` and `error_if`), which a replay runs and judges as
dbt does, by the test's severity.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress

import duckdb

log = logging.getLogger(__name__)

THROUGH = re.compile(r"<= (-?\d+) /\* mirador_through_batch \*/")
"""The last batch a build reads, as macros/raw_source.sql renders it."""
PLACEHOLDER = "<= {through} /* mirador_through_batch */"
BUILT = re.compile(r"cast\((-?\d+) /\* mirador_built_batch \*/ as bigint\)")
"""The same batch stamped on the marts' rows (`_built_batch`, macros/raw_source.sql)."""
BUILT_PLACEHOLDER = "cast({through} /* mirador_built_batch */ as bigint)"
TEMPORARY = re.compile(r"__dbt_tmp\d+")
"""dbt names a model's temporary relation after the time of the run."""
QUERY_COMMENT = re.compile(r"^\s*/\*.*?\*/\s*", re.S)
GIVE_UP = 3
"""Failed replays of a node after which it is left to dbt: one can be a conflict, three are the SQL."""
ABRIDGED = "..."
"""How a statement dbt was asked to abridge in its log ends (seeds' inserts): no SQL ends so."""

SCHEMA_SQL = """
select md5(coalesce(string_agg(
    concat_ws(' ', c.schema_name, c.table_name, coalesce(t.table_type, 'VIEW'), c.column_name, c.data_type),
    ',' order by c.schema_name, c.table_name, c.column_index), ''))
from duckdb_columns() as c
left join (select database_name, schema_name, table_name, 'BASE TABLE' as table_type from duckdb_tables()) as t
    using (database_name, schema_name, table_name)
where c.database_name = current_database() and list_contains(?, c.schema_name)
"""
"""The digest `information_schema` would give (the same strings), from DuckDB's own catalog functions,
which take half the time: it runs every cycle."""


def schema_of(conn: duckdb.DuckDBPyConnection, schemas: list[str]) -> str:
    """A digest of the tables, views and columns in `schemas` (the project's), which dbt plans from."""
    return conn.execute(SCHEMA_SQL, [schemas]).fetchall()[0][0]


class Recordings:
    """What dbt executed for each model, and which of those recordings are confirmed for replay."""

    def __init__(self, recheck: float) -> None:
        self.statements: dict[str, tuple[str, ...]] = {}
        self.confirmed: dict[str, float] = {}
        """Node -> when a dbt run last executed the same statements (`time.monotonic()`)."""
        self.recheck = recheck
        """Seconds a confirmation holds: SQL rendered from data or the date can change rarely, so dbt
        runs a node again this often and its recording must still agree."""
        self.failures: dict[str, int] = {}
        """Node -> replays that failed; from `GIVE_UP` on, the node is left to dbt for the process."""
        self.schema: str | None = None
        self._recording: dict[str, list[str]] | None = None
        self._lock = threading.Lock()

    def observe(self, event) -> None:
        """A dbt callback (`dbtRunner(callbacks=[...])`): keeps the SQL each model executes."""
        if self._recording is None or event.info.name != "SQLQuery":
            return
        node = event.data.node_info.unique_id
        if node.startswith(("model.", "test.")):
            with self._lock:
                self._recording.setdefault(node, []).append(event.data.sql)

    def start(self) -> None:
        self._recording = {}

    def stop(self) -> dict[str, list[str]]:
        recorded, self._recording = self._recording or {}, None
        return recorded

    def learn(self, recorded: dict[str, list[str]], through: int, before: str, after: str) -> None:
        """Take a successful incremental dbt run's statements, run with the schema `before` -> `after`."""
        if before != after or before != self.schema:
            self.forget()
            self.schema = after
            if before != after:  # the run changed the schema: its statements will not be the next ones
                return
        for node, statements in recorded.items():
            recording = _test_query(statements) if node.startswith("test.") else _normalised(statements, through)
            if recording is not None and self.statements.get(node) == recording:
                self.confirmed[node] = time.monotonic()
            elif recording is not None:
                self.statements[node] = recording
                self.confirmed.pop(node, None)
            else:
                self.statements.pop(node, None)
                self.confirmed.pop(node, None)

    def covers(self, nodes: list[str], schema: str) -> bool:
        now = time.monotonic()
        return schema == self.schema and all(
            now - self.confirmed.get(node, -self.recheck) < self.recheck and self.failures.get(node, 0) < GIVE_UP
            for node in nodes
        )

    def forget(self) -> None:
        self.statements.clear()
        self.confirmed.clear()

    def _failed(self, node: str) -> None:
        self.failures[node] = self.failures.get(node, 0) + 1
        self.forget()

    def replay(
        self,
        conn: duckdb.DuckDBPyConnection,
        models: list[str],
        through: int,
        parents: dict[str, set[str]] | None = None,
        threads: int = 1,
    ) -> float:
        """Execute the models' statements reading raw up to batch `through`, each once its `parents` (among
        `models`) are done, up to `threads` at once; on error, roll the failing one back, let those
        running finish, forget every recording and raise (models done stay built, as with dbt).

        Returns the CPU seconds the replaying threads spent (with one DuckDB thread, all of the work)."""
        parents = parents or {}
        waiting = {model: set(parents.get(model, ())) & set(models) for model in models}
        done: set[str] = set()
        cpu = 0.0
        failure: tuple[str, BaseException] | None = None
        with ThreadPoolExecutor(max(1, threads), thread_name_prefix="replay") as pool:
            running: dict[Future, str] = {}
            while failure is None and waiting or running:
                for model in [m for m, ups in waiting.items() if ups <= done] if failure is None else []:
                    del waiting[model]
                    # a connection per model, as dbt: its temporary tables go with it
                    running[pool.submit(self._execute, conn.cursor(), model, through)] = model
                if not running:
                    raise RuntimeError(f"cannot replay {sorted(waiting)}: their parents were not replayed")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    model = running.pop(future)
                    if (error := future.exception()) is None:
                        done.add(model)
                        cpu += future.result()
                    elif failure is None:
                        failure = (model, error)
        if failure is not None:
            self._failed(failure[0])
            raise failure[1]
        return cpu

    def _execute(self, cursor: duckdb.DuckDBPyConnection, model: str, through: int) -> float:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            for statement in self.statements[model]:
                cursor.execute(
                    statement.replace(PLACEHOLDER, PLACEHOLDER.format(through=through)).replace(
                        BUILT_PLACEHOLDER, BUILT_PLACEHOLDER.format(through=through)
                    )
                )
        except BaseException:
            with suppress(duckdb.Error):
                cursor.execute("rollback")
            raise
        finally:
            cursor.close()
        cpu = time.thread_time() - cpu
        log.debug("replayed %s in %.3fs (%.3fs on CPU)", model.split(".")[-1], time.perf_counter() - started, cpu)
        return cpu

    def check(self, conn: duckdb.DuckDBPyConnection, tests: list[str]) -> dict[str, tuple[int, bool, bool]]:
        """Run the tests' queries: per test, its failing rows and whether they warn and whether they fail."""
        outcomes, cursor = {}, conn.cursor()
        try:
            for test in tests:
                failures, should_warn, should_error = cursor.execute(self.statements[test][0]).fetchall()[0]
                outcomes[test] = (failures, bool(should_warn), bool(should_error))
        except BaseException:
            self._failed(test)
            raise
        finally:
            cursor.close()
        return outcomes


def _test_query(statements: list[str]) -> tuple[str] | None:
    """A data test's query, counting failing rows (dbt's `get_test_sql`); None for a test that does more
    (stores its failures, say) or whose query cannot be told apart."""
    queries = []
    for sql in statements:
        body = QUERY_COMMENT.sub("", sql, count=1).strip()
        keyword = body.split(None, 1)[0].lower() if body else ""
        if keyword in ("begin", "commit", "rollback"):
            continue
        if keyword != "select" or sql.endswith(ABRIDGED):
            return None
        if " as failures," in body and " as should_warn," in body and " as should_error" in body:
            queries.append(body)
    return tuple(queries) if len(queries) == 1 else None


def _normalised(statements: list[str], through: int) -> tuple[str, ...] | None:
    """The statements that change data, with the batch bound and temporary names made generic;
    None when they cannot be replayed (an abridged statement, or a batch bound other than the run's)."""
    recording = []
    for sql in statements:
        if sql.endswith(ABRIDGED):
            return None
        body = QUERY_COMMENT.sub("", sql, count=1).strip()
        if body.lower().startswith(("select", "describe")):
            continue  # dbt reading the catalog to plan: no effect to replay
        if any(int(bound) != through for bound in THROUGH.findall(body) + BUILT.findall(body)):
            return None
        body = BUILT.sub(lambda _: BUILT_PLACEHOLDER, THROUGH.sub(lambda _: PLACEHOLDER, body))
        recording.append(TEMPORARY.sub("__mirador_tmp", body))
    # Where dbt opens the transaction depends on its relation cache (before or after creating the
    # temporary table): put it just before the first statement that changes a real table.
    if (
        recording.count("BEGIN") != 1
        or recording.count("COMMIT") != 1
        or recording.index("BEGIN") > recording.index("COMMIT")
    ):
        return None  # not the one transaction of dbt's materialization: a replay could leave it open
    recording.remove("BEGIN")
    first = next(i for i, body in enumerate(recording) if not body.lower().startswith("create temporary table"))
    recording.insert(first, "BEGIN")
    return tuple(recording)
