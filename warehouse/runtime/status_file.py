"""The pipeline's status file, `<home>/run/pipeline.json`: what its last load, build, publication and
data tests did, its dead letters by topic and the raw columns the loader could not map.

`mirador status` reads it while `mirador run` holds the working file, so it never waits for the
warehouse lock. `mirador run` rewrites it after each cycle, `mirador build` after its build and
`mirador load` after its run; each writes its own sections and keeps the others'. It is replaced
atomically (a temporary file, then `os.replace`), so a reader sees the old file or the new one. Not
fsynced: after a crash an older status is no harm, the next cycle writes it again.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse import ledger
from warehouse.configuration import WarehouseSettings

if TYPE_CHECKING:
    import duckdb

    from warehouse.build.builder import BuildResult
    from warehouse.ingest.load import LoadReport
    from warehouse.publish import Publication

NAME = "pipeline.json"


def location(settings: WarehouseSettings) -> Path:
    return settings.home / "run" / NAME


def read(path: Path) -> dict | None:
    """The status last written, or None if there is none (or it cannot be read as JSON)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def record(path: Path, command: str, **sections: dict | None) -> None:
    """Replace the given sections (None: leave it as it is), keep the others, stamp who wrote it."""
    status = read(path) or {}
    status.update({name: section for name, section in sections.items() if section is not None})
    status.update(written_at=now(), written_by={"command": command, "pid": os.getpid()})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{NAME}.{os.getpid()}")
    temporary.write_text(json.dumps(status, indent=1, default=str))
    os.replace(temporary, path)


def load_section(report: LoadReport) -> dict | None:
    """The last batch the loader landed: when, its id, how long its landing took."""
    if report.last is None:
        return None
    return {
        "at": report.last_at,
        "batch": report.last.batch_id,
        "seconds": round(report.last.seconds, 4),
        "events": report.last.events,
        "dead_letters": report.last.dead_letters,
        "lag_messages": report.lag,
    }


def build_section(result: BuildResult, seconds: float) -> dict:
    return {
        "at": now(),
        "build_id": result.build_id,
        "through_batch": result.through_batch,
        "seconds": round(seconds, 4),
        "success": result.success,
        "failures": result.failures,
        "tested": result.tested,
        "replayed": result.replayed,
    }


def publish_section(publication: Publication, seconds: float) -> dict:
    return {
        "at": publication.published_at,
        "build_id": publication.build_id,
        "file": publication.file,
        "through_batch": publication.through_batch,
        "seconds": round(seconds, 4),
    }


def tests_section(result: BuildResult) -> dict:
    """Data tests that ran (with a build or on their own): through which batch, and what failed."""
    return {
        "at": now(),
        "build_id": result.build_id,
        "through_batch": result.through_batch,
        "success": result.success,
        "failures": result.failures,
        "seconds": round(result.seconds, 4),
    }


def dead_letters(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Dead letters in the working file, by topic."""
    rows = conn.execute("select topic, count(*) from loader.dead_letters group by topic order by topic").fetchall()
    return dict(rows)


def unmapped_columns(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Raw columns of a type the loader does not map (they hold JSON text): `table.column` -> its type."""
    return {
        f"{table}.{column}": f"{connect_type} (since batch {batch})"
        for table, column, connect_type, batch in ledger.unmapped_columns(conn)
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
