"""Loader benchmark: real envelopes produced to Kafka, drained by `mirador load --once`, vs a naive loader.

    .venv/bin/python bench/loader/run.py [--events 1000000] [--repeats 3] [--baseline-events 20000]

Needs the stack (`mirador stack up`). Prints events/s and peak RSS of each `mirador load --once`
run (median over repeats), the naive baseline's rate on a slice of the same events in the same run
(json.loads + DuckDB `executemany`, same table layout), their ratio, and where the loader's time goes.
Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import itertools
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import duckdb
from confluent_kafka import Consumer, TopicPartition

from bench.loader.capture import capture_envelopes
from cdc.config import StackSettings
from tests.warehouse.backlog import Template, create_topic, delete_topics, produce
from warehouse.ingest.catalog import Catalog
from warehouse.ingest.configuration import LoaderSettings
from warehouse.ingest.consume import CHUNK
from warehouse.ingest.decode import Batch, Decoder
from warehouse.ingest.frames import ARROW_CHUNK, convert, prepare
from warehouse.ingest.land import Warehouse


def run_loader(topic: str, bootstrap: str, workdir: Path) -> dict:
    path = workdir / f"run-{uuid.uuid4().hex[:6]}" / "mirador.duckdb"
    env = os.environ | {
        "MIRADOR_WAREHOUSE_PATH": str(path),
        "MIRADOR_KAFKA_BOOTSTRAP": bootstrap,
        "MIRADOR_LOADER_TOPICS": json.dumps([topic]),
        "MIRADOR_LOADER_GROUP": f"bench-{uuid.uuid4()}",
    }
    started = time.perf_counter()
    log = workdir / f"{path.parent.name}.log"
    with log.open("w") as stderr_file:
        process = subprocess.Popen(
            [str(ROOT / ".venv/bin/mirador"), "load", "--once", "--no-progress"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
        )
        peak_kb = 0
        while process.poll() is None:  # VmHWM is the process's own high-water mark (ru_maxrss is not:
            peak_kb = max(peak_kb, _vm_hwm_kb(process.pid))  # it keeps the forking parent's from before exec)
            time.sleep(0.02)
    wall = time.perf_counter() - started
    stderr = log.read_text()
    if process.returncode != 0:
        raise RuntimeError(f"mirador load failed:\n{stderr[-2000:]}")
    with duckdb.connect(str(path), read_only=True) as conn:
        events = conn.execute("select sum(events) from loader.batches").fetchone()[0]
    loop = next((line for line in stderr.splitlines() if " done batches=" in line), "")
    own = float(loop.split("rate=")[1].split("/s")[0]) if "rate=" in loop else 0.0
    return {
        "events": events,
        "wall": wall,
        "rate": events / wall,
        "loop_rate": own,
        "rss_mb": peak_kb / 1024,
        "size_mb": path.stat().st_size / 1e6,
    }


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def fetch(topic: str, bootstrap: str, count: int) -> list:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list = []
    while len(messages) < count:
        messages += [m for m in consumer.consume(min(10_000, count - len(messages)), 1.0) if m.error() is None]
    consumer.close()
    return messages


def naive_baseline(topic: str, bootstrap: str, count: int, workdir: Path, columns: list[tuple[str, str]]) -> float:
    """What a first loader looks like: json.loads per message, Python conversions, executemany."""
    started = time.perf_counter()
    messages = fetch(topic, bootstrap, count)
    with duckdb.connect(str(workdir / "naive.duckdb")) as conn:
        metadata = [
            "_op VARCHAR",
            "_deleted BOOLEAN",
            "_snapshot BOOLEAN",
            "_lsn BIGINT",
            "_seq VARCHAR",
            "_txid BIGINT",
            "_commit_ts TIMESTAMPTZ",
            "_topic VARCHAR",
            "_partition INTEGER",
            "_offset BIGINT",
        ]
        conn.execute(f"create table items ({', '.join(metadata + [f'{n} {t}' for n, t in columns])})")
        rows = []
        for m in messages:
            envelope = json.loads(m.value())
            payload = envelope["payload"]
            fields = {
                f["field"]: f for f in next(f for f in envelope["schema"]["fields"] if f["field"] == "after")["fields"]
            }
            row = payload["after"] or payload["before"]
            values = []
            for name, _ in columns:
                value, schema = row.get(name), fields[name]
                if value is not None and schema.get("name") == "org.apache.kafka.connect.data.Decimal":
                    value = Decimal(int.from_bytes(base64.b64decode(value), "big", signed=True)).scaleb(
                        -int(schema["parameters"]["scale"])
                    )
                values.append(value)
            source = payload["source"]
            rows.append(
                [
                    payload["op"],
                    payload["op"] == "d",
                    source["snapshot"] != "false",
                    source["lsn"],
                    source["sequence"],
                    source["txId"],
                    datetime.fromtimestamp(source["ts_us"] / 1e6, UTC),
                    m.topic(),
                    m.partition(),
                    m.offset(),
                    *values,
                ]
            )
        conn.executemany(
            f"insert into items values ({', '.join('?' for _ in range(len(metadata) + len(columns)))})", rows
        )
    return count / (time.perf_counter() - started)


def profile(topic: str, bootstrap: str, count: int, workdir: Path) -> str:
    """Where the time goes, stage by stage, in one thread (no overlap), shaped like the loader: fetch
    `CHUNK` messages, decode them, turn them into Arrow every `ARROW_CHUNK`, land every full batch.
    Stages are timed on every other fetch, with cProfile off; cProfile's top comes from the others."""
    settings = LoaderSettings(warehouse_path=workdir / "profile" / "mirador.duckdb")
    warehouse = Warehouse(settings)
    _, raw = warehouse.read_state()
    decoder = Decoder(Catalog(raw))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 5,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    timings = {"consume": 0.0, "decode": 0.0, "arrow": 0.0}
    profiler = cProfile.Profile()
    done = timed = land = 0.0
    batch = Batch()
    for number in itertools.count():
        if done >= count:
            break
        profiled = number % 2 == 1
        t0 = time.perf_counter()
        messages = [m for m in consumer.consume(min(CHUNK, int(count - done)), 1.0) if m.error() is None]
        t1 = time.perf_counter()
        if profiled:
            profiler.enable()
        decoder.decode(messages, batch)
        t2 = time.perf_counter()
        convert(batch, ARROW_CHUNK)
        t3 = time.perf_counter()
        profiler.disable()
        done += len(messages)
        if not profiled:
            timed += len(messages)
            for stage, seconds in (("consume", t1 - t0), ("decode", t2 - t1), ("arrow", t3 - t2)):
                timings[stage] += seconds
        del messages
        if batch.messages >= settings.loader_batch_messages or done >= count:
            t4 = time.perf_counter()
            warehouse.land(prepare(batch, decoder.catalog.tables, set()))
            land += time.perf_counter() - t4
            batch = Batch()
    consumer.close()
    per_event = {stage: seconds / timed for stage, seconds in timings.items()} | {"land": land / done}
    lines = [
        f"  {stage:<7} {seconds * 1e6:6.2f} us/event  ({1 / seconds:,.0f} events/s alone)"
        for stage, seconds in per_event.items()
    ]
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
    top = [line for line in out.getvalue().splitlines() if line.strip()][-9:]
    return "\n".join(
        lines + ["  decode + arrow, top functions by own time (cProfile):"] + ["    " + line for line in top]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--profile-events", type=int, default=200_000)
    args = parser.parse_args()
    stack = StackSettings()
    bootstrap = stack.kafka_bootstrap_servers
    records = [r for r in capture_envelopes(stack) if r["value"] is not None]  # tombstones are not events
    templates = [Template(r) for r in records]
    sizes = [len(r["value"]) for r in records]
    topic = f"bench{uuid.uuid4().hex[:8]}.public.items"
    create_topic(bootstrap, topic)
    try:
        t0 = time.perf_counter()
        produce(bootstrap, topic, templates, args.events)
        produced = time.perf_counter() - t0
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the runs "
            "(other processes share the cores)"
        )
        print(
            f"produced {args.events:,} events ({', '.join(json.loads(r['value'])['payload']['op'] for r in records)}"
            f" envelopes of {min(sizes)}-{max(sizes)} bytes) to {topic} in {produced:.1f}s"
        )
        with tempfile.TemporaryDirectory(prefix="mirador-bench-") as tmp:
            workdir = Path(tmp)
            runs = []
            for number in range(args.repeats):
                runs.append(run_loader(topic, bootstrap, workdir))
                r = runs[-1]
                print(
                    f"run {number + 1}: {r['events']:,} events in {r['wall']:.2f}s = {r['rate']:,.0f} events/s "
                    f"(process wall clock; loop {r['loop_rate']:,.0f}/s), peak RSS {r['rss_mb']:.0f} MB, "
                    f"file {r['size_mb']:.0f} MB"
                )
            columns = [
                (n, t)
                for n, t in duckdb.connect(str(next(workdir.glob("run-*/mirador.duckdb"))), read_only=True)
                .execute(
                    "select column_name, data_type from duckdb_columns() where table_name = 'items' "
                    "and column_name not like '\\_%' escape '\\'"
                )
                .fetchall()
            ]
            baseline = statistics.median(
                naive_baseline(topic, bootstrap, args.baseline_events, workdir / f"naive{i}", columns)
                for i in range(args.repeats)
                if (workdir / f"naive{i}").mkdir() or True
            )
            rate = statistics.median(r["rate"] for r in runs)
            print(
                f"\nmirador load --once: median {rate:,.0f} events/s over {args.repeats} runs of {args.events:,}; "
                f"peak RSS max {max(r['rss_mb'] for r in runs):.0f} MB"
            )
            print(
                f"naive json.loads + executemany: median {baseline:,.0f} events/s on {args.baseline_events:,} "
                f"of the same events"
            )
            print(f"ratio: {rate / baseline:,.0f}x")
            print(f"\nprofile on {args.profile_events:,} events (one thread, no overlap):")
            print(profile(topic, bootstrap, min(args.profile_events, args.events), workdir))
    finally:
        delete_topics(bootstrap, [topic])


if __name__ == "__main__":
    main()
