"""The status report as one screen: the verdict first, then per service each stage, then the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime

import click

COLOURS = {"fresh": "green", "stale": "yellow", "broken": "red"}
SHOWN = 5
"""Lagging topics and further problems shown; `--json` has them all."""


def render(report: dict) -> str:
    lines = [_headline(report)]
    source = report["source"]
    commit = "-"
    if source and source["commit_timestamps"]:
        commit = _when(source["commit_ts"])
    else:  # without track_commit_timestamp: the newest commit a connector has read and committed
        read = [(c or {}).get("committed_commit_ts") for c in (s["connector"] for s in report["services"].values())]
        newest = max((stamp for stamp in read if stamp), default=None)
        commit = f"{_when(newest)} as the connectors read it" if newest else "-"
    lines.append(
        f"checked {report['checked_at']} in {report['seconds']:.2f}s; source LSN "
        f"{source['lsn'] if source else '-'}, last commit {commit}"
    )
    lines.append("")
    lines.append(
        f"{'service':<10} {'slot':<18} {'connector / tasks':<20} {'loader lag':<20} views include commits up to"
    )
    for service, state in report["services"].items():
        lines.append(f"{service:<10} {_slot(state)} {_connector(state)} {_lag(state)} {_watermark(state)}")
    lines.append("")
    lines.extend(_pipeline(report))
    lines.append(_publication(report["publication"]))
    lines.extend(_topics(report["topics"]))
    lines.append(_counts("dead letters", report["dead_letters"]))
    lines.append(_counts("re-snapshots", report["resnapshots"]))
    lines.append(_counts("unmapped columns", report["unmapped_columns"]))
    more = [p for p in report["problems"] if p["reason"] != report["reason"]]
    if more:
        lines.append("also:")
        lines.extend(f"  {p['level']}: {p['reason']}" for p in more[:SHOWN])
        if len(more) > SHOWN:
            lines.append(f"  and {len(more) - SHOWN} more (--json)")
    return "\n".join(lines)


def _headline(report: dict) -> str:
    verdict = click.style(report["verdict"].upper(), fg=COLOURS[report["verdict"]], bold=True)
    return f"mirador status: {verdict}" + (f" - {report['reason']}" if report["reason"] else "")


def _slot(state: dict) -> str:
    slot = state["slot"]
    if slot is None:
        return f"{'-':<18}"
    return f"{'active' if slot['active'] else 'INACTIVE':<8} {_size(slot['retained_bytes']):>9}"


def _connector(state: dict) -> str:
    connector = state["connector"]
    if connector is None:
        return f"{'-':<20}"
    text = f"{connector['state'] or 'MISSING'} {','.join(connector['tasks']) or '-'}"
    return f"{text:<20}"


def _lag(state: dict) -> str:
    lag = state["lag"]
    if lag is None:
        return f"{'-':<20}"
    return f"{lag['messages']:>7,} msgs {lag['seconds']:>6.1f}s "


def _watermark(state: dict) -> str:
    mark = state["watermark"]
    if mark is None:
        return "-"
    behind = "" if mark["behind_bytes"] is None else f", WAL {_size(mark['behind_bytes'])} ahead"
    return f"{_when(mark['commit_ts'])}{behind}"


def _pipeline(report: dict) -> list[str]:
    pipeline = report["pipeline"]
    status = pipeline["status"] or {}
    running = f"`mirador run` running (pid {pipeline['pid']})" if pipeline["running"] else "`mirador run` not running"
    written = status.get("written_at")
    lines = [f"pipeline   {running}; status file " + (f"written {_when(written)}" if written else "not written yet")]
    load, build, publish, tests = (status.get(k) for k in ("load", "build", "publish", "tests"))
    if load:
        lines.append(
            f"  load     batch {load['batch']} {_when(load['at'])} in {load['seconds']:.2f}s, {load['events']:,} events"
        )
    if build:
        how = "replayed" if build["replayed"] else "dbt"
        result = "ok" if build["success"] else "FAILED: " + "; ".join(build["failures"][:2])
        lines.append(
            f"  build    {build['build_id']} through batch {build['through_batch']} {_when(build['at'])} "
            f"in {build['seconds']:.2f}s ({how}) {result}"
        )
    if publish:
        lines.append(
            f"  publish  {publish['file']} through batch {publish['through_batch']} {_when(publish['at'])} "
            f"in {publish['seconds']:.2f}s"
        )
    if tests:
        result = "passed" if tests["success"] else "FAILED: " + "; ".join(tests["failures"][:2])
        lines.append(f"  tests    {result} through batch {tests['through_batch']} {_when(tests['at'])}")
    return lines


def _publication(publication: dict | None) -> str:
    if publication is None:
        return "publication  none yet"
    if publication.get("build_id") is None:
        return f"publication  {publication['error']}"
    return (
        f"publication  {publication['build_id']} through batch {publication['through_batch']}, data tests "
        f"passed through batch {publication['tested_through_batch']}, refreshed {_when(publication['published_at'])}"
    )


def _topics(topics: dict | None) -> list[str]:
    if topics is None:
        return ["lagging topics  -"]
    behind = sorted(((t, lag) for t, lag in topics.items() if lag["messages"]), key=lambda tl: -(tl[1]["seconds"] or 0))
    if not behind:
        return [f"lagging topics  none of {len(topics)}"]
    lines = [f"lagging topics  {len(behind)} of {len(topics)}, oldest first:"]
    lines.extend(f"  {t:<40} {lag['messages']:>9,} msgs  {_seconds(lag['seconds'])}" for t, lag in behind[:SHOWN])
    if len(behind) > SHOWN:
        lines.append(f"  and {len(behind) - SHOWN} more (--json)")
    return lines


def _counts(what: str, counts: dict | list | None) -> str:
    if counts is None:
        return f"{what}  not recorded"
    if not counts:
        return f"{what}  none"
    if isinstance(counts, dict):
        return f"{what}  " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in counts.items())
    return f"{what}  " + ", ".join(str(item) for item in counts)


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    moment = datetime.fromisoformat(stamp)
    ago = (datetime.now(UTC) - moment).total_seconds()
    return f"{moment.astimezone(UTC):%H:%M:%S} ({ago:.0f}s ago)" if ago < 86400 else f"{moment:%Y-%m-%d %H:%M} UTC"


def _seconds(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds:.0f}s"


def _size(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{size / 1024:,.1f} KiB"
