"""Publications that keep switching: every 1/`--rate` s, a few hundred rows of the working file's mart
change (status, `updated_at`, stamped with the new batch in `_built_batch`), the build is recorded and
`warehouse.publish.publish` applies it, as `mirador run` does after each build.

    .venv/bin/python bench/api/publisher.py --working W --published P --log L [--rate 1] [--changed 300]

Runs in its own process, holding the working file, until SIGTERM/SIGINT or `--duration`. Writes one
JSON line per publication to `--log` (build id, `published_at`, seconds it took), and a summary to
stdout at the end (publications, CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from bench.api.dataset import publish_build  # noqa: E402

CHANGE = """
update marts.orders_with_invoices set
    status = (['placed', 'paid', 'shipped', 'cancelled'])[1 + (hash(order_id, $batch) % 4)::int],
    updated_at = now(),
    _batch_id = $batch,
    _built_batch = $batch
where order_id in (
    select order_id from marts.orders_with_invoices using sample reservoir({changed} rows) repeatable ({batch}))
"""
"""The sample clause takes no bound parameters: both are integers."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--working", type=Path, required=True)
    parser.add_argument("--published", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=1.0, help="publications per second (at most)")
    parser.add_argument("--changed", type=int, default=300, help="rows each publication changes")
    parser.add_argument("--duration", type=float, default=3600.0, help="stop after this many seconds")
    parser.add_argument("--threads", type=int, default=1, help="DuckDB threads (mirador run's default is 1)")
    args = parser.parse_args()

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    conn = duckdb.connect(str(args.working), config={"threads": args.threads})
    batch = conn.execute("select coalesce(max(through_batch), 1) from loader.builds").fetchone()[0]
    published, took = 0, []
    deadline = time.monotonic() + args.duration
    interval = 1.0 / args.rate if args.rate > 0 else float("inf")
    next_at = time.monotonic()
    with args.log.open("a") as log:
        while not stopping and time.monotonic() < deadline:
            next_at += interval
            batch += 1
            started = time.perf_counter()
            conn.execute(CHANGE.format(changed=int(args.changed), batch=int(batch)), {"batch": batch})
            publication = publish_build(conn, args.published, batch)
            seconds = time.perf_counter() - started
            took.append(seconds)
            published += 1
            log.write(
                json.dumps(
                    {
                        "build_id": publication.build_id,
                        "published_at": publication.published_at,
                        "seconds": round(seconds, 4),
                        "changed": args.changed,
                    }
                )
                + "\n"
            )
            log.flush()
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            else:
                next_at = time.monotonic()  # behind: publish back to back, never in a burst
    conn.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    took.sort()
    print(
        json.dumps(
            {
                "publications": published,
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "p50_seconds": took[len(took) // 2] if took else None,
                "max_seconds": took[-1] if took else None,
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
