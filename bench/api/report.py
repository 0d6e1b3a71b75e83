"""The printed results: the HTTP table (medians of the runs, mirador's req/s over each peer's), the
cost of a publication to each mirador process, and the live stream."""

from __future__ import annotations

import re
from pathlib import Path

from bench.api.phases import Cost, Live, Sample, median, percentile
from bench.api.servers import SCENARIOS, Server


def http_table(servers: list[Server], samples: dict[tuple[str, str], list[Sample]]) -> str:
    header = (
        f"{'server':<10} {'scenario':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'RSS MB':>7} {'pubs/s':>7} {'mirador/peer':>13} {'served after ms':>16}"
    )
    lines = [header, "-" * len(header)]
    for scenario in SCENARIOS:
        mirador = samples.get(("mirador", scenario))
        mirador_rate = median([s.result.rate for s in mirador]) if mirador else None
        for server in servers:
            runs = samples.get((server.name, scenario))
            if not runs:
                continue
            rate = median([s.result.rate for s in runs])
            ratio = (
                "" if server.name == "mirador" else (f"{mirador_rate / rate:.2f}x" if mirador_rate and rate else "-")
            )
            fresh = sorted(ms for s in runs for ms in s.fresh_ms)
            served = f"{percentile(fresh, 50):.0f} / {fresh[-1]:.0f}" if fresh else ""
            lines.append(
                f"{server.name:<10} {SCENARIOS[scenario]:<14} {rate:>9,.0f} "
                f"{median([s.result.p50_ms for s in runs]):>8.2f} {median([s.result.p99_ms for s in runs]):>8.2f} "
                f"{sum(s.result.errors for s in runs):>7} {max(s.peak_rss_mb for s in runs):>7.0f} "
                f"{median([s.publications_per_second for s in runs]):>7.2f} {ratio:>13} {served:>16}"
            )
    return "\n".join(lines)


def cost_table(cost: Cost, rows: int, changed: int) -> str:
    lines = [
        f"each publication ({changed} rows changed of {rows:,}), no requests: {cost.publications} publications "
        f"in {cost.seconds:.1f} s",
        f"  {'process':<24} {'RSS MB':>7} {'idle CPU ms/s':>14} {'CPU ms/publication':>19}",
    ]
    for role, rss, idle, cpu in cost.rows:
        lines.append(f"  {role:<24} {rss:>7.0f} {idle:>14.1f} {cpu:>19.1f}")
    return "\n".join(lines)


def live_lines(live: Live) -> str:
    held = ", ".join(f"{role} {n}" for role, n in sorted(live.held.items()))
    idle_held = ", ".join(f"{role} {n}" for role, n in sorted(live.idle_held.items()))
    grown = sum(live.rss_after.values()) - sum(live.rss_before.values())
    per = 1024 * grown / live.idle_ready if live.idle_ready else float("nan")
    rss = ", ".join(
        f"{role} {live.rss_before[role]:.0f} -> {live.rss_after[role]:.0f} MB" for role in sorted(live.rss_after)
    )
    lat, one = live.latencies_ms, live.single_ms
    return "\n".join(
        [
            f"live stream (mirador only): {live.ready:,}/{live.subscribers:,} subscribers ready; held per worker: {held}",
            f"  publication -> event at {live.ready:,} subscribers: p50 {percentile(lat, 50):.0f} ms, "
            f"p99 {percentile(lat, 99):.0f} ms, max {max(lat) if lat else float('nan'):.0f} ms; "
            f"{live.events:,} events for {live.window_publications} publications "
            f"({100 * live.coverage:.0f}% of subscribers x publications; client {live.client_cpu:.1f} CPU s)",
            f"  with 1 subscriber: p50 {percentile(one, 50):.0f} ms, p99 {percentile(one, 99):.0f} ms ({len(one)} events)",
            f"  idle: {live.idle_ready:,}/{live.idle_target:,} held ({idle_held}); RSS {rss} "
            f"(~{per:.0f} KB per subscriber); {live.failed} connections failed",
        ]
    )


APPLIED = re.compile(r"serving (\S+): (\d+) rows changed in ([\d.]+) ms \((.*)\)$")


def refresher_lines(log: Path | None) -> str:
    """How each publication reached mirador's serving copy, from its log: by the changed keys it
    carries, or compared whole (the first, a publication that copied the marts whole, or one whose
    changes count from a build older than the copy)."""
    applied = []
    for line in log.read_text(errors="replace").splitlines() if log and log.exists() else []:
        if m := APPLIED.search(line):
            applied.append((m[1], int(m[2]), float(m[3]), "compared whole" in m[4]))
    if not applied:
        return "refresher: no publication applied (log not found)"
    took = sorted(ms for _, _, ms, _ in applied[1:]) or [float("nan")]
    whole = [build for build, _, _, is_whole in applied[1:] if is_whole]
    return "\n".join(
        [
            f"refresher: {len(applied)} publications applied to the serving copy (first, whole: {applied[0][2]:,.0f} ms); "
            f"after it, p50 {percentile(took, 50):,.0f} ms, p99 {percentile(took, 99):,.0f} ms, max {took[-1]:,.0f} ms",
            f"  compared whole after the first: {len(whole)}"
            + (
                f" (from {whole[0]}; the publisher copies the marts "
                f"whole every so often, and a copy further behind than "
                f"the publication's changes reach is compared whole)"
                if whole
                else ""
            ),
        ]
    )
