"""Percentiles and the machine's state, as every bench reports them."""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

REFRESH = re.compile(r"api\.store serving \S+: (\d+) rows changed in ([\d.]+) ms \((.*)")


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50, p95, p99 and max (nearest rank) and the count; None throughout without samples."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    ordered = sorted(values)
    pick = lambda p: ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]  # noqa: E731
    return {"p50": statistics.median(ordered), "p95": pick(95), "p99": pick(99), "max": ordered[-1], "n": len(ordered)}


def describe(values: list[float]) -> str:
    p = percentiles(values)
    if not p["n"]:
        return "no samples"
    return f"p50 {p['p50']:6.3f}s  p95 {p['p95']:6.3f}s  p99 {p['p99']:6.3f}s  max {p['max']:6.3f}s  (n={p['n']})"


def machine() -> dict:
    """Cores, memory and the load average now (other people's work shares this machine)."""
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }


def serving_refreshes(log: str) -> dict:
    """From `mirador serve`'s log: how often its serving copy caught up with a publication, how long that
    took, and how many times it compared a view whole instead of applying the publication's changes."""
    found = [(float(m[2]) / 1000, "compared whole" in m[3]) for m in map(REFRESH.search, log.splitlines()) if m]
    seconds = [s for s, _ in found]
    return {
        "refreshes": len(found),
        "compared_whole": sum(whole for _, whole in found),
        "median_s": statistics.median(seconds) if seconds else None,
        "max_s": max(seconds, default=None),
    }
