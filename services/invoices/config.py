"""Settings of the invoices service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings


class InvoicesSettings(ServiceSettings):
    """Environment variables `MIRADOR_INVOICES_*` (and the shared `MIRADOR_*` ones)."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_INVOICES_")

    service: ClassVar[str] = "invoices"

    port: int = Field(8103, ge=1, le=65535)
    """HTTP port of the invoices service."""
