"""An advisory lock on the working DuckDB file, shared by every process that writes it.

DuckDB lets one process write a file at a time. The loader, the build step and an analyst's
`dbt build` take turns through `flock` on `<file>.lock`: each holds it only while it writes, and a
process that finds it taken logs who holds it and waits rather than failing. The holder writes a
line about itself into the lock file so the waiting one can say what it waits for, and a waiting
process leaves a note in `<file>.lock.waiting/` so that a long-running holder (`mirador run`) can see
that someone waits and hand the file over between its cycles.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from warehouse.exceptions import TransientError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
REMIND_SECONDS = 30.0


held_by_this_process: dict[Path, dict] = {}
"""Warehouse files whose lock this process already holds, with the DuckDB configuration it opened
them with (`warehouse.runtime.session` registers its own; the dbt plugin `warehouse.runtime.dbt_lock`
reads it)."""


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def waiting_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock.waiting")


def others_waiting(database: Path) -> list[str]:
    """Who, in other live processes, waits for the file now (stale notes of dead processes are removed)."""
    directory = waiting_path(database)
    try:
        notes = list(directory.iterdir())
    except FileNotFoundError:
        return []
    waiting = []
    for note in notes:
        pid = note.name.split("-")[0]
        if not pid.isdigit() or int(pid) in (0, os.getpid()):
            continue  # not a waiter's note, or this process's own (its users share its hold)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            note.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass  # alive, another user's
        try:
            waiting.append(f"{note.read_text().strip() or 'a process'} (pid {pid})")
        except FileNotFoundError:
            continue  # it got the file meanwhile
    return waiting


class WarehouseLock:
    """`with WarehouseLock(path, "mirador load"):` holds the file for the block; re-entrant it is not."""

    def __init__(self, database: Path, holder: str, timeout: float = 900.0) -> None:
        self.path = lock_path(database)
        self.holder, self.timeout = holder, timeout
        self._fd: int | None = None
        self._note = waiting_path(database) / f"{os.getpid()}-{id(self):x}"
        self.waited = 0.0

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        reminded = 0.0
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if waited >= self.timeout:
                        os.close(fd)
                        raise TransientError(
                            f"{self.path} is still held by {describe_holder(self.path)} after {waited:.0f}s; "
                            "fix: run again once it lets go, or wait longer with MIRADOR_LOADER_LOCK_TIMEOUT"
                        ) from None
                    if waited - reminded >= REMIND_SECONDS or reminded == 0.0:
                        log.info("waiting for %s to release %s ...", describe_holder(self.path), self.path.name)
                        self._note.parent.mkdir(exist_ok=True)
                        self._note.write_text(self.holder)
                        reminded = max(waited, 1e-9)
                    time.sleep(POLL_SECONDS)
        finally:
            self._note.unlink(missing_ok=True)
        self.waited = time.monotonic() - started
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps(
                {"holder": self.holder, "pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
            ).encode(),
            0,
        )
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> WarehouseLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def describe_holder(path: Path) -> str:
    """`mirador load (pid 123, since ...)`, or a plain description when the holder left no note."""
    try:
        note = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        note = {}
    if not note:
        return "another process"
    return f"{note.get('holder', 'another process')} (pid {note.get('pid', '?')}, since {note.get('since', '?')})"
