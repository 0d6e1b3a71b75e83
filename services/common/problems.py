"""Every error as `application/problem+json` (RFC 9457), mapped once for all services."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response

from services.common.errors import (
    CommandRefused,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    NotFoundError,
    RuleViolation,
    StaleVersionError,
)

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

STATUS_OF = {
    NotFoundError: 404,
    RuleViolation: 409,
    ConcurrencyConflict: 409,
    StaleVersionError: 412,
    IdempotencyKeyReused: 422,
}


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> Response:
    body = {
        "type": f"urn:mirador:problem:{code}" if code else "about:blank",
        "title": title,
        "status": status,
        **({"detail": detail} if detail else {}),
        **extra,
    }
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _code(exc: Exception) -> str:
    """`InsufficientStockError` -> `insufficient_stock`: the rule's name, for clients to branch on."""
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _status_of(exc: CommandRefused) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 409


async def command_refused(request: Request, exc: CommandRefused) -> Response:
    return problem(_status_of(exc), exc.title, exc.detail, code=_code(exc), **exc.extra)


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    errors = [
        {"field": ".".join(str(part) for part in err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    return problem(
        422, "Invalid request", "the request has invalid or missing fields", code="invalid_request", errors=errors
    )


async def http_error(request: Request, exc: HTTPException) -> Response:
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem(exc.status_code, phrase, detail, headers=exc.headers)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %s", exc)
    return problem(
        503,
        "Service Unavailable",
        "the database is not reachable; retry later",
        code="database_unavailable",
        headers={"Retry-After": "1"},
    )


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "Internal Server Error", "an unexpected error; see the service log", code="internal_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(CommandRefused, command_refused)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(PoolTimeout, database_unavailable)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(Exception, unexpected)
