"""The publication directory: the pointer readers follow (`current.json`), its switch, and pruning.

Readers (the read API's workers, an analyst's notebook) never open the working DuckDB file, which one
writer at a time holds. They read `current.json`, which names the current publication file and
carries the watermark: per service, the newest source LSN and commit time included, plus the build id
and time. It is replaced atomically (write a temporary file, fsync, `os.replace`), so a reader sees the
old publication or the new one, never a half-built one. A reader that opened an older file keeps
reading it, even after it is removed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

POINTER = "current.json"


@dataclass
class Publication:
    build_id: str
    file: str
    built_at: str
    published_at: str
    through_batch: int
    tables: list[str]
    watermark: dict[str, dict]
    tested_through_batch: int | None = None
    """Data tests passed on every batch up to this one (`mirador run` tests every few seconds)."""
    increments: int = 0
    """Publications written into this file since the marts were last copied whole, each adding what changed."""

    def path(self, directory: Path) -> Path:
        return directory / self.file


def refresh_watermark(directory: Path, watermark: dict[str, dict]) -> Publication | None:
    """Nothing to rebuild, but the sources moved on (heartbeats): re-point with a newer watermark."""
    current = current_publication(directory)
    if current is None:
        return None
    if watermark == current.watermark:
        return current
    current.watermark, current.published_at = watermark, now()
    switch(directory, current)
    return current


def switch(directory: Path, publication: Publication) -> None:
    """Atomically make `publication` the current one."""
    temporary = directory / f".{POINTER}.{os.getpid()}"
    with temporary.open("w") as out:
        json.dump(asdict(publication), out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, directory / POINTER)
    fsync_directory(directory)


def current_publication(directory: Path) -> Publication | None:
    try:
        return Publication(**json.loads((directory / POINTER).read_text()))
    except FileNotFoundError:
        return None


def prune(directory: Path, keep: int) -> None:
    """Remove all but the newest `keep` older publications; open readers keep their file (unlinked)."""
    for old in older_files(directory, current_publication(directory))[keep:]:
        old.unlink(missing_ok=True)
        Path(f"{old}.wal").unlink(missing_ok=True)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def older_files(directory: Path, current: Publication | None) -> list[Path]:
    """The publication files kept besides the current one, newest first."""
    return sorted(
        (p for p in directory.glob("*.duckdb") if current is None or p.name != current.file),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
