"""`mirador serve`: the read API. One process keeps the serving copy at the current publication; N
worker processes answer GET requests from it.

Exit codes: 0 stopped by SIGINT/SIGTERM; 1 a setting is invalid; 2 usage error."""

from __future__ import annotations

import logging
import sys
import threading

import click
from pydantic import ValidationError

from mirador import processes as process

log = logging.getLogger(__name__)
MARKER = "mirador.cli"


def _detach(settings, pidfile, log_file) -> None:
    import time

    import httpx

    if pid := process.running_pid(pidfile, MARKER):
        click.echo(f"the read API is already running (PID {pid}) at {settings.base_url}")
        return
    if process.port_in_use(settings.host, settings.port):
        click.secho(
            f"error: port {settings.host}:{settings.port} is in use\n  fix: stop what uses it, or choose "
            "another with --port or MIRADOR_API_PORT",
            fg="red",
            err=True,
        )
        sys.exit(1)
    argv = [
        sys.executable,
        "-m",
        "mirador.cli",
        "serve",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
    ]
    pid = process.spawn(argv, pidfile, log_file)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{settings.base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if not process.alive(pid) or time.monotonic() > deadline:
            click.secho(
                f"error: the read API did not start; last lines of {log_file}:\n{process.tail(log_file)}",
                fg="red",
                err=True,
            )
            process.stop(pidfile, MARKER, timeout=5)
            sys.exit(1)
        time.sleep(0.1)
    click.echo(f"read API at {settings.base_url} (PID {pid}): page {settings.base_url}/, docs {settings.base_url}/docs")


@click.command()
@click.option("--host", help="Address to listen on (MIRADOR_API_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (MIRADOR_API_PORT, default 8100).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (MIRADOR_API_WORKERS, default 2).")
@click.option("--detach", is_flag=True, help="Run in the background (PID in <home>/run/api.pid) once it answers.")
@click.option("--stop", is_flag=True, help="Stop the API that --detach started.")
def serve(host: str | None, port: int | None, workers: int | None, detach: bool, stop: bool) -> None:
    """Serve the published view tables over GET (and the page at /, the docs at /docs)."""
    import os

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from api.configuration import ApiSettings
    from api.store import Refresher

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    try:
        settings = ApiSettings(**overrides)
    except ValidationError as err:
        click.secho(f"error: invalid configuration: {err}", fg="red", err=True)
        sys.exit(1)
    pidfile, log_file = settings.home / "run" / "api.pid", settings.home / "logs" / "api.log"
    if stop:
        stopped = process.stop(pidfile, MARKER, timeout=15)
        click.echo("stopped the read API" if stopped else "the read API was not running")
        return
    if detach:
        _detach(settings, pidfile, log_file)
        return
    for name, value in {"MIRADOR_API_HOST": settings.host, "MIRADOR_API_PORT": str(settings.port)}.items():
        os.environ[name] = value  # before the workers start: they read the same settings
    refresher = Refresher(settings.published, settings.serving, keep=settings.changes_keep)
    stop = threading.Event()
    thread = threading.Thread(target=refresher.run, args=(stop, settings.poll_seconds), name="refresher", daemon=True)
    thread.start()
    config = uvicorn.Config(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    click.echo(
        f"serving {settings.published} at {settings.base_url} with {settings.workers} workers "
        f"(page {settings.base_url}/, docs {settings.base_url}/docs)"
    )
    try:
        sock = config.bind_socket()
    except OSError as err:
        click.secho(
            f"error: cannot listen on {settings.host}:{settings.port}: {err.strerror}\n"
            "  fix: stop what uses it, or choose another port with --port or MIRADOR_API_PORT",
            fg="red",
            err=True,
        )
        sys.exit(1)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        stop.set()
        thread.join(timeout=5)
