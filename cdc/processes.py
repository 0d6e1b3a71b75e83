"""Starting, finding and stopping the stack's own processes, by PID file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cdc.errors import StackError


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, indented, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "    (no log)"
    return "\n".join(f"    {line}" for line in text)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def require_free_port(host: str, port: int, what: str, setting: str) -> None:
    if port_in_use(host, port):
        raise StackError(
            f"port {host}:{port} for {what} is already in use by another process",
            f"stop that process, or choose another port with {setting}=<port>",
        )


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def running_pid(pidfile: Path, marker: str) -> int | None:
    """The PID in `pidfile` if that process is alive and its command line carries `marker`.

    The marker guards against a recycled PID: we never signal a process we did not start.
    """
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if marker.encode() in _cmdline(pid) else None


def spawn(argv: Sequence[str], pidfile: Path, log: Path, env: dict[str, str] | None = None) -> int:
    """Start a daemon in its own session, output appended to `log`, and record its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


def stop(pidfile: Path, marker: str, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process group, SIGKILL it after `timeout`; True if something was stopped."""
    pid = running_pid(pidfile, marker)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while alive(pid):
            _reap(pid)
            time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


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
            raise StackError(f"{what} exited during start-up", log=tail(log) if log else None)
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} was not healthy after {timeout:.0f}s",
                "see the log; raise MIRADOR_STARTUP_TIMEOUT on a slow machine",
                tail(log) if log else None,
            )
        time.sleep(interval)
