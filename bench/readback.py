"""Reading a write back through `mirador serve`, as a client would: the moment a GET returns its row.

Two ways, as the API offers them: read-your-writes (`?after=<service>:<lsn>&wait=<s>`, the position a
command's answer carries; the request is held until the served views include it) and plain polling
(a GET every `interval` until the row is there). Times are `time.time()` on this machine, the clock
the commit times are taken with.
"""

from __future__ import annotations

import asyncio
import time

import httpx


async def read_your_writes(
    http: httpx.AsyncClient,
    view: str,
    column: str,
    value: str,
    position: str,
    timeout: float = 60.0,
    wait: float = 10.0,
) -> float | None:
    """When a GET naming `position` first returned the row; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = await http.get(f"/views/{view}", params={column: value, "after": position, "wait": wait})
        except httpx.HTTPError:
            await asyncio.sleep(0.1)
            continue
        if response.status_code == 200 and response.json()["rows"]:
            return time.time()
        # 503 not_yet_visible: retry at once; 200 without the row cannot happen once the position is served,
        # 503 not_published (nothing served yet) or anything else: a moment later.
        if not (response.status_code == 503 and response.json().get("type", "").endswith("not_yet_visible")):
            await asyncio.sleep(0.02)
    return None


async def poll(
    http: httpx.AsyncClient, view: str, column: str, value: str, interval: float = 0.05, timeout: float = 60.0
) -> float | None:
    """When a plain GET, sent every `interval` seconds, first returned the row; None after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = await http.get(f"/views/{view}", params={column: value})
            if response.status_code == 200 and response.json()["rows"]:
                return time.time()
        except httpx.HTTPError:
            pass
        await asyncio.sleep(interval)
    return None
