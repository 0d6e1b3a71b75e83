"""The statements of one command, sent to Postgres in as few round trips as the command allows.

A command that only writes costs one statement: its writes and the claim of its idempotency key become
one `WITH ... INSERT/UPDATE/DELETE` statement, atomic on its own, prepared by the server after a few
uses. A command that must read first (to lock a row and check a rule) opens a transaction: BEGIN, the
claim and the read travel together, then the writes and COMMIT travel together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from psycopg import AsyncConnection

from services.common import idempotency

Params = Mapping[str, Any] | Sequence[Any]

TXID = "select pg_current_xact_id()::text::bigint"

NAMED = re.compile(r"%\((\w+)\)s")


class Tx:
    """What a command's work sees: `read` runs now and returns a row, `write` is sent at the end."""

    def __init__(self, conn: AsyncConnection, claim: tuple[str, str, bytes] | None) -> None:
        self.conn = conn
        self.claim = claim
        self.writes: list[tuple[str, Params]] = []
        self.in_transaction = False

    async def peek(self, statement: str, params: Params = ()) -> tuple | None:
        """A read outside the command's transaction: no lock, for commands that check a version on write."""
        if self.in_transaction:
            raise RuntimeError("peek() must come before any read() of the command")
        return await (await self.conn.execute(statement, params)).fetchone()

    async def read(self, statement: str, params: Params = ()) -> tuple | None:
        """Run `statement` in the command's transaction (opened, key claimed, on the first read)."""
        if not self.in_transaction:
            self.in_transaction = True
            async with self.conn.pipeline():
                await self.conn.execute("begin")
                if self.claim:
                    await self.conn.execute(idempotency.CLAIM, self.claim)
                cursor = await self.conn.execute(statement, params)
            return await cursor.fetchone()
        return await (await self.conn.execute(statement, params)).fetchone()

    def write(self, statement: str, params: Params = ()) -> None:
        self.writes.append((statement, params))

    async def commit(self, status: int, response: str) -> int:
        """Send the writes and the stored response, commit; return the transaction id."""
        if self.in_transaction:
            async with self.conn.pipeline():
                for statement, params in self.writes:
                    await self.conn.execute(statement, params)
                if self.claim:
                    await self.conn.execute(idempotency.RECORD, (status, response, self.claim[0]))
                txid = await self.conn.execute(TXID)
                await self.conn.execute("commit")
            return (await txid.fetchone())[0]
        writes = list(self.writes)
        if self.claim:
            writes.insert(0, (idempotency.CLAIM_DONE, (*self.claim, status, response)))
        statement, params = combine(writes) if writes else (TXID, [])
        return (await (await self.conn.execute(statement, params)).fetchone())[0]

    async def rollback(self) -> None:
        if self.in_transaction:
            await self.conn.rollback()


def combine(writes: list[tuple[str, Params]]) -> tuple[str, list]:
    """One statement doing all `writes`, each a data-modifying CTE, returning the transaction id.

    Only the fixed statement texts are combined, never values: every value stays a bound parameter.
    """
    parts, params = [], []
    for i, (statement, values) in enumerate(writes):
        text, names = _positional(statement)
        parts.append(f"w{i} as ({text})")
        if names is None:
            params.extend(values)
        else:
            params.extend(values[name] for name in names)
    return "with " + ",\n".join(parts) + "\n" + TXID, params


@lru_cache(maxsize=256)
def _positional(statement: str) -> tuple[str, tuple[str, ...] | None]:
    """`%(name)s` placeholders as `%s`, with the names in order, so statements can be concatenated."""
    names = tuple(NAMED.findall(statement))
    if not names:
        return statement.strip(), None
    return NAMED.sub("%s", statement).strip(), names
