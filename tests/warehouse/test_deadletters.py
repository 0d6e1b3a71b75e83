"""`mirador deadletters`: see the dead letters, and after a fix land them exactly once, in source order.

The small scenarios produce copies of a real captured envelope (`heartbeat.jsonl`) straight to a topic
of their own and dead-letter them with `MIRADOR_LOADER_REFUSE_TYPES`; the last one runs the services.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import uuid

import duckdb
import httpx
import psycopg
import pytest
from confluent_kafka import Producer

from cdc import postgres
from mirador.home import PROJECT_ROOT
from tests.warehouse.backlog import Template, create_topic, delete_topics, produce
from tests.warehouse.captures import captured, heartbeat_template
from tests.warehouse.commands import MIRADOR, loader_env, verify
from warehouse import ledger
from warehouse.ingest.configuration import LoaderSettings
from warehouse.ingest.deadletters import replay, summary
from warehouse.ingest.land import connect
from warehouse.lock import WarehouseLock, lock_path

REFUSED = "field 'beat_at' has type 'io.debezium.time.ZonedTimestamp', refused by MIRADOR_LOADER_REFUSE_TYPES"


def mirador(env: dict, *args: str, refuse: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MIRADOR, *args],
        env=env | {"MIRADOR_LOADER_REFUSE_TYPES": refuse},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dead_letters(env: dict) -> dict:
    listed = mirador(env, "deadletters", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def landed(path) -> tuple[int, int, int, int, int]:
    """(rows, distinct offsets, distinct ids, dead letters, replayed letters) of the scratch topic."""
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = [
            r[0] for r in conn.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchall()
        ]
        rows = (0, 0, 0)
        if tables:
            (table,) = tables
            rows = conn.execute(
                f'select count(*), count(distinct _offset), count(distinct id) from raw."{table}"'
            ).fetchone()
        dead = conn.execute("select count(*) from loader.dead_letters").fetchone()[0]
        replayed = conn.execute("select count(*) from loader.replayed_letters").fetchone()[0]
    return (*rows, dead, replayed)


def _dead_heartbeat(settings, offset: int) -> dict:
    """A warehouse holding one dead letter: a captured heartbeat change, as an older release refused it."""
    record = heartbeat_template()
    with connect(settings.warehouse, settings) as conn:
        ledger.create(conn)
        conn.execute(
            "insert into loader.dead_letters values (?, 0, ?, ?, ?, 'an older reason', 'decode', 3, now())",
            [record["topic"], offset, record["key"].encode(), record["value"].encode()],
        )
    return record


def test_a_warehouse_from_before_replays_lists_and_replays_its_dead_letters(loader_settings):
    record = _dead_heartbeat(loader_settings, 41)
    with duckdb.connect(str(loader_settings.warehouse)) as conn:
        conn.execute("drop table loader.replayed_letters")  # as an older loader left it
    listed = summary(loader_settings)  # read-only: the file is left as it was
    assert (listed["dead_letters"], listed["replayed"], listed["groups"][0]["reason"]) == (1, 0, "an older reason")
    report = replay(loader_settings)
    assert (report.tried, report.replayed, report.tables, report.still_dead) == (
        1,
        1,
        {"fixtures__mirador__heartbeat"},
        {},
    )
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        assert conn.execute("select _topic, _offset, id from raw.fixtures__mirador__heartbeat").fetchall() == [
            (record["topic"], 41, 1)
        ]
        assert conn.execute(
            'select "offset", reason, dead_batch_id, batch_id from loader.replayed_letters'
        ).fetchall() == [(41, "an older reason", 3, report.batches[0])]
    assert summary(loader_settings) | {"warehouse": None} == {
        "warehouse": None,
        "dead_letters": 0,
        "replayed": 1,
        "groups": [],
    }


def test_a_page_stops_once_its_values_pass_the_batch_bytes(loader_settings):
    for offset in (3, 1, 2):
        _dead_heartbeat(loader_settings, offset)
    report = replay(loader_settings.model_copy(update={"loader_batch_bytes": 1}))
    assert (report.replayed, len(report.batches)) == (3, 3)
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        landed = conn.execute("select _offset, _batch_id from raw.fixtures__mirador__heartbeat order by _offset")
        assert landed.fetchall() == list(zip((1, 2, 3), report.batches, strict=True))  # in source order


def test_a_transaction_and_its_changes_replay_into_their_tables(loader_settings):
    records = captured("transaction")
    with connect(loader_settings.warehouse, loader_settings) as conn:
        ledger.create(conn)
        for r in records:
            conn.execute(
                "insert into loader.dead_letters values (?, ?, ?, ?, ?, 'refused', 'decode', 1, now())",
                [r["topic"], r["partition"], r["offset"], (r["key"] or "").encode() or None, r["value"].encode()],
            )
    report = replay(loader_settings)
    assert (report.tried, report.replayed, report.still_dead) == (len(records), len(records), {})
    changes = [r["offset"] for r in records if r["topic"] == "fixtures.public.all_types"]
    markers = [r["offset"] for r in records if r["topic"] == "fixtures.transaction"]
    with duckdb.connect(str(loader_settings.warehouse), read_only=True) as conn:
        raw = conn.execute("select _offset from raw.fixtures__all_types order by 1").fetchall()
        transactions = conn.execute('select status, "offset" from loader.transactions order by 2').fetchall()
    assert [o for (o,) in raw] == changes
    assert transactions == [("BEGIN", markers[0]), ("END", markers[1])]


@pytest.mark.stack
def test_a_replay_waits_for_mirador_run_to_hand_the_file_over(tmp_path, simulated_home):
    warehouse, _, env = simulated_home
    settings = LoaderSettings(warehouse_path=warehouse)
    _dead_heartbeat(settings, 7)
    log = tmp_path / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen([MIRADOR, "run"], env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not lock_path(warehouse).exists() or "mirador run" not in lock_path(warehouse).read_text():
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        replayed = mirador(env, "deadletters", "replay")
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "waiting for mirador run" in replayed.stderr and "replayed 1 of 1" in replayed.stdout
        # the pipeline took the file back, and hands it over again to the next query
        check = mirador(env, "sql", "--csv", "select _offset, id from raw.fixtures__mirador__heartbeat")
        assert check.returncode == 0 and check.stdout.splitlines() == ["_offset,id", "7,1"], check.stderr
        assert run.poll() is None, log.read_text()[-3000:]
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=120)
    output = log.read_text()
    assert run.returncode == 0, output[-3000:]
    handed = output.index("handing the warehouse file over to mirador deadletters replay")
    assert "took the warehouse file back" in output[handed:], output[-3000:]


@pytest.fixture
def beats(stack_settings, loader_settings):
    """A scratch topic of heartbeat row changes and a loader environment on it, with a scratch home for
    the status file: (env, topic, bootstrap)."""
    bootstrap = stack_settings.kafka_bootstrap_servers
    topic = f"dead{uuid.uuid4().hex[:8]}.public.beats"
    create_topic(bootstrap, topic)
    home = str(loader_settings.warehouse.parent.parent)
    env = loader_env(
        loader_settings,
        [topic],
        MIRADOR_HOME=home,
        MIRADOR_KAFKA_BOOTSTRAP=bootstrap,
        MIRADOR_LOADER_BATCH_MESSAGES="2500",
    )
    yield env, topic, bootstrap
    delete_topics(bootstrap, [topic])


@pytest.mark.stack
def test_what_still_fails_stays_with_its_new_reason_and_exits_4(beats, loader_settings):
    env, topic, bootstrap = beats
    missing = mirador(env, "deadletters", "replay")
    assert missing.returncode == 1 and missing.stderr.strip().startswith("error: no warehouse at"), missing.stderr

    template = Template(heartbeat_template())
    produce(bootstrap, topic, [template], 5)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value=b'{"schema": not json', key=b"x")
    assert producer.flush(30) == 0
    produce(bootstrap, topic, [template], 5, first_id=6)
    load = mirador(env, "load", "--once", "--no-progress", refuse="io.debezium.time.ZonedTimestamp")
    assert load.returncode == 0, load.stderr

    found = dead_letters(env)
    assert set(found) == {"warehouse", "dead_letters", "replayed", "groups"}
    assert found["dead_letters"] == 11 and found["replayed"] == 0
    refused, corrupt = found["groups"]
    assert set(refused) == {
        "topic",
        "partition",
        "reason",
        "stage",
        "count",
        "first_offset",
        "last_offset",
        "first_loaded_at",
        "last_loaded_at",
    }
    assert (refused["topic"], refused["partition"], refused["reason"], refused["stage"]) == (
        topic,
        0,
        REFUSED,
        "decode",
    )
    assert (refused["count"], refused["first_offset"], refused["last_offset"]) == (10, 0, 10)
    assert (corrupt["count"], corrupt["first_offset"], corrupt["last_offset"]) == (1, 5, 5)
    assert corrupt["reason"].startswith("not JSON")
    assert refused["first_loaded_at"] <= refused["last_loaded_at"] and refused["first_loaded_at"].endswith("+00:00")
    text = mirador(env, "deadletters", "list")
    assert f"{topic}[0]: 10 at offsets 0..10" in text.stdout and REFUSED in text.stdout, text.stdout

    # Another setting refuses another field of the same messages: they stay, with the new reason.
    again = mirador(env, "deadletters", "replay", refuse="int32")
    assert again.returncode == 4, again.stdout + again.stderr
    assert "replayed 0 of 11 dead letters" in again.stdout, again.stdout
    reasons = {g["reason"]: g["count"] for g in dead_letters(env)["groups"]}
    assert reasons == {
        "field 'id' has type 'int32', refused by MIRADOR_LOADER_REFUSE_TYPES": 10,
        corrupt["reason"]: 1,
    }

    # Lifted, only those of the reason asked for are tried; the corrupt message is not.
    fixed = mirador(env, "deadletters", "replay", "--topic", topic, "--reason", "'int32'")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "replayed 10 of 10 dead letters" in fixed.stdout, fixed.stdout
    assert landed(loader_settings.warehouse) == (10, 10, 10, 1, 10)
    other = mirador(env, "deadletters", "replay", "--topic", "no.such.topic")
    assert other.returncode == 0 and "replayed 0 of 0" in other.stdout, other.stdout + other.stderr

    still = mirador(env, "deadletters", "replay")
    assert still.returncode == 4, still.stdout + still.stderr
    assert f"1: {corrupt['reason']}" in still.stdout, still.stdout
    assert landed(loader_settings.warehouse) == (10, 10, 10, 1, 10)
    status = json.loads((loader_settings.warehouse.parent.parent / "run" / "pipeline.json").read_text())
    assert status["dead_letters"] == {topic: 1}  # what `mirador status` shows

    # While another process holds the warehouse past the lock timeout: transient, run again later.
    with WarehouseLock(loader_settings.warehouse, "the test"):
        held = mirador(env | {"MIRADOR_LOADER_LOCK_TIMEOUT": "1"}, "deadletters", "replay")
    error = held.stderr.strip().splitlines()[-1]
    assert held.returncode == 3 and error.startswith("error: ") and "still held by the test" in error, held.stderr
    assert "Traceback" not in held.stderr


@pytest.mark.stack
def test_a_replay_killed_9_and_run_again_lands_each_offset_once(beats, loader_settings):
    env, topic, bootstrap = beats
    count = 60_000
    produce(bootstrap, topic, [Template(heartbeat_template())], count)
    load = mirador(env, "load", "--once", "--no-progress", refuse="io.debezium.time.ZonedTimestamp")
    assert load.returncode == 0, load.stderr
    assert landed(loader_settings.warehouse) == (0, 0, 0, count, 0)

    rng, kills = random.Random(21), 0
    log = loader_settings.warehouse.parent / "replay.log"
    while kills < 3:
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [MIRADOR, "deadletters", "replay"], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + 120
        while "replayed batch=" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is not None:
            break  # it finished first: the run below checks that nothing more lands
        process.kill()  # SIGKILL: mid-page, mid-commit or between pages
        process.wait()
        kills += 1
        rows, offsets, ids, dead, replayed = landed(loader_settings.warehouse)
        assert rows == offsets == ids == replayed and rows + dead == count, (kills, rows, offsets, ids, dead, replayed)
        assert rows < count, "the replay finished before it was killed"
    assert kills >= 2
    final = mirador(env, "deadletters", "replay")
    assert final.returncode == 0, final.stdout + final.stderr
    assert landed(loader_settings.warehouse) == (count, count, count, 0, count)
    assert mirador(env, "deadletters", "replay").stdout.startswith("replayed 0 of 0 dead letters")


# -- The services' tables, dead-lettered and replayed -------------------------------------------------

TOKEN = {"Authorization": "Bearer mirador-dev"}
REFUSE_SERVICES = "io.debezium.time.Date,org.apache.kafka.connect.data.Decimal"
"""Invoices (their due date and amount), order lines and products (their prices) go to the dead letters."""


def _command(method: str, url: str, json: dict | None = None) -> dict:
    headers = {**TOKEN, "Idempotency-Key": str(uuid.uuid4())}
    response = httpx.request(method, url, json=json, headers=headers, timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _load_until(env: dict, warehouse, refuse: str, query: str, params: list, timeout: float = 180) -> None:
    """`load --once` until `query` counts something: Debezium takes a moment to capture a command."""
    deadline = time.monotonic() + timeout
    while True:
        load = mirador(env, "load", "--once", "--no-progress", refuse=refuse, timeout=600)
        assert load.returncode == 0, load.stderr[-3000:]
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            try:
                if conn.execute(query, params).fetchone()[0]:
                    return
            except duckdb.CatalogException:
                pass  # its raw table is not there yet
        assert time.monotonic() < deadline, f"never true after loading: {query} {params}"
        time.sleep(1)


def _dead(topic: str) -> str:
    return f"select count(*) from loader.dead_letters where topic = '{topic}' and contains(decode(value), ?)"


@pytest.mark.stack
def test_replayed_tables_end_equal_to_postgres_and_verify_passes(pipeline_env, stack_settings):
    env, urls, home = pipeline_env
    warehouse = home / "warehouse" / "mirador.duckdb"
    tag = uuid.uuid4().hex[:8]
    customer = _command(
        "POST", f"{urls['customers']}/customers", {"email": f"dl-{tag}@example.com", "name": "Dee", "country": "FR"}
    )
    product = _command(
        "POST", f"{urls['inventory']}/products", {"sku": f"DL-{tag}", "name": "Letter", "list_price": "9.50"}
    )
    lines = [{"product_id": product["id"], "quantity": q, "unit_price": "9.50"} for q in (1, 2)]
    first = _command("POST", f"{urls['orders']}/orders", {"customer_id": customer["id"], "lines": lines})
    other = _command("POST", f"{urls['orders']}/orders", {"customer_id": customer["id"], "lines": lines[:1]})
    lines_of = "select count(*) from raw.orders__order_lines where order_id = ?::uuid"
    _load_until(env, warehouse, "", lines_of, [other["id"]])  # the history so far lands as it is

    # Refused: new invoices (one with a document URL Postgres keeps out of line, TOASTed), a line
    # deleted, a product changed twice.
    noise = "".join(random.Random(tag).choices("abcdefghijklmnopqrstuvwxyz0123456789", k=1960))
    url = f"https://invoices.example.com/{noise}.pdf"
    due = {"amount": "19.00", "due_date": "2027-01-31"}
    invoice = _command(
        "POST",
        f"{urls['invoices']}/invoices",
        {"order_id": first["id"], **due, "document_url": f"https://x.example.com/{tag}"},
    )
    toasted = _command("POST", f"{urls['invoices']}/invoices", {"order_id": other["id"], **due, "document_url": url})
    _command("DELETE", f"{urls['orders']}/orders/{first['id']}/lines/2")
    _command("PATCH", f"{urls['inventory']}/products/{product['id']}", {"name": "Dead Letter"})
    _load_until(env, warehouse, REFUSE_SERVICES, _dead("invoices.public.invoices"), [toasted["id"]])
    _command("POST", f"{urls['invoices']}/invoices/{invoice['id']}/pay", {})
    _command("PATCH", f"{urls['inventory']}/products/{product['id']}", {"list_price": "12.25"})
    paid = _dead("invoices.public.invoices").replace("count(*)", "count(*) >= 2")
    _load_until(env, warehouse, REFUSE_SERVICES, paid, [invoice["id"]])

    # Lifted: later changes of the same keys land while the earlier ones are still dead, and a build runs.
    _command("POST", f"{urls['invoices']}/invoices/{toasted['id']}/pay", {})  # its URL unchanged: not sent
    _command("POST", f"{urls['inventory']}/products/{product['id']}/retire", {})
    retired = "select count(*) from raw.inventory__products where id = ?::uuid and retired_at is not null"
    _load_until(env, warehouse, "", retired, [product["id"]])
    _load_until(env, warehouse, "", "select count(*) from raw.invoices__invoices where id = ?::uuid", [toasted["id"]])
    assert mirador(env, "build").returncode == 0
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute(
            "select document_url, status from staging.stg_invoices__invoices where invoice_id = ?", [toasted["id"]]
        ).fetchone() == (None, "paid")  # its URL is only in the dead letters yet

    replayed = mirador(env, "deadletters", "replay", timeout=600)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert dead_letters(env)["dead_letters"] == 0
    build = mirador(env, "build", timeout=600)
    assert build.returncode == 0 and "built " in build.stdout, build.stdout + build.stderr

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for (table,) in conn.execute("select table_name from duckdb_tables() where schema_name = 'raw'").fetchall():
            rows, offsets = conn.execute(
                f'select count(*), count(distinct (_topic, _partition, _offset)) from raw."{table}"'
            ).fetchone()
            assert rows == offsets, table
        staged = {
            "invoices": conn.execute(
                "select invoice_id::varchar, status, document_url, amount::varchar from staging.stg_invoices__invoices "
                "where invoice_id in (?, ?) order by invoice_id",
                [invoice["id"], toasted["id"]],
            ).fetchall(),
            "order_lines": conn.execute(
                "select order_id::varchar, line_no, quantity, unit_price::varchar from staging.stg_orders__order_lines "
                "where order_id in (?, ?) and not _deleted order by order_id, line_no",
                [first["id"], other["id"]],
            ).fetchall(),
            "products": conn.execute(
                "select product_id::varchar, product_name, list_price::varchar, retired_at is not null "
                "from staging.stg_inventory__products where product_id = ?",
                [product["id"]],
            ).fetchall(),
        }
        view = conn.execute(
            "select line_count, invoice_document_url, is_paid from marts.orders_with_invoices where order_id = ?",
            [other["id"]],
        ).fetchone()
    assert staged == _in_postgres(stack_settings, invoice["id"], toasted["id"], first["id"], other["id"], product["id"])
    assert view == (1, url, True)
    verify(env)
    assert dead_letters(env)["groups"] == []


def _in_postgres(stack_settings, invoice: str, toasted: str, first: str, other: str, product: str) -> dict:
    def rows(database: str, query: str, params: list) -> list[tuple]:
        with psycopg.connect(postgres.service_dsn(stack_settings, database)) as conn:
            return [tuple(row) for row in conn.execute(query, params).fetchall()]

    return {
        "invoices": rows(
            "invoices",
            "select id::text, status, document_url, amount::text from invoices where id in (%s, %s) order by id",
            [invoice, toasted],
        ),
        "order_lines": rows(
            "orders",
            "select order_id::text, line_no, quantity, unit_price::text from order_lines "
            "where order_id in (%s, %s) order by order_id, line_no",
            [first, other],
        ),
        "products": rows(
            "inventory",
            "select id::text, name, list_price::text, retired_at is not null from products where id = %s",
            [product],
        ),
    }
