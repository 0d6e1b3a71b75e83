"""The app every service is built from: pool, migrations, auth, problem+json errors, health probes."""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from services.common import db, idempotency, migrations, problems
from services.common.auth import SECURITY_SCHEME, BearerAuth
from services.common.config import ServiceSettings
from services.common.deps import IDEMPOTENCY_HEADER
from services.common.errors import CommandRefused
from services.common.positions import WalPositions

log = logging.getLogger(__name__)


class Position(BaseModel):
    """Where the write is in the source database's WAL, to ask the read side to catch up to."""

    txid: int
    """The transaction id of the write (Debezium's `source.txId`)."""
    lsn: str
    """WAL position read right after COMMIT: once the read side has consumed up to here, it has the write."""


class CommandResult(BaseModel):
    """The answer to every command: what it wrote, and where."""

    id: str
    version: int | None
    position: Position


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str | None = None


def _problem(description: str) -> dict:
    return {"description": description, "content": {problems.MEDIA_TYPE: {"schema": Problem.model_json_schema()}}}


TELEMETRY_OFF = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)
"""No OpenTelemetry is configured; off, FastAPI (where it has telemetry) skips its per-request checks."""

COMMAND_RESPONSES = {
    401: _problem("Missing or wrong bearer token"),
    422: _problem("Invalid fields (listed in `errors`), or an Idempotency-Key reused for another request"),
}
UPDATE_RESPONSES = {
    404: _problem("No such aggregate"),
    409: _problem("A business rule refuses the command, or concurrent writers kept colliding"),
    412: _problem("`If-Match` names a stale version"),
}


def build_app(
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    migration_packages: Sequence[tuple[str, str]],
    constraint_errors: Mapping[str, type[CommandRefused]],
) -> FastAPI:
    """A service app. `migration_packages` are (component, package) pairs, applied in order."""
    pending = [m for component, package in migration_packages for m in migrations.discover(component, package)]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await db.open_pool(settings)
        try:
            async with pool.connection() as conn:
                for migration in await migrations.apply(conn, pending):
                    log.info("applied migration %s %04d_%s", migration.component, migration.version, migration.name)
                await conn.execute(idempotency.PRUNE, (settings.idempotency_ttl_hours,))
            app.state.pool = pool
            app.state.positions = WalPositions(pool)
            # What start-up built (FastAPI, pydantic, the routes) lives as long as the process: frozen,
            # it is no longer scanned by every full collection, which otherwise pauses all the
            # worker's requests for tens of milliseconds (ADR 23).
            gc.collect()
            gc.freeze()
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title=f"mirador {settings.service} commands",
        version="1",
        lifespan=lifespan,
        description=f"Commands of the {settings.service} service. Reads are the read API's job.",
        redoc_url=None,
        **TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.constraint_errors = constraint_errors
    problems.install(app)
    app.add_middleware(BearerAuth, token=settings.token.get_secret_value())
    # Outermost: a preflight carries no token, and a refusal still tells the page's origin why.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match"],
        expose_headers=["ETag"],
        max_age=600,
    )
    for router in routers:  # matched in order: commands first, the hottest router first
        app.include_router(router, responses=COMMAND_RESPONSES)
    app.include_router(_health())
    app.openapi = lambda: _openapi_with_auth(app)
    return app


def _openapi_with_auth(app: FastAPI) -> dict:
    """The generated schema, plus what every command reads outside FastAPI's parameters: the bearer
    token the middleware checks and the Idempotency-Key header."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEME
        for path, operations in schema["paths"].items():
            if path not in ("/healthz", "/readyz"):
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
        app.openapi_schema = schema
    return app.openapi_schema


def _health() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict:
        return {"status": "ok"}

    @router.get(
        "/readyz", summary="The database answers and migrations are applied", responses={503: _problem("Not ready")}
    )
    async def readyz(request: Request) -> Response:
        pool = getattr(request.app.state, "pool", None)
        if pool is None:
            return problems.problem(503, "Service Unavailable", "starting", code="not_ready")
        async with pool.connection(timeout=2) as conn:
            await conn.execute("select 1")
        return Response(b'{"status":"ready"}', media_type="application/json")

    return router
