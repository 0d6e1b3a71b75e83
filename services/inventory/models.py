"""What the inventory commands accept."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from services.common.fields import Currency, Money, Name, Quantity, Reason

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    list_price: Money
    currency: Currency = "EUR"


class ProductUpdate(BaseModel):
    """Rename, reprice, or both; at least one field, none null."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    list_price: Money | None = None

    @model_validator(mode="after")
    def _some_change(self) -> ProductUpdate:
        if not self.model_fields_set:
            raise ValueError("send name, list_price or both")
        if nulls := sorted(f for f in self.model_fields_set if getattr(self, f) is None):
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class StockChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Quantity
    reason: Reason | None = None
