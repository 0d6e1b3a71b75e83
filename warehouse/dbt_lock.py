"""A dbt-duckdb plugin that makes dbt take its turn on the working DuckDB file.

DuckDB lets one process write a file at a time. Named in `dbt_project/profiles.yml`, this plugin takes
the warehouse lock (`warehouse.lock`) just before dbt first connects, waiting with a log line while the
loader or the pipeline holds it, and keeps it until the dbt process exits. Inside the pipeline, which
holds the lock itself around its in-process builds, it stands aside.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from warehouse.lock import WarehouseLock

log = logging.getLogger(__name__)

held_by_this_process: set[Path] = set()
"""Warehouse files whose lock this process already holds (the pipeline registers its own here)."""


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.timeout = float(plugin_config.get("timeout", 900))
        self._lock: WarehouseLock | None = None

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        """Called before every `duckdb.connect`: the first call takes the lock for the process."""
        path = Path(creds.path).resolve()
        if self._lock is not None or path in held_by_this_process or creds.path == ":memory:":
            return
        self._lock = WarehouseLock(path, "dbt", timeout=self.timeout)
        self._lock.acquire()
        if self._lock.waited > 0.5:
            log.info("waited %.1fs for the warehouse file", self._lock.waited)
        held_by_this_process.add(path)
