"""A dbt-duckdb plugin that makes dbt take its turn on the working DuckDB file.

DuckDB lets one process write a file at a time. Named in `dbt_project/profiles.yml`, this plugin takes
the warehouse lock (`warehouse.lock`) just before dbt first connects, waiting with a log line while the
loader or the pipeline holds it, and keeps it until the dbt process exits. Inside the pipeline, which
holds the lock and the open file itself (`warehouse.runtime.session`), it stands aside and makes dbt connect
with the pipeline's configuration, so that dbt's connection joins the pipeline's DuckDB instance
(DuckDB refuses a second instance of a file in one process, and a connection with other settings).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from mirador.logs import only_to
from warehouse.lock import WarehouseLock, held_by_this_process


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.timeout = float(plugin_config.get("timeout", 900))
        self._lock: WarehouseLock | None = None

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        """Called before every `duckdb.connect`: the first call takes the lock for the process."""
        if creds.path == ":memory:":
            return
        path = Path(creds.path).resolve()
        if path in held_by_this_process:
            config.clear()
            config.update(held_by_this_process[path])
            return
        if self._lock is not None:
            return
        self._lock = WarehouseLock(path, "dbt", timeout=self.timeout)
        with _said_on_stderr(logging.getLogger("warehouse.lock")) as say:
            self._lock.acquire()
            if self._lock.waited > 0.5:
                say.info("waited %.1fs for the warehouse file; building now", self._lock.waited)
        held_by_this_process[path] = dict(config)


@contextmanager
def _said_on_stderr(logger: logging.Logger):
    """dbt's CLI shows only its own events: print the lock's waiting lines on stderr while we wait."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s mirador: %(message)s", "%H:%M:%S"))
    with only_to(logger, handler, logging.INFO):
        yield logger
