"""Input types shared by the services: what Postgres can store, refused with 422 when it cannot."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints


def _storable(value: str) -> str:
    """Postgres text cannot hold NUL, and UTF-8 cannot encode lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def text(max_length: int, min_length: int = 1) -> type[str]:
    """A trimmed, non-empty, storable string of at most `max_length` characters."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_storable),
    ]


Name = text(200)
Reason = text(500)
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 code, upper case."""

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False)]
"""numeric(12, 2): never a float."""

PositiveMoney = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2, allow_inf_nan=False)]

Quantity = Annotated[int, Field(ge=1, le=1_000_000)]
"""A count of units in one command; bounded so sums stay within Postgres integer."""
