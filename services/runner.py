"""`mirador services up | down | status`: each service as a uvicorn process, tracked by PID file."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirador import processes as process
from mirador.home import default_home
from services.common import db
from services.common.config import ServiceSettings
from services.customers.config import CustomersSettings
from services.inventory.config import InventorySettings
from services.invoices.config import InvoicesSettings
from services.orders.config import OrdersSettings

SETTINGS: dict[str, type[ServiceSettings]] = {
    "customers": CustomersSettings,
    "orders": OrdersSettings,
    "invoices": InvoicesSettings,
    "inventory": InventorySettings,
}
"""Every write service, in start order."""


class ServiceError(RuntimeError):
    """A service could not be started; the message says why and what to do."""


@dataclass(frozen=True)
class Running:
    name: str
    pid: int | None
    url: str
    ready: bool
    workers: int


def settings_of(name: str) -> ServiceSettings:
    return SETTINGS[name]()


def _app(name: str) -> str:
    return f"services.{name}.main:create_app"


def _files(name: str, home: Path) -> tuple[Path, Path]:
    return home / "run" / f"service-{name}.pid", home / "logs" / f"service-{name}.log"


def ready(settings: ServiceSettings) -> bool:
    try:
        return httpx.get(f"{settings.base_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def up(
    names: list[str], *, workers: int | None = None, home: Path | None = None, timeout: float = 60.0
) -> list[Running]:
    """Start each named service that is not running, all at once, and wait until each answers /readyz."""
    home = home or default_home()
    running, starting = [], []
    for name in names:
        settings = settings_of(name)
        n_workers = workers or settings.workers
        pidfile, log = _files(name, home)
        if pid := process.running_pid(pidfile, _app(name)):
            running.append(Running(name, pid, settings.base_url, ready(settings), n_workers))
            continue
        if process.port_in_use(settings.host, settings.port):
            raise ServiceError(
                f"port {settings.host}:{settings.port} for the {name} service is already in use by another "
                f"process\n  fix: stop it, or choose another port with MIRADOR_{name.upper()}_PORT=<port>"
            )
        try:
            db.probe(settings)
        except db.DatabaseUnreachable as err:
            raise ServiceError(str(err)) from None
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            _app(name),
            "--host",
            settings.host,
            "--port",
            str(settings.port),
            "--workers",
            str(n_workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
            # Nothing reads the client's address or wants a Server header: two less steps per request.
            "--no-proxy-headers",
            "--no-server-header",
        ]
        pid = process.spawn(argv, pidfile, log, env={f"MIRADOR_{name.upper()}_PORT": str(settings.port)})
        starting.append((Running(name, pid, settings.base_url, True, n_workers), settings, log))
    try:
        for started, settings, log in starting:
            _wait_ready(started.name, settings, started.pid, log, timeout)
    except ServiceError:
        down([started.name for started, _, _ in starting], home=home)
        raise
    return running + [started for started, _, _ in starting]


def _wait_ready(name: str, settings: ServiceSettings, pid: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready(settings):
        if not process.alive(pid):
            raise ServiceError(
                f"the {name} service exited during start-up\n  last lines of {log}:\n" + process.tail(log)
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"the {name} service did not answer {settings.base_url}/readyz within "
                f"{timeout:.0f}s\n  last lines of {log}:\n" + process.tail(log)
            )
        time.sleep(0.1)


def down(names: list[str], *, home: Path | None = None) -> list[str]:
    """Stop the named services this state dir started, by PID."""
    home = home or default_home()
    return [name for name in reversed(names) if process.stop(_files(name, home)[0], _app(name), timeout=15)]


def status(names: list[str], *, home: Path | None = None) -> list[Running]:
    home = home or default_home()
    report = []
    for name in names:
        settings = settings_of(name)
        pid = process.running_pid(_files(name, home)[0], _app(name))
        report.append(Running(name, pid, settings.base_url, pid is not None and ready(settings), settings.workers))
    return report
