"""Settings of the orders service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class OrdersSettings(ServiceSettings):
    """Environment variables `MIRADOR_ORDERS_*` (and the shared `MIRADOR_*` ones)."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_ORDERS_")

    service: ClassVar[str] = "orders"

    port: int = Field(8102, ge=1, le=65535)
    """HTTP port of the orders service."""
