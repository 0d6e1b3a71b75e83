"""What the customers commands accept."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from services.common.fields import Name

Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 code, upper case."""


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name
    country: Country


class CustomerUpdate(BaseModel):
    """A partial update: only the fields sent change; at least one must be sent, none may be null."""

    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    name: Name | None = None
    country: Country | None = None

    @model_validator(mode="after")
    def _some_change(self) -> CustomerUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one of email, name, country")
        if nulls := sorted(f for f in self.model_fields_set if getattr(self, f) is None):
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self
