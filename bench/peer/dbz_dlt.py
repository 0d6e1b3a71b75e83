"""The peer: pydbzengine's Debezium embedded engine with its dlt handler loading into DuckDB.

    .venv-peer-dbz/bin/python bench/peer/dbz_dlt.py --port 25432 --slot peer_snap --mode initial_only ...

Runs in its own venv (bench/peer/run.py makes it). Captures `public.customers` of one database with
the stock `DltChangeHandler` (one `pipeline.run` per batch the engine hands over) and, after each
batch is in DuckDB, writes a line to `--out`: the time, the rows, and the emails (with each row's source
commit time, Debezium's `source.ts_ms`) of the rows that
start with `--track` (the bench's streamed rows). Stops at the end of the snapshot (`initial_only`) or
on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from pydbzengine import DebeziumJsonEngine  # noqa: E402
from pydbzengine.handlers.dlt import DltChangeHandler  # noqa: E402

COMMIT_TS = re.compile(r'"__source_ts_ms":(\d+)')


class TimedHandler(DltChangeHandler):
    """The stock handler, plus a line per batch once dlt has loaded it."""

    def __init__(self, pipeline, out, track: str | None) -> None:
        super().__init__(pipeline)
        self.out, self.emails = out, re.compile(rf'"email":"({re.escape(track)}[^"]*)"') if track else None

    def handleJsonBatch(self, records) -> None:
        emails = []
        if self.emails:
            for record in records:
                if (value := record.value()) is not None and (match := self.emails.search(text := str(value))):
                    committed = COMMIT_TS.search(text)
                    emails.append([match[1], int(committed[1]) / 1000 if committed else None])
        super().handleJsonBatch(records)
        self.out.write(json.dumps({"t": time.time(), "rows": len(records), "emails": emails}) + "\n")
        self.out.flush()


def properties(args: argparse.Namespace) -> dict[str, str]:
    return {
        "name": f"peer-{args.slot}",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": str(args.port),
        "database.user": args.user,
        "database.password": args.password,
        "database.dbname": args.dbname,
        "topic.prefix": "peer",
        "plugin.name": "pgoutput",
        "slot.name": args.slot,
        "slot.drop.on.stop": "true",
        "publication.name": "mirador",
        "publication.autocreate.mode": "disabled",
        "table.include.list": "public.customers",
        "snapshot.mode": args.mode,
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(args.workdir / "offsets.dat"),
        "offset.flush.interval.ms": "1000",
        "converter.schemas.enable": "false",
        # Tuned: larger batches (dlt's fixed cost is per batch) and the same 50 ms poll as mirador's connectors.
        "max.batch.size": str(args.batch_size),
        "max.queue.size": str(4 * args.batch_size),
        "poll.interval.ms": "50",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.add.fields": "op,source.ts_ms",
        "transforms.unwrap.delete.tombstone.handling.mode": "rewrite",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dbname", default="customers")
    parser.add_argument("--user", default="mirador_cdc")
    parser.add_argument("--password", default="mirador-dev")
    parser.add_argument("--slot", required=True)
    parser.add_argument("--mode", default="initial", help="Debezium snapshot.mode: initial_only, no_data, ...")
    parser.add_argument("--batch-size", type=int, default=20_000, help="Debezium max.batch.size")
    parser.add_argument("--workdir", type=Path, required=True, help="DuckDB file, dlt's state, offsets")
    parser.add_argument("--out", type=Path, required=True, help="a JSON line per loaded batch")
    parser.add_argument("--track", help="note the emails starting with this")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    pipeline = dlt.pipeline(
        pipeline_name=f"peer_{args.slot}",
        pipelines_dir=str(args.workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(args.workdir / "captured.duckdb")),
        dataset_name="peer",
    )
    with args.out.open("a") as out:
        out.write(json.dumps({"t": time.time(), "started": True}) + "\n")
        out.flush()
        engine = DebeziumJsonEngine(properties=properties(args), handler=TimedHandler(pipeline, out, args.track))
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        thread = threading.Thread(target=engine.run, daemon=True)
        thread.start()
        while thread.is_alive() and not stop.wait(0.2):
            pass
        engine.close()
        thread.join(timeout=30)
        out.write(json.dumps({"t": time.time(), "stopped": True}) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
