"""The report's PNG plots (matplotlib, small files): one function per picture, each returning its file name."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SIZE, DPI = (7.5, 3.6), 90


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path.name


def _cdf(ax, values: list[float], label: str, **style) -> None:
    if not values:
        return
    ordered = sorted(values)
    ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label, **style)


def freshness_over_time(windows: list[dict], path: Path) -> str:
    fig, axes = plt.subplots(1, len(windows), figsize=(SIZE[0], 3.0), sharey=True, squeeze=False)
    for ax, window in zip(axes[0], windows, strict=True):
        probes = [p for p in window["probes"] if p.get("commit")]
        for key, label, style in (
            ("ryw", "GET, read-your-writes", {"s": 6}),
            ("poll", "GET, polling", {"s": 6, "alpha": 0.5}),
            ("loaded", "raw (loader)", {"s": 4, "alpha": 0.5}),
        ):
            points = [(p["commit"] - window["start"], p[key] - p["commit"]) for p in probes if p.get(key)]
            if points:
                ax.scatter(*zip(*points, strict=True), label=label, **style)
        ax.set_title(f"{window['rate']:.0f}/s asked, {window['reached']:.0f}/s reached", fontsize=9)
        ax.set_xlabel("seconds into the window")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("commit -> visible, s")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def freshness_distribution(windows: list[dict], path: Path) -> str:
    fig, ax = plt.subplots(figsize=SIZE)
    for window in windows:
        values = [p["ryw"] - p["commit"] for p in window["probes"] if p.get("ryw") and p.get("commit")]
        _cdf(ax, values, f"GET (read-your-writes) at {window['rate']:.0f}/s")
        raw = [p["loaded"] - p["commit"] for p in window["probes"] if p.get("loaded") and p.get("commit")]
        _cdf(ax, raw, f"raw at {window['rate']:.0f}/s", linestyle=":")
    ax.set_xlabel("commit -> visible, s")
    ax.set_ylabel("share of probes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def freshness_throughput(windows: list[dict], path: Path) -> str:
    fig, left = plt.subplots(figsize=SIZE)
    asked = [w["rate"] for w in windows]
    left.plot(asked, [w["reached"] for w in windows], "o-", label="commands/s reached")
    left.plot(asked, asked, ":", color="grey", label="asked")
    left.set_xlabel("commands/s asked")
    left.set_ylabel("commands/s reached")
    right = left.twinx()
    for key, style in (("p50", "s--"), ("p99", "^--")):
        right.plot(
            asked,
            [w["figures"]["commit_to_get_ryw"][key] for w in windows],
            style,
            color="tab:red",
            label=f"commit -> GET {key}",
        )
    right.set_ylabel("seconds", color="tab:red")
    lines = left.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    left.grid(alpha=0.3)
    return _save(fig, path)


def initial_load(progress: list[list[float]], total: int, path: Path) -> str:
    fig, ax = plt.subplots(figsize=SIZE)
    if progress:
        ax.plot([t for t, _ in progress], [n for _, n in progress], label="customer_summary rows served")
    ax.axhline(total, color="grey", linestyle=":", label=f"{total:,} seeded")
    ax.set_xlabel("seconds since the connectors were registered")
    ax.set_ylabel("rows served")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def peer_latency(mirador: dict, peer: dict, path: Path) -> str:
    fig, ax = plt.subplots(figsize=SIZE)
    _cdf(ax, mirador.get("raw_latencies", []), "mirador: commit -> raw")
    _cdf(ax, mirador.get("view_latencies", []), "mirador: commit -> view (GET)")
    _cdf(ax, peer.get("latencies", []), "peer: commit -> DuckDB")
    ax.set_xlabel(f"seconds, at {mirador.get('rate', 0):.0f} rows/s")
    ax.set_ylabel("share of rows")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def api_rates(rows: list[dict], path: Path) -> str:
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    servers = list(dict.fromkeys(r["server"] for r in rows))
    fig, ax = plt.subplots(figsize=SIZE)
    width = 0.8 / max(1, len(servers))
    for i, server in enumerate(servers):
        rates = [next((r["rps"] for r in rows if r["server"] == server and r["scenario"] == s), 0) for s in scenarios]
        ax.bar([x + i * width for x in range(len(scenarios))], rates, width, label=server)
    ax.set_xticks([x + width * (len(servers) - 1) / 2 for x in range(len(scenarios))], scenarios)
    ax.set_ylabel("requests/s")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return _save(fig, path)
