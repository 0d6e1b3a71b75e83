"""The servers compared, each serving the same rows on 127.0.0.1: mirador (`mirador serve`, following
the publications), ROAPI (a static Parquet copy) and Datasette (a static SQLite copy). Each runs in its
own session, so stopping it stops its workers too; per scenario, the URL path it answers, with `{}`
where the load puts a random order id or customer id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TABLE = "orders_with_invoices"
SCENARIOS = {"key": "key lookup", "customer": "customer page", "first": "first page"}

MIRADOR = {
    "key": f"/views/{TABLE}/{{}}",
    "customer": f"/views/{TABLE}?customer_id={{}}&limit=50",
    "first": f"/views/{TABLE}?limit=50",
}
ROAPI = {
    "key": f"/api/tables/{TABLE}?filter%5Border_id%5D=%27{{}}%27",
    "customer": f"/api/tables/{TABLE}?filter%5Bcustomer_id%5D=%27{{}}%27&sort=-placed_at,order_id&limit=50",
    "first": f"/api/tables/{TABLE}?sort=-placed_at,order_id&limit=50",
}
# Datasette orders by the sort column, then the primary key; counts and facets off, as mirador has them.
_DATASETTE_PAGE = "_sort_desc=placed_at&_size=50&_shape=objects&_nocount=1&_nofacet=1&_nosuggest=1"
DATASETTE = {
    "key": f"/peers/{TABLE}/{{}}.json?_shape=objects",
    "customer": f"/peers/{TABLE}.json?customer_id={{}}&{_DATASETTE_PAGE}",
    "first": f"/peers/{TABLE}.json?{_DATASETTE_PAGE}",
}


class ServerFailed(RuntimeError):
    pass


@dataclass
class Server:
    name: str
    port: int
    paths: dict[str, str]
    ready_path: str
    process: subprocess.Popen | None = None
    log: Path | None = None
    note: str = ""
    follows: bool = False
    """Whether it serves each new publication (only mirador); peers serve the copy they started with."""
    extra: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def order_ids(self, scenario: str, body) -> list[str]:
        """The order ids a response holds, in order, whatever the server's shape."""
        if self.name == "mirador":
            rows = [body] if scenario == "key" else body["rows"]
        elif self.name == "roapi":
            rows = body
        else:
            rows = body["rows"]
        return [row["order_id"] for row in rows]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(server: Server, command: list[str], env: dict[str, str], cwd: Path) -> Server:
    server.log = cwd / f"{server.name}.log"
    with server.log.open("wb") as out:
        server.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return server


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRADOR_")}
    return {**env, **extra}


def mirador_available() -> str | None:
    """None when `mirador serve` can run, else why not."""
    binary = ROOT / ".venv" / "bin" / "mirador"
    if not binary.exists():
        return f"{binary} is missing (make install)"
    done = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return f"`mirador serve` is not available yet: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    return None


def start_mirador(home: Path, published: Path, workers: int, cwd: Path) -> Server:
    server = Server(
        "mirador", free_port(), MIRADOR, "/readyz", follows=True, note=f"{workers} workers, follows the publications"
    )
    command = [
        str(ROOT / ".venv" / "bin" / "mirador"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--workers",
        str(workers),
    ]
    # Ready whatever the first publication's age: nothing publishes until every server is ready, and the
    # first copy of 1M rows can take longer than the default 300 s on a busy machine.
    env = _env(
        MIRADOR_HOME=str(home),
        MIRADOR_PUBLISH_DIR=str(published),
        MIRADOR_ENV="development",
        MIRADOR_API_READY_MAX_AGE="86400",
    )
    return _start(server, command, env, cwd)


def start_roapi(peers: Path, parquet: Path, cwd: Path) -> Server:
    server = Server(
        "roapi", free_port(), ROAPI, f"/api/tables/{TABLE}?limit=1", note="static Parquet copy, loaded into memory"
    )
    command = [
        str(peers / "bin" / "roapi"),
        "--addr-http",
        f"127.0.0.1:{server.port}",
        "--addr-postgres",
        f"127.0.0.1:{free_port()}",
        "--addr-flight-sql",
        f"127.0.0.1:{free_port()}",
        "--table",
        f"{TABLE}={parquet}",
    ]
    return _start(server, command, _env(), cwd)


def start_datasette(peers: Path, sqlite: Path, workers: int, cwd: Path) -> Server:
    """`datasette serve` (its own server: one uvicorn process, no option for more), or with
    `workers` > 1 the same app under `uvicorn --workers` (without the access log `datasette serve` writes)."""
    server = Server("datasette", free_port(), DATASETTE, "/-/versions.json")
    if workers == 1:
        server.note = "static SQLite copy, immutable; `datasette serve`: 1 process"
        command = [
            str(peers / "bin" / "datasette"),
            "serve",
            "--immutable",
            str(sqlite),
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
        ]
        return _start(server, command, _env(), cwd)
    server.note = f"static SQLite copy, immutable; its app under uvicorn --workers {workers}"
    command = [
        str(peers / "bin" / "uvicorn"),
        "--app-dir",
        str(HERE),
        "--factory",
        "datasette_workers:create",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return _start(server, command, _env(BENCH_DATASETTE_DB=str(sqlite)), cwd)


def wait_ready(server: Server, timeout: float) -> None:
    """Until the server answers its ready path with 200; ServerFailed (with its log's end) otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerFailed(f"{server.name} exited with {server.process.returncode}:\n{tail(server.log)}")
            try:
                response = client.get(server.base + server.ready_path)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as err:
                last = repr(err)
            time.sleep(0.2)
    raise ServerFailed(f"{server.name} not ready after {timeout:.0f}s ({last}):\n{tail(server.log)}")


def tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen | None, grace: float = 8.0) -> None:
    """SIGTERM to the process's session, then SIGKILL to whatever is left of it."""
    if process is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:  # the leader is gone; its workers may not be
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        break
