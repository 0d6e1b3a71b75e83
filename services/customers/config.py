"""Settings of the customers service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class CustomersSettings(ServiceSettings):
    """Environment variables `MIRADOR_CUSTOMERS_*` (and the shared `MIRADOR_*` ones)."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_CUSTOMERS_")

    service: ClassVar[str] = "customers"

    port: int = Field(8101, ge=1, le=65535)
    """HTTP port of the customers service."""
