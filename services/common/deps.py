"""Dependency aliases the routes declare: a command's context, the `If-Match` version, the settings."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError

from services.common.commands import Command
from services.common.config import ServiceSettings

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
ETAG = re.compile(r'^(?:W/)?"?(\d{1,9})"?$')

IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Any unique string of 1-255 visible ASCII characters (a UUID is a good choice). "
    "A retry with the same key returns the first result and writes nothing again.",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
}
"""Read by `command` from the raw headers, so it is added to the OpenAPI document by `app.py`."""


async def command(request: Request) -> Command:
    # The header is read here rather than declared as a FastAPI Header parameter: on the hot path,
    # FastAPI's per-parameter resolution costs more than the rest of the dependency.
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise RequestValidationError(
            [
                {
                    "loc": ("header", "idempotency-key"),
                    "type": "string_pattern_mismatch",
                    "msg": "must be 1-255 visible ASCII characters",
                }
            ]
        )
    state = request.app.state
    return Command(
        state.pool, state.positions, f"{request.method} {request.scope['path']}", key, state.constraint_errors
    )


async def if_match(
    if_match: Annotated[
        str | None,
        Header(
            pattern=r'^(?:(?:W/)?"?\d{1,9}"?|\*)$',
            description='The version the change is based on, as returned in `ETag` or `version` ("3" or 3). '
            "A stale version is refused with 412.",
        ),
    ] = None,
) -> int | None:
    if if_match is None or if_match == "*":
        return None
    return int(ETAG.match(if_match)[1])


async def settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


CommandDep = Annotated[Command, Depends(command)]
IfMatch = Annotated[int | None, Depends(if_match)]
SettingsDep = Annotated[ServiceSettings, Depends(settings)]
