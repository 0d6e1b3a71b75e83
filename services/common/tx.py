"""The statements of one command: what it reads, then all its writes as one statement.

A command reads the state it checks its rules on without a lock and without a transaction, one
statement a read. Its writes, the claim of its idempotency key and its stored answer then become one
`WITH ... INSERT/UPDATE/DELETE` statement, atomic on its own and prepared by the server after a few
uses. A write that depends on what was read is guarded: it names the version read, and if it changes
no row, another writer changed the aggregate in between; the whole statement then fails and the command
runs again on the new state (optimistic concurrency, `mirador.guard`). A command costs its reads plus
one round trip, and holds no lock between them.
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
        self.writes: list[tuple[str, Params, bool]] = []

    async def read(self, statement: str, params: Params = ()) -> tuple | None:
        """The first row of `statement`, read now, without a lock: guard the writes that depend on it."""
        return await (await self.conn.execute(statement, params)).fetchone()

    def write(self, statement: str, params: Params = (), *, guard: bool = False) -> None:
        """Queue a write. `guard`: it names the version `read` returned (`... and version = ...
        returning 1`), and changing no row means the aggregate changed since: the command runs again."""
        self.writes.append((statement, params, guard))

    async def commit(self, status: int, response: str) -> int:
        """Send the writes and the stored answer as one statement; return its transaction id."""
        writes = list(self.writes)
        if self.claim:
            writes.insert(0, (idempotency.CLAIM, (*self.claim, status, response), False))
        statement, params = combine(writes)
        return (await (await self.conn.execute(statement, params)).fetchone())[0]


def combine(writes: list[tuple[str, Params, bool]]) -> tuple[str, list]:
    """One statement doing all `writes`, each a data-modifying CTE, returning the transaction id.

    Only the fixed statement texts are combined, never values: every value stays a bound parameter.
    """
    parts, params, guards = [], [], []
    for i, (statement, values, guard) in enumerate(writes):
        text, names = _positional(statement)
        parts.append(f"w{i} as ({text})")
        if names is None:
            params.extend(values)
        else:
            params.extend(values[name] for name in names)
        if guard:
            guards.append(f"mirador.guard((select count(*) from w{i}))")
    head = "with " + ",\n".join(parts) + "\n" if parts else ""
    return head + TXID + ("\nwhere " + " and ".join(guards) if guards else ""), params


@lru_cache(maxsize=256)
def _positional(statement: str) -> tuple[str, tuple[str, ...] | None]:
    """`%(name)s` placeholders as `%s`, with the names in order, so statements can be concatenated."""
    names = tuple(NAMED.findall(statement))
    if not names:
        return statement.strip(), None
    return NAMED.sub("%s", statement).strip(), names
