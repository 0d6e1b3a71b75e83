"""Settings of the inventory service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class InventorySettings(ServiceSettings):
    """Environment variables `MIRADOR_INVENTORY_*` (and the shared `MIRADOR_*` ones)."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_INVENTORY_")

    service: ClassVar[str] = "inventory"

    port: int = Field(8104, ge=1, le=65535)
    """HTTP port of the inventory service."""

    stock_snapshot_every: int = Field(25, ge=1)
    """Snapshot a product's stock every this many events, so a command folds at most this many."""

    stock_append_attempts: int = Field(50, ge=1)
    """Times a stock command is run again after losing a race for the next version of its stream."""
