"""The one place that reaches into dbt-duckdb's internals (pinned below its next major version).

dbt-duckdb keeps one DuckDB environment for the process, in `DuckDBConnectionManager._ENV` guarded by
`_LOCK`; nothing public closes it between invocations.
"""

from __future__ import annotations


def release_connection() -> None:
    """Close the DuckDB connection dbt-duckdb keeps for the process, so the file is free again."""
    # Imported here, as dbt itself is (builder, project): importing the pipeline stays quick, and
    # `mirador run` takes its pipeline lock before it spends a second or two loading dbt.
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
