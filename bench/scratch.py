"""A scratch CDC stack for the benches that need data in Postgres before capture starts.

Its own home, Postgres cluster, broker and Connect worker on ports of their own, built with the stack's
own functions (`cdc.stack.up` without connectors, `cdc.postgres.bootstrap`, the services' migrations,
`cdc.connect.register_all`), so the default stack and its connectors are never touched. The jars are
the default home's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import psycopg

from cdc import connect, postgres, stack
from cdc.config import SERVICES, StackSettings
from services.common import migrations

ROOT = Path(__file__).resolve().parents[1]
PORTS = {"pg_port": 25432, "kafka_port": 29092, "kafka_controller_port": 29093, "connect_port": 28083}
API_PORT = 28100
PACKAGES = {service: [("common", "services.common"), (service, f"services.{service}")] for service in SERVICES}


class ScratchStack:
    """The scratch stack under `home`; `env` is what a `mirador` command run against it needs."""

    def __init__(self, home: Path) -> None:
        self.home = home.resolve()
        jars = StackSettings().jars
        self.settings = StackSettings(home=self.home, jars_dir=jars, **PORTS)
        self.env = {
            **os.environ,
            "MIRADOR_HOME": str(self.home),
            "MIRADOR_JARS_DIR": str(jars),
            "MIRADOR_API_PORT": str(API_PORT),
            **{f"MIRADOR_{key.upper()}": str(value) for key, value in PORTS.items()},
        }

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{API_PORT}"

    def up(self, fresh: bool = True) -> dict[str, float]:
        """Start the stack with no connector and empty service databases (a fresh home wipes the last one);
        the seconds each component took to start."""
        if fresh:
            self.down()
            shutil.rmtree(self.home, ignore_errors=True)
            data = postgres.data_dir(self.settings)
            if data.is_relative_to(Path("/tmp")):
                shutil.rmtree(data.parent, ignore_errors=True)
        startup = stack.up(self.settings, connectors=False)
        asyncio.run(self._migrate())
        return startup.started

    async def _migrate(self) -> None:
        for service, packages in PACKAGES.items():
            pending = [m for component, package in packages for m in migrations.discover(component, package)]
            async with await psycopg.AsyncConnection.connect(postgres.service_dsn(self.settings, service)) as conn:
                await migrations.apply(conn, pending)

    def dsn(self, service: str) -> str:
        return postgres.service_dsn(self.settings, service)

    def superuser_dsn(self, database: str) -> str:
        return postgres.superuser_dsn(self.settings, database)

    def capture(self, timeout: float = 900) -> list[str]:
        """Register the project's connectors (their snapshot starts now) and wait until they run.

        As `connect.register_all`, with a longer wait: on a busy machine a task can take minutes to be
        assigned while the others snapshot."""
        values = connect.placeholders(self.settings)
        configs = [connect.load_config(path, values) for path in connect.connector_files(SERVICES)]
        for config in configs:
            connect.register(self.settings, config)
        for config in configs:
            connect.wait_running(self.settings, config["name"], timeout)
        return [config["name"] for config in configs]

    def pause(self) -> None:
        with connect.client(self.settings) as http:
            for service in SERVICES:
                http.put(f"/connectors/mirador-{service}/pause").raise_for_status()

    def down(self) -> None:
        stack.down(self.settings)
