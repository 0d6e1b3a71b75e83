"""What the invoices commands accept."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, HttpUrl, StringConstraints

from services.common.fields import Currency, PositiveMoney


def _http_url(value: str) -> str:
    HttpUrl(value)  # raises a validation error for anything but an absolute http(s) URL
    return value


DocumentUrl = Annotated[
    str, StringConstraints(max_length=2000, pattern=r"^https?://[\x21-\x7e]+$"), AfterValidator(_http_url)
]


class InvoiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: UUID
    amount: PositiveMoney
    currency: Currency = "EUR"
    due_date: date
    document_url: DocumentUrl
