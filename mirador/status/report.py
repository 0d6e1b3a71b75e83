"""One status report: the servers asked at once, the files the pipeline publishes read, per service
what each stage holds, and the verdict (fresh, stale, broken) with the first reason, in flow order.

Nothing here takes the warehouse lock: it reads the publication directory (`current.json` and the
current file's `_publication` row), the pipeline's status file and the servers themselves.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from cdc.config import SERVICES, StackSettings
from mirador.status import probes
from mirador.status.configuration import StatusSettings
from warehouse.publish import current_publication
from warehouse.runtime import status_file

FRESH, STALE, BROKEN = "fresh", "stale", "broken"


@dataclass
class Verdict:
    """Problems found, in flow order (source -> connector -> Kafka -> loader -> build -> publication)."""

    problems: list[dict] = field(default_factory=list)

    def broken(self, component: str, reason: str) -> None:
        self.problems.append({"level": BROKEN, "component": component, "reason": reason})

    def stale(self, component: str, reason: str) -> None:
        self.problems.append({"level": STALE, "component": component, "reason": reason})

    @property
    def level(self) -> str:
        levels = {p["level"] for p in self.problems}
        return BROKEN if BROKEN in levels else STALE if STALE in levels else FRESH

    @property
    def reason(self) -> str | None:
        return next((p["reason"] for p in self.problems if p["level"] == self.level), None)


def gather(settings: StatusSettings, stack: StackSettings, services: tuple[str, ...] = SERVICES) -> dict:
    started, checked_at = time.monotonic(), datetime.now(UTC)
    timeout = settings.status_timeout
    with ThreadPoolExecutor(3, thread_name_prefix="status") as pool:
        asked = {
            "postgres": pool.submit(probes.source, stack, timeout),
            "connect": pool.submit(probes.connectors, stack, timeout, services),
            "kafka": pool.submit(probes.consumer_lag, settings, timeout),
        }
        answers, down = {}, {}
        for component, future in asked.items():
            try:
                answers[component] = future.result()
            except probes.Unreachable as err:
                down[component] = str(err)
    pipeline = _pipeline(settings)
    publication = _publication(settings, checked_at)
    report = {
        "checked_at": checked_at.isoformat(timespec="seconds"),
        "services": _services(services, answers, publication, checked_at),
        "source": _without_slots(answers.get("postgres")),
        "topics": answers.get("kafka"),
        "consumer_group": settings.loader_group,
        "pipeline": pipeline,
        "publication": publication,
        "dead_letters": (pipeline.get("status") or {}).get("dead_letters"),
        "resnapshots": _resnapshots(answers.get("connect")),
        "unmapped_columns": (pipeline.get("status") or {}).get("unmapped_columns"),
        "down": down,
    }
    verdict = judge(report, settings)
    report.update(
        verdict=verdict.level,
        reason=verdict.reason,
        problems=verdict.problems,
        seconds=round(time.monotonic() - started, 3),
    )
    return report


def judge(report: dict, settings: StatusSettings) -> Verdict:
    """Broken: something will not heal by waiting. Stale: something is later than its threshold."""
    verdict = Verdict()
    down, services, pipeline = report["down"], report["services"], report["pipeline"]
    running = pipeline["running"]
    not_running = "" if running else "; `mirador run` is not running"
    for component in ("postgres", "connect", "kafka"):
        if component in down:
            verdict.broken(component, down[component])
    for service, state in services.items():
        slot, connector = state["slot"], state["connector"]
        if "postgres" not in down:
            if slot is None:
                verdict.broken("postgres", f"{service}: no replication slot {state['slot_name']}")
            elif slot["wal_status"] == "lost":
                verdict.broken("postgres", f"{service}: slot {slot['slot_name']} lost WAL it needed: re-snapshot")
            elif not slot["active"]:
                verdict.broken("postgres", f"{service}: slot {slot['slot_name']} is inactive: nothing streams from it")
            elif slot["retained_bytes"] > settings.status_max_slot_bytes:
                verdict.stale(
                    "postgres",
                    f"{service}: slot {slot['slot_name']} retains {_mib(slot['retained_bytes'])} "
                    f"(limit {_mib(settings.status_max_slot_bytes)}): Debezium is behind",
                )
        if "connect" not in down:
            if connector["state"] is None:
                verdict.broken("connect", f"{service}: connector {connector['name']} is not registered")
            elif connector["state"] != "RUNNING" or not connector["tasks"] or set(connector["tasks"]) != {"RUNNING"}:
                tasks = ",".join(connector["tasks"]) or "none"
                trace = f": {connector['trace']}" if connector.get("trace") else ""
                state_text = f"{connector['state']} (tasks {tasks}){trace}"
                verdict.broken("connect", f"{service}: connector {connector['name']} is {state_text}")
    for topic, lag in sorted((report["topics"] or {}).items(), key=lambda kv: -(kv[1]["seconds"] or 0)):
        if lag["messages"] and lag["seconds"] is not None and lag["seconds"] > settings.status_max_lag_seconds:
            verdict.stale(
                "loader",
                f"loader behind on {topic}: {lag['messages']:,} messages, the oldest waiting "
                f"{lag['seconds']:.0f}s (limit {settings.status_max_lag_seconds:g}s){not_running}",
            )
    status = pipeline.get("status") or {}
    build, tests = status.get("build"), status.get("tests")
    if build and not build["success"]:
        verdict.broken("build", f"build {build['build_id']} failed: {_first(build['failures'])}; nothing published")
    if tests and not tests["success"]:
        verdict.broken(
            "tests",
            f"data tests failed on batches through {tests['through_batch']}: {_first(tests['failures'])}; "
            "nothing more is published until they pass",
        )
    dead = sum((report["dead_letters"] or {}).values())
    if settings.status_max_dead_letters is not None and dead > settings.status_max_dead_letters:
        verdict.broken("loader", f"{dead:,} dead letters (limit {settings.status_max_dead_letters:,})")
    publication = report["publication"]
    if publication is None:
        verdict.stale("publication", f"nothing published yet{not_running}")
    elif publication.get("error"):
        verdict.broken("publication", publication["error"])
    else:
        for service, state in services.items():
            age = state["watermark"]["age_seconds"] if state["watermark"] else None
            if age is not None and age > settings.status_max_watermark_age:
                verdict.stale(
                    "publication",
                    f"{service}: the published views include source commits up to {age:.0f}s ago "
                    f"(limit {settings.status_max_watermark_age:g}s){not_running}",
                )
        if publication["age_seconds"] > settings.status_max_publication_age:
            verdict.stale(
                "publication",
                f"the publication was last refreshed {publication['age_seconds']:.0f}s ago "
                f"(limit {settings.status_max_publication_age:g}s){not_running}",
            )
    return verdict


def _services(services: tuple[str, ...], answers: dict, publication: dict | None, now: datetime) -> dict:
    source, topics = answers.get("postgres"), answers.get("kafka")
    connectors = answers.get("connect") or {}
    watermark = (publication or {}).get("watermark") or {}
    found = {}
    for service in services:
        slot_name = f"mirador_{service}"
        lags = [lag for lag in (topics or {}).values() if lag["service"] == service]
        mark = watermark.get(service)
        found[service] = {
            "slot_name": slot_name,
            "slot": None if source is None else _slot(source["slots"].get(slot_name)),
            "connector": connectors.get(service),
            "lag": None
            if topics is None
            else {
                "messages": sum(lag["messages"] for lag in lags),
                "seconds": max((lag["seconds"] for lag in lags if lag["seconds"] is not None), default=0.0),
                "topics": len(lags),
            },
            "watermark": None
            if not mark
            else {
                "lsn": mark.get("lsn"),
                "commit_ts": mark.get("commit_ts"),
                "age_seconds": _age(mark.get("commit_ts"), now),
                "behind_bytes": None
                if source is None or mark.get("lsn") is None
                else max(source["lsn_int"] - int(mark["lsn"]), 0),
            },
        }
    return found


def _resnapshots(connectors: dict | None) -> dict | None:
    """Per service, the tables an incremental snapshot still reads (None: Connect did not answer)."""
    if connectors is None:
        return None
    return {
        service: ", ".join(state["resnapshot"]["tables"])
        for service, state in connectors.items()
        if state.get("resnapshot")
    }


def _slot(slot: dict | None) -> dict | None:
    if slot is None:
        return None
    return {key: slot[key] for key in ("slot_name", "active", "wal_status", "retained_bytes", "confirmed_flush_lsn")}


def _without_slots(source: dict | None) -> dict | None:
    return None if source is None else {k: v for k, v in source.items() if k != "slots"}


def _pipeline(settings: StatusSettings) -> dict:
    """Whether `mirador run` runs on this home (the pid its lock file names is alive), and its status file."""
    pid = None
    try:
        text = (settings.home / "run" / "pipeline.lock").read_text().strip()
        if text.startswith("pid "):
            pid = int(text.split()[1])
            os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        pid = None
    path = status_file.location(settings)
    return {"running": pid is not None, "pid": pid, "status_file": str(path), "status": status_file.read(path)}


def _publication(settings: StatusSettings, now: datetime) -> dict | None:
    """The current publication as `current.json` names it, checked against its file's `_publication` row
    (read again if the pipeline switched to a newer one meanwhile)."""
    for _ in range(3):
        found = _read_publication(settings.published, now)
        if found is None or not found.get("error") or found.get("build_id") is None:
            return found
        again = current_publication(settings.published)
        if again is None or again.build_id == found["build_id"]:
            return found
    return found


def _read_publication(directory, now: datetime) -> dict | None:
    try:
        current = current_publication(directory)
    except (OSError, ValueError, TypeError) as err:
        return {"error": f"{directory / 'current.json'} cannot be read: {err}"}
    if current is None:
        return None
    found = {
        "build_id": current.build_id,
        "file": current.file,
        "through_batch": current.through_batch,
        "tested_through_batch": current.tested_through_batch,
        "built_at": current.built_at,
        "published_at": current.published_at,
        "age_seconds": _age(current.published_at, now),
        "watermark": current.watermark,
    }
    path = current.path(directory)
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            build_id, through = conn.execute("select build_id, through_batch from _publication").fetchone()
    except (duckdb.Error, OSError, TypeError) as err:
        found["error"] = f"publication {path} cannot be read: {str(err).splitlines()[0]}"
        return found
    if (build_id, through) != (current.build_id, current.through_batch):
        found["error"] = (
            f"publication {path.name} holds build {build_id} through batch {through}, not what current.json says "
            f"({current.build_id} through batch {current.through_batch})"
        )
    return found


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    return round((now - datetime.fromisoformat(stamp)).total_seconds(), 3)


def _first(failures: list[str]) -> str:
    return failures[0] if failures else "see the pipeline's log"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"
