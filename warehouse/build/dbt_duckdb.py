"""The one place that reaches into dbt-duckdb's internals (pinned below its next major version).

dbt-duckdb keeps one DuckDB environment for the process, in `DuckDBConnectionManager._ENV` guarded by
`_LOCK`; nothing public closes it between invocations.
"""

from __future__ import annotations

from dbt.adapters.duckdb.connections import DuckDBConnectionManager


def release_connection() -> None:
    """Close the DuckDB connection dbt-duckdb keeps for the process, so the file is free again."""
    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
