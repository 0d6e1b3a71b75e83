"""Build cost of the stock event stream against its length: the same small change set at 100k and 1M events.

    .venv/bin/python bench/freshness/stream_cost.py [--sizes 100000 1000000] [--products 1000] [--changes 200]

A simulated inventory service (tests/dbt_project/changelog.py) appends increase and decrease
events over `--products` streams, with redeliveries and now and then an event landing a batch late,
and a full build runs once. Each of `--repeats` change sets is then landed as one batch and built
with the models only (replayed, as most `mirador run` cycles are). Prints the median build and the
median per model for each size, and the ratio between sizes: `stock_movements` appends new
movements, so its work should follow the events added, not the length of the streams.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.freshness.build_cost import ModelTimes, recordings_log_to
from tests.dbt_project.changelog import StockSource
from warehouse.build.builder import Builder
from warehouse.ingest.land import connect
from warehouse.runtime.configuration import PipelineSettings


def measure(events: int, products: int, changes: int, repeats: int, workdir: Path) -> dict:
    path = workdir / f"s{events}.duckdb"
    settings = PipelineSettings(home=workdir, warehouse_path=path)
    source = StockSource(random.Random(events), products=products)
    started = time.perf_counter()
    with duckdb.connect(str(path)) as conn:
        for number in range(events):
            source.step()
            if len(source.pending) >= 100_000 or number == events - 1:
                source.flush(conn)
    landed = time.perf_counter() - started
    builder = Builder(settings)
    first = builder.build(lambda: connect(path, settings))
    assert first.success, first.failures
    builds = []
    models = ModelTimes()
    with recordings_log_to(models):
        for _ in range(repeats + 2):  # dbt runs twice before the models replay
            for _ in range(changes):
                source.step()
            with duckdb.connect(str(path)) as conn:
                source.flush(conn)
            result = builder.build(lambda: connect(path, settings), tests=False)
            assert result.success, result.failures
            if result.replayed:
                builds.append(result.seconds)
    return {
        "events": events,
        "land_s": landed,
        "full_build_s": first.seconds,
        "build_s": statistics.median(builds),
        "models": {name: statistics.median(seconds) for name, seconds in sorted(models.seconds.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="events in the streams")
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mirador-stream-cost-") as workdir:
        for size in args.sizes:
            row = measure(size, args.products, args.changes, args.repeats, Path(workdir))
            rows.append(row)
            print(
                f"{size:>10,} events over {args.products:,} products: full build {row['full_build_s']:6.2f}s | "
                f"{args.changes} changes, replayed, median of {args.repeats}: {row['build_s'] * 1000:5.0f} ms | "
                + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in row["models"].items()),
                flush=True,
            )
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        ratios = ", ".join(
            f"{name} {large['models'][name] / small['models'][name]:.2f}x"
            for name in large["models"]
            if name in small["models"]
        )
        print(
            f"ratio {large['events'] // small['events']}x the events: build "
            f"{large['build_s'] / small['build_s']:.2f}x ({ratios})"
        )


if __name__ == "__main__":
    main()
