"""What the orders commands accept."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.common.fields import Currency, Money, Quantity, Reason


class OrderLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: UUID
    quantity: Quantity
    unit_price: Money


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: UUID
    currency: Currency = "EUR"
    lines: list[OrderLineCreate] = Field(min_length=1, max_length=100)


class OrderCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None
