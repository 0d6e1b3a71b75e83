"""Idempotency keys: a retried command returns its first result and writes nothing twice.

The key is inserted, with the command's answer, in the very statement that writes (`services/common/tx.py`).
A retry racing the first attempt blocks on the key's primary key until that attempt commits (then it
fails with a unique violation and gets the stored answer) or fails (then it proceeds as the first).
A retry arriving later meets the stored key at once; if the state the first attempt left makes it
break a rule (or find the aggregate changed), the stored answer is still what it gets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from psycopg import AsyncConnection

from services.common.errors import IdempotencyKeyReused

CONSTRAINT = "idempotency_keys_pkey"

CLAIM = """
insert into mirador.idempotency_keys (key, route, request_hash, status, response)
values (%s, %s, %s, %s, %s::jsonb)
"""
"""Claim a key and store the command's answer, in the statement that writes."""
STORED = """
select route, request_hash, status, response, txid::text::bigint, pg_current_wal_lsn()::text
from mirador.idempotency_keys where key = %s
"""
"""The first result, with the position now: the first write committed before it, so it is a safe bound."""
PRUNE = "delete from mirador.idempotency_keys where created_at < now() - make_interval(hours => %s)"


def fingerprint(route: str, body: bytes) -> bytes:
    return hashlib.sha256(route.encode() + b"\n" + body).digest()


@dataclass(frozen=True)
class FirstAnswer:
    status: int
    response: dict
    txid: int
    lsn: str


async def stored(conn: AsyncConnection, key: str, route: str, request_hash: bytes) -> FirstAnswer | None:
    """The first result of `key` (None if the key is unknown); refused if it came with another request."""
    row = await (await conn.execute(STORED, (key,))).fetchone()
    if row is None:
        return None
    first_route, first_hash, status, response, txid, lsn = row
    if first_route != route or bytes(first_hash) != request_hash:
        raise IdempotencyKeyReused(
            f"this Idempotency-Key was first used for a different request ({first_route}); "
            "use a new key for a new command",
            first_route=first_route,
        )
    return FirstAnswer(status, response, txid, lsn)


def dump(response: dict) -> str:
    return orjson.dumps(response).decode()
