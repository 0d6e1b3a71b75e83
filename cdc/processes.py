"""The stack's process helpers: the generic ones (mirador.processes) plus checks that raise StackError."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cdc.errors import StackError
from mirador.processes import alive, port_in_use, running_pid, spawn, stop, tail

__all__ = ["alive", "port_in_use", "require_free_port", "running_pid", "spawn", "stop", "tail", "wait_until"]


def require_free_port(host: str, port: int, what: str, setting: str) -> None:
    if port_in_use(host, port):
        raise StackError(
            f"port {host}:{port} for {what} is already in use by another process",
            f"stop that process, or choose another port with {setting}=<port>",
        )


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log: Path | None = None,
    pid: int | None = None,
    interval: float = 0.25,
) -> None:
    """Poll `ready` until it holds; fail early if the process died, with the log's last lines."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - any failure to probe means "not ready yet"
            pass
        if pid is not None and not alive(pid):
            raise StackError(f"{what} exited during start-up", log=_tail(log) if log else None)
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} was not healthy after {timeout:.0f}s",
                "see the log; raise MIRADOR_STARTUP_TIMEOUT on a slow machine",
                _tail(log) if log else None,
            )
        time.sleep(interval)


def _tail(log: Path) -> str:
    """The log's last lines; a JVM that died before logging anything said why in its `.out` beside it."""
    out = log.with_suffix(".out")
    return tail(out if not log.exists() and out.exists() else log)
