"""Running one command: one transaction, its idempotency key, and the source position of its write."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from psycopg.errors import SerializationFailure, UniqueViolation
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from starlette.responses import Response

from services.common import idempotency
from services.common.errors import CommandRefused, ConcurrencyConflict, Retry, VersionChanged
from services.common.positions import WalPositions
from services.common.tx import Tx


@dataclass(frozen=True)
class Written:
    """What a command wrote: the aggregate's id, its new version (None once deleted), extra fields."""

    id: UUID | str
    version: int | None
    status: int = 200
    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict:
        return {"id": str(self.id), "version": self.version, **self.extra}


Work = Callable[[Tx], Awaitable[Written]]

ATTEMPTS = 10
"""Runs of a command whose guarded write keeps finding that another writer changed its aggregate."""


class Command:
    """One command request: its pool, its idempotency key and the route it came in on."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        positions: WalPositions,
        route: str,
        key: str | None,
        constraint_errors: Mapping[str, type[CommandRefused]],
    ) -> None:
        self.pool, self.positions, self.route, self.key = pool, positions, route, key
        self.constraint_errors = constraint_errors

    async def run(
        self,
        work: Work,
        body: BaseModel | None = None,
        *,
        expected_version: int | None = None,
        attempts: int = ATTEMPTS,
    ) -> Response:
        """Run `work` as one transaction; after a `Retry` conflict run it again, up to `attempts` times."""
        claim = None
        if self.key:
            claim = (self.key, self.route, idempotency.fingerprint(self.route, _canonical(body, expected_version)))
        for attempt in range(attempts):
            try:
                return await self._once(work, claim)
            except UniqueViolation as err:
                constraint = err.diag.constraint_name or ""
                if claim and constraint == idempotency.CONSTRAINT:
                    return await self._first_answer(claim)
                kind = self.constraint_errors.get(constraint)
                if kind is None:
                    raise
                refusal = kind((kind.__doc__ or kind.title).strip().splitlines()[0])
            except SerializationFailure as err:  # a guarded write found another version (services/common/tx.py)
                refusal = VersionChanged(str(err.diag.message_primary or err))
            except CommandRefused as err:
                refusal = err
            if not isinstance(refusal, Retry):
                # A retry of a command that already succeeded may now break a rule (its own first write
                # took the email, the stock, the status): the first result stands.
                if claim and (first := await self._first_answer(claim, required=False)):
                    return first
                raise refusal
            if attempt + 1 < attempts:
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise ConcurrencyConflict(
            f"other writers changed the same data {attempts} times in a row; send the command again"
        )

    async def _once(self, work: Work, claim: tuple[str, str, bytes] | None) -> Response:
        async with self.pool.connection() as conn:
            tx = Tx(conn, claim)
            written = await work(tx)
            body = written.body()
            txid = await tx.commit(written.status, idempotency.dump(body))
        return render(written.status, body, {"txid": txid, "lsn": await self.positions.after_commit()})

    async def _first_answer(self, claim: tuple[str, str, bytes], required: bool = True) -> Response | None:
        """What the key's first command answered, for its retry."""
        key, route, request_hash = claim
        async with self.pool.connection() as conn:
            first = await idempotency.stored(conn, key, route, request_hash)
        if first is None:
            if required:
                raise ConcurrencyConflict("the Idempotency-Key's first command did not finish; send it again")
            return None
        return render(first.status, first.response, {"txid": first.txid, "lsn": first.lsn}, retried=True)


def _canonical(body: BaseModel | None, expected_version: int | None) -> bytes:
    data = body.model_dump(mode="json") if body is not None else None
    return orjson.dumps({"body": data, "if_match": expected_version}, option=orjson.OPT_SORT_KEYS)


def render(status: int, body: dict, position: dict, retried: bool = False) -> Response:
    headers = {}
    if body.get("version") is not None:
        headers["ETag"] = f'"{body["version"]}"'
    if retried:  # the header's name is the convention idempotency-key clients know (Stripe's)
        headers["Idempotent-Replayed"] = "true"
    return Response(
        orjson.dumps({**body, "position": position}), status_code=status, media_type="application/json", headers=headers
    )
