"""What every stage is configured with: where mirador keeps its state and the working DuckDB file.

Each stage adds its own settings (`ingest.configuration`, `build.configuration`,
`publish.configuration`); `runtime.configuration.PipelineSettings` has them all. Every setting is an
environment variable `MIRADOR_<NAME>` (or a line of a `.env` file).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mirador.home import default_home


class WarehouseSettings(BaseSettings):
    """Environment variables `MIRADOR_*` (or a `.env` file)."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=default_home)
    """State directory; the warehouse file defaults to `<home>/warehouse/mirador.duckdb`."""

    warehouse_path: Path | None = None
    """The working DuckDB file the loader writes and the build step reads."""

    @property
    def warehouse(self) -> Path:
        return self.warehouse_path or self.home / "warehouse" / "mirador.duckdb"
