"""A scenario's moving parts on the scratch stack: `mirador run`, shop traffic, and what is checked after.

After a fault a scenario measures the time from the fault to the first publication that includes every
source's changes committed by the time the fault was repaired (its watermark has reached each service
database's LSN read then). Once the traffic stops it checks what a user would: `mirador verify` is
clean; `mirador run` stops on SIGTERM with exit 0; every source row's version is in `raw` (nothing
lost); the redeliveries `raw` gained (the same change twice) only where the scenario allows them, and
staging holds one row per source row; no dead letters; the services answered no 5xx but a 503 problem
while Postgres itself was down.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg

from cdc import postgres
from cdc.config import StackSettings
from mirador.cli import COMMANDS
from mirador.home import PROJECT_ROOT
from tests.warehouse.commands import MIRADOR
from warehouse.publish import current_publication

TABLES = {
    # raw table: (service, source table, key columns, a column that changes with each version)
    "customers__customers": ("customers", "customers", ["id"], "version"),
    "orders__orders": ("orders", "orders", ["id"], "version"),
    "orders__order_lines": ("orders", "order_lines", ["order_id", "line_no"], "quantity"),
    "invoices__invoices": ("invoices", "invoices", ["id"], "version"),
    "inventory__products": ("inventory", "products", ["id"], "version"),
    "inventory__stock_events": ("inventory", "stock_events", ["stream", "version"], "quantity"),
}
DATABASE_DOWN = "503 urn:mirador:problem:database_unavailable"


@dataclass
class Scratch:
    home: Path
    settings: StackSettings
    env: dict[str, str]
    urls: dict[str, str]

    @property
    def published(self) -> Path:
        return self.home / "warehouse" / "published"

    def mirador(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [MIRADOR, *args], env=self.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout
        )

    def stack_up(self) -> None:
        """`mirador stack up`, as an operator repairs the stack: starts what is down, registers the connectors."""
        up = self.mirador("stack", "up", timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr

    def source_lsns(self, timeout: float = 120) -> dict[str, int]:
        """Each service database's current LSN, once Postgres answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                lsns = {}
                for service in {t[0] for t in TABLES.values()}:
                    with psycopg.connect(postgres.service_dsn(self.settings, service), connect_timeout=3) as conn:
                        lsns[service] = int(conn.execute("select pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])
                return lsns
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "Postgres did not answer"
                time.sleep(0.5)

    def sql(self, query: str) -> list[tuple]:
        """Rows of a query on the working warehouse file, opened read-only (once `mirador run` stopped)."""
        with duckdb.connect(str(self.home / "warehouse" / "mirador.duckdb"), read_only=True) as conn:
            return [tuple(str(v) if v is not None else None for v in row) for row in conn.execute(query).fetchall()]


class Live:
    """`mirador run` and `mirador simulate --rate 50 --duration 0` on the scratch stack, for one scenario."""

    def __init__(self, scratch: Scratch, scenario: str) -> None:
        self.scratch, self.scenario = scratch, scenario
        self.logs = PROJECT_ROOT / ".mirador" / "faults-logs" / scenario  # kept after the scratch home goes
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run: subprocess.Popen | None = None
        self.traffic: subprocess.Popen | None = None
        self.runs = 0
        self.recovery: list[float] = []
        self.seen: list[dict] = []
        self.result: dict | None = None
        self.redeliveries_before: dict[str, int] = {}

    # -- the processes ---------------------------------------------------------------------------

    @property
    def run_log(self) -> Path:
        return self.logs / f"run-{self.runs}.log"

    def start_run(self) -> None:
        if self.runs == 0:
            self.redeliveries_before = self.redeliveries()
        self.runs += 1
        with self.run_log.open("w") as out:  # a file: a pipe nobody reads would fill and block the run
            self.run = subprocess.Popen(
                [MIRADOR, "run"], env=self.scratch.env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def kill_run(self) -> None:
        assert self.run is not None and self.run.poll() is None, self.tail()
        self.run.kill()  # SIGKILL: no handler, no cleanup
        self.run.wait(timeout=60)

    def start(self, seed: int = 1) -> None:
        """The pipeline, then the traffic, and the first publication that has caught up with it."""
        self.start_run()
        with (self.logs / "simulate.out").open("w") as out:
            self.traffic = subprocess.Popen(
                [MIRADOR, "simulate", "--rate", "50", "--duration", "0", "--seed", str(seed)],
                env=self.scratch.env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.caught_up(time.monotonic(), timeout=600)

    def tail(self, chars: int = 3000) -> str:
        return self.run_log.read_text()[-chars:] if self.run_log.exists() else ""

    def close(self) -> None:
        for process in (self.traffic, self.run):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=60)

    # -- measuring -------------------------------------------------------------------------------

    def caught_up(self, since: float, timeout: float = 600) -> float:
        """Seconds from `since` (the fault) to a publication that includes every source's changes
        committed by now."""
        targets = self.scratch.source_lsns()
        deadline = time.monotonic() + timeout
        while True:
            publication = current_publication(self.scratch.published)
            marks = publication.watermark if publication else {}
            if all((marks.get(s, {}).get("lsn") or 0) >= lsn for s, lsn in targets.items()):
                return time.monotonic() - since
            assert self.run is None or self.run.poll() is None, f"`mirador run` exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"no publication caught up in {timeout:.0f}s:\n{self.tail()}"
            time.sleep(0.2)

    def recovered(self, since: float, timeout: float = 600) -> float:
        seconds = self.caught_up(since, timeout)
        self.recovery.append(round(seconds, 1))
        return seconds

    def observe(self, moment: str) -> None:
        """What `mirador status` shows now, when that command exists; else `mirador stack status`."""
        command = ["status"] if "status" in COMMANDS else ["stack", "status"]
        shown = self.scratch.mirador(*command, timeout=120)
        verdict = next((line for line in shown.stdout.splitlines() if line.strip()), shown.stderr.strip())
        self.seen.append(
            {
                "moment": moment,
                "command": f"mirador {' '.join(command)}",
                "exit": shown.returncode,
                "verdict": verdict.strip(),
            }
        )
        with (self.logs / "status.txt").open("a") as out:
            out.write(
                f"[{moment}] mirador {' '.join(command)} (exit {shown.returncode}):\n{shown.stdout}{shown.stderr}\n"
            )

    # -- the checks after a scenario --------------------------------------------------------------

    def finish(self, *, redeliveries: bool = False, database_down: bool = False, **measured: object) -> None:
        """Stop the traffic, let the pipeline catch up, and check everything a user would."""
        assert self.traffic is not None
        self.traffic.send_signal(signal.SIGTERM)
        self.traffic.wait(timeout=120)
        summary = (self.logs / "simulate.out").read_text()
        caught_up = self.caught_up(time.monotonic())
        check = self.scratch.mirador("verify", "--timeout", "300", timeout=600)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "differences" not in check.stdout, check.stdout
        assert self.run is not None
        self.run.send_signal(signal.SIGTERM)  # it finishes its cycle and exits 0, whatever it went through
        assert self.run.wait(timeout=300) == 0, self.tail()
        raw = self.raw_checks()
        errors = _five_hundreds(summary)
        self.result = {
            "scenario": self.scenario,
            "recovery_seconds": self.recovery,
            "caught_up_after_traffic_seconds": round(caught_up, 1),
            "traffic": _last_line(summary, " commands in "),
            "statuses": _last_line(summary, "statuses: "),
            "errors": errors,
            "redeliveries": raw["redeliveries"],
            "status_during_fault": self.seen,
            **measured,
        }
        assert "no answer" not in self.result["statuses"], summary[-2000:]
        allowed = {DATABASE_DOWN} if database_down else set()
        assert set(errors) <= allowed, f"5xx answers: {errors}"
        if not redeliveries:
            assert not any(raw["redeliveries"].values()), f"redeliveries where none may be: {raw['redeliveries']}"

    def redeliveries(self) -> dict[str, int]:
        """Per raw table, the changes it holds more than once (no `mirador run` may hold the file)."""
        if not (self.scratch.home / "warehouse" / "mirador.duckdb").exists():
            return {}
        present = {t for (t,) in self.scratch.sql("select table_name from duckdb_tables() where schema_name = 'raw'")}
        counts = {}
        for table, (_, _, keys, _) in TABLES.items():
            if table in present:
                identity = ", ".join([*(f"{c}::varchar" for c in keys), "coalesce(_lsn::varchar, _seq)", "_op"])
                ((twice,),) = self.scratch.sql(f'select count(*) - count(distinct [{identity}]) from raw."{table}"')
                counts[table] = int(twice)
        return counts

    def raw_checks(self) -> dict:
        """Every source row's version is in raw; staging has one row per source row; no dead letters;
        the redeliveries raw gained since the last scenario, per table."""
        scratch, gained = self.scratch, {}
        schema = dict(scratch.sql("select table_name, schema_name from duckdb_tables()"))
        deletes = {
            table for (table,) in scratch.sql("select table_name from duckdb_columns() where column_name = '_deleted'")
        }
        for table, (service, source, keys, value) in TABLES.items():
            columns = ", ".join(f"{c}::varchar" for c in [*keys, value])
            in_raw = {tuple(row) for row in scratch.sql(f'select {columns} from raw."{table}" where not _deleted')}
            with psycopg.connect(postgres.service_dsn(scratch.settings, service)) as conn:
                in_source = {
                    tuple(row)
                    for row in conn.execute(
                        f"select {', '.join(f'{c}::text' for c in [*keys, value])} from {source}"
                    ).fetchall()
                }
            missing = in_source - in_raw
            assert not missing, (
                f"{len(missing)} source rows of {source} missing from raw.{table}: {sorted(missing)[:5]}"
            )
            gained[table] = self.redeliveries().get(table, 0) - self.redeliveries_before.get(table, 0)
            model = f"stg_{service}__{source}"
            kept = "count(*) filter (where not _deleted)" if model in deletes else "count(*)"  # stock events stay
            ((staged,),) = scratch.sql(f'select {kept} from {schema[model]}."{model}"')
            assert int(staged) == len(in_source), f"{model}: {staged} rows staged, {len(in_source)} in {source}"
        ((dead,),) = scratch.sql("select count(*) from loader.dead_letters")
        assert int(dead) == 0, f"{dead} dead letters"
        return {"redeliveries": gained}


def _last_line(text: str, marker: str) -> str:
    return next((line for line in reversed(text.splitlines()) if marker in line), "")


def _five_hundreds(summary: str) -> dict[str, int]:
    """`5xx: 503 urn:...:database_unavailable 12, ...` from `mirador simulate`'s summary."""
    line = _last_line(summary, "5xx: ").removeprefix("5xx: ")
    return {m[1]: int(m[2]) for m in re.finditer(r"(\d{3} \S+) (\d+)(?:, |$)", line) if m} if line else {}
