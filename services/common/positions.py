"""The WAL position to hand back after a commit, read once for all the commands committing together.

A position read after a command's COMMIT returned is at or past the end of its commit record, so it is
a safe point for the read side to wait for. Reading it costs a round trip; at hundreds of commands a
second per worker, one `pg_current_wal_lsn()` can serve every command that committed before it was
sent. Each caller gets a position from a query sent after it asked, never one sent before.
"""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

LSN = "select pg_current_wal_lsn()::text"


class WalPositions:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.waiting: list[asyncio.Future[str]] = []
        self.reader: asyncio.Task | None = None

    async def after_commit(self) -> str:
        """A WAL position at or past everything committed before this call."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        if self.reader is None or self.reader.done():
            self.reader = asyncio.create_task(self._read())
        return await waiter

    async def _read(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []  # taken before the query is sent
            try:
                async with self.pool.connection() as conn:
                    lsn = (await (await conn.execute(LSN)).fetchone())[0]
            except Exception as err:  # noqa: BLE001 - every waiter of the batch gets the failure
                for waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(err)
                continue
            for waiter in batch:
                if not waiter.done():
                    waiter.set_result(lsn)
