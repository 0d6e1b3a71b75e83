"""CPU seconds spent by each part of the system during a run, read from /proc.

On a shared 2-core machine the rate a run reaches depends on what else runs; the CPU each command
costs does much less, so the benchmark reports both.
"""

from __future__ import annotations

import os
import resource
from collections import Counter
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds so far)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        if "/postgres " in cmdline and " -D " in cmdline:
            ticks += int(fields[13]) + int(fields[14])  # the postmaster: backends that exited are reaped here
        found[int(entry.name)] = (int(fields[1]), cmdline, ticks / TICK)
    return found


def _group(pid: int, procs: dict, services: dict[int, str], databases: tuple[str, ...]) -> str | None:
    parent, cmdline, _ = procs[pid]
    if pid in services or parent in services:
        return "service"
    if "/postgres " in cmdline and " -D " in cmdline:
        return "postgres"
    if cmdline.startswith("postgres:"):
        parts = cmdline.split()
        client = "(" in cmdline  # a backend: "postgres: <user> <database> <host>(<port>) <state>"
        if not client or "walsender" in cmdline or (len(parts) > 2 and parts[2] in databases):
            return "postgres"
        return None
    if "java" in cmdline and "ConnectDistributed" in cmdline:
        return "debezium"
    if "java" in cmdline and "kafka.Kafka" in cmdline:
        return "kafka"
    return None


class CpuMeter:
    """CPU of the service processes, their databases' Postgres processes, Debezium, Kafka and the client."""

    def __init__(self, service_pids: dict[int, str], databases: tuple[str, ...]) -> None:
        self.services, self.databases = service_pids, databases
        self.start: Counter = Counter()

    def _read(self) -> Counter:
        procs = processes()
        seconds: Counter = Counter()
        for pid, (_, _, cpu) in procs.items():
            if group := _group(pid, procs, self.services, self.databases):
                seconds[group] += cpu
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds["client"] = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return seconds

    def __enter__(self) -> CpuMeter:
        self.start = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._read()
        self.spent = Counter({group: max(0.0, end[group] - self.start[group]) for group in end})
