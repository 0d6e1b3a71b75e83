"""Build cost against table size: the same small change set built at 100k and at 1M source rows.

    .venv/bin/python bench/freshness/build_cost.py [--sizes 33334 333334] [--changes 200] [--repeats 3]

A simulated orders service (tests/dbt_project/changelog.py) fills the raw changelog with N orders and
about 2N lines, and a full build runs once. Each repeat then lands `--changes` random commands as one
batch, without truncates (after one, every order is rebuilt, by design). It times an incremental `dbt
build` (models and tests), then another change set with the models only (what most `mirador run`
cycles do), and the publication, by changes after each build and whole. Prints medians per size (and
per replayed model) and the ratio between sizes: incremental work should follow the rows changed, not
the table.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mirador.logs import only_to
from tests.dbt_project.changelog import Changelog
from warehouse.build.builder import Builder
from warehouse.ingest.land import connect
from warehouse.publish import publish
from warehouse.runtime.configuration import PipelineSettings


def fill(source: Changelog, conn: duckdb.DuckDBPyConnection, orders: int) -> None:
    """N orders with two lines each, landed in batches of 50k events."""
    for _ in range(orders):
        source.create()
        source.add_line_to(source.last_order)
        source.add_line_to(source.last_order)
        if len(source.pending) >= 50_000:
            source.flush(conn)
    source.flush(conn)


class ModelTimes(logging.Handler):
    """Collects the replay's per-model wall times from its debug log ("replayed X in Ys")."""

    PATTERN = re.compile(r"replayed (\S+) in ([\d.]+)s")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, list[float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if match := self.PATTERN.match(record.getMessage()):
            self.seconds.setdefault(match.group(1), []).append(float(match.group(2)))


def recordings_log_to(handler: ModelTimes):
    """The replay's debug log, to `handler` only, while the block runs."""
    return only_to(logging.getLogger("warehouse.build.recordings"), handler, logging.DEBUG)


def measure(size: int, changes: int, repeats: int, workdir: Path) -> dict:
    path = workdir / f"w{size}.duckdb"
    settings = PipelineSettings(home=workdir, warehouse_path=path)
    source = Changelog(random.Random(size))
    started = time.perf_counter()
    with duckdb.connect(str(path)) as conn:
        fill(source, conn, size)
    landed = time.perf_counter() - started
    builder = Builder(settings)
    first = builder.build(lambda: connect(path, settings))
    assert first.success, first.failures
    builds, runs, publishes, wholes = [], [], [], []
    models = ModelTimes()
    with recordings_log_to(models):
        for _ in range(repeats):
            for tests, times in ((True, builds), (False, runs)):
                for _ in range(changes):
                    source.step(truncates=False)  # a truncate rebuilds everything after it, by design
                with duckdb.connect(str(path)) as conn:
                    source.flush(conn)
                result = builder.build(lambda: connect(path, settings), tests=tests)
                assert result.success, result.failures
                times.append(result.seconds)
                with connect(path, settings) as conn:
                    t0 = time.perf_counter()
                    publish(
                        conn,
                        workdir / f"published{size}",
                        result.build_id,
                        result.through_batch,
                        builder.project.exposed,
                        result.watermark,
                        keep=settings.publish_keep,
                    )
                    publishes.append(time.perf_counter() - t0)
            with connect(path, settings) as conn:
                t0 = time.perf_counter()
                publish(
                    conn,
                    workdir / f"whole{size}",
                    result.build_id,
                    result.through_batch,
                    builder.project.exposed,
                    result.watermark,
                    rewrite_every=1,
                )
                wholes.append(time.perf_counter() - t0)
    # As `mirador run` publishes: the first publications copy the current file, then `publish_keep` older
    # ones are kept and each new one is the oldest, brought up to date in place (ADR 17).
    steady = publishes[settings.publish_keep + 1 :] or publishes[1:] or publishes
    return {
        "size": size,
        "land_s": landed,
        "full_build_s": first.seconds,
        "build_s": statistics.median(builds),
        "run_s": statistics.median(runs),
        "publish_s": statistics.median(steady),
        "whole_s": statistics.median(wholes),
        "models": {name: statistics.median(seconds) for name, seconds in sorted(models.seconds.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[33_334, 333_334],
        help="orders; each has two lines, so 33,334 orders are about 100k source rows",
    )
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mirador-build-cost-") as workdir:
        for size in args.sizes:
            row = measure(size, args.changes, args.repeats, Path(workdir))
            rows.append(row)
            print(
                f"{size:>9,} orders (~{3 * size:,} source rows): full build {row['full_build_s']:6.2f}s | "
                f"incremental build of {args.changes} changes, median of {args.repeats}: "
                f"{row['build_s']:5.2f}s with tests, {row['run_s']:5.2f}s models only | "
                f"publish by changes {row['publish_s']:5.2f}s, whole {row['whole_s']:5.2f}s",
                flush=True,
            )
            print(
                "  replayed, median per model: "
                + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in row["models"].items())
                if row["models"]
                else "  replayed: none (the first two builds after the full one go through dbt to record)",
                flush=True,
            )
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        print(
            f"ratio {large['size'] // small['size']}x the rows: incremental build "
            f"{large['build_s'] / small['build_s']:.2f}x with tests, {large['run_s'] / small['run_s']:.2f}x "
            f"models only, publish {large['publish_s'] / small['publish_s']:.2f}x by changes, "
            f"{large['whole_s'] / small['whole_s']:.2f}x whole"
        )


if __name__ == "__main__":
    main()
