"""The read API's contract, against `mirador serve` over publications the warehouse's `publish` wrote."""

from __future__ import annotations

import io
import json
import threading
import time
from decimal import Decimal

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

VIEW = "/views/orders_with_invoices"


def seed(warehouse, n: int = 120) -> str:
    warehouse.upsert(
        [
            {
                "order_id": f"o{i:03d}",
                "customer_id": f"c{i % 5}",
                "order_total": f"{i}.05",
                "status": ["placed", "paid", "shipped"][i % 3],
                "is_paid": i % 3 == 1,
                "placed_at": f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00Z",
                "invoice_due_date": None if i % 4 else "2026-02-29" if False else "2026-02-28",
                "invoice_document_url": None if i % 2 else f"https://docs/{i}",
            }
            for i in range(n)
        ]
    )
    return warehouse.publish()


@pytest.fixture
def api(warehouse, serve):
    build = seed(warehouse)
    server = serve(workers=2)
    server.wait_for_build(build)
    return server


def rows(server, query: str = "", **kw) -> list[dict]:
    answer = httpx.get(f"{server.url}{VIEW}?{query}", **kw)
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def test_catalogue_comes_from_the_publication(api):
    body = httpx.get(f"{api.url}/views").json()
    view = {v["name"]: v for v in body["views"]}["orders_with_invoices"]
    assert view["primary_key"] == ["order_id"] and view["default_order"] == ["-placed_at", "order_id"]
    assert view["row_count"] == 120 and view["description"] == "Every order with its invoice."
    columns = {c["name"]: c for c in view["columns"]}
    assert columns["order_total"]["type"] == "DECIMAL(18,2)" and columns["order_id"]["description"] == "The order."
    assert "_built_batch" not in columns and "_batch_id" not in columns
    assert body["watermark"]["orders"]["lsn"] == 100


def test_filters_order_fields_and_exact_values(api):
    assert {r["customer_id"] for r in rows(api, "customer_id=c1&limit=1000")} == {"c1"}
    assert len(rows(api, "customer_id__ne=c1&limit=1000")) == 96
    assert [r["order_id"] for r in rows(api, "order_total__gt=117.05&order_by=order_total")] == ["o118", "o119"]
    assert len(rows(api, "order_total__gte=117.05")) == 3 and len(rows(api, "order_total__lte=1.05")) == 2
    assert len(rows(api, "placed_at__lt=2026-01-01T00:10:00Z&limit=1000")) == 10
    assert len(rows(api, "customer_id__in=c1,c2&limit=1000")) == 48
    assert len(rows(api, "order_id__startswith=o11&limit=1000")) == 10
    assert len(rows(api, "order_id__like=O_1%25&limit=1000")) == 20  # case-insensitive, as SQLite
    assert len(rows(api, "invoice_document_url__is_null=true&limit=1000")) == 60
    assert len(rows(api, "is_paid=true&limit=1000")) == 40
    page = rows(api, "fields=order_id,order_total&order_by=-order_total&limit=2")
    assert page == [{"order_id": "o119", "order_total": "119.05"}, {"order_id": "o118", "order_total": "118.05"}]
    first = rows(api)[0]
    assert first["order_id"] == "o119" and first["placed_at"] == "2026-01-01T01:59:00Z"  # default order
    assert rows(api, "order_id=o000")[0]["invoice_due_date"] == "2026-02-28"


@pytest.mark.parametrize(
    "query, problem",
    [
        ("nope=1", "unknown_column"),
        ("order_total__between=1", "unknown_operator"),
        ("order_total=abc", "bad_value"),
        ("order_total=1.005", "bad_value"),
        ("placed_at__gt=yesterday", "bad_value"),
        ("is_paid=maybe", "bad_value"),
        ("line_count=9223372036854775808", "bad_value"),
        ("limit=0", "bad_limit"),
        ("limit=1001", "bad_limit"),
        ("limit=x", "bad_limit"),
        ("order_by=nope", "bad_order"),
        ("fields=nope", "unknown_column"),
        ("cursor=garbage", "bad_cursor"),
        ("count=maybe", "bad_count"),
        ("order_total__like=1%25", "bad_value"),
        ("after=orders:xyz", "bad_position"),
        ("format=xml", "bad_format"),
        ("customer_id=' or 1=1 --", None),
        ("order_by=order_id;drop table x", "bad_order"),
        ('customer_id__in=a",b', None),
        ("fields=order_id) from x --", "unknown_column"),
    ],
)
def test_bad_input_is_a_problem_never_a_500(api, query, problem):
    answer = httpx.get(f"{api.url}{VIEW}?{query}")
    if problem is None:  # values are bound: an injection attempt is only a value that matches nothing
        assert answer.status_code == 200 and answer.json()["rows"] == []
        return
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == f"urn:mirador:problem:{problem}"


def test_unknown_view_and_row_and_method(api):
    assert httpx.get(f"{api.url}/views/nope").json()["type"] == "urn:mirador:problem:unknown_view"
    assert httpx.get(f"{api.url}{VIEW}/o999").status_code == 404
    assert httpx.get(f"{api.url}{VIEW}/o007").json()["order_total"] == "7.05"
    assert httpx.post(f"{api.url}{VIEW}", json={}).status_code == 405


def test_composite_key(warehouse, serve):
    warehouse.conn.execute("insert into marts.order_lines values ('a,b', 1, 3, 1), ('x', 2, 5, 1)")
    server = serve()
    server.wait_for_build(warehouse.publish())
    assert httpx.get(f"{server.url}/views/order_lines/x,2").json() == {"order_id": "x", "line_no": 2, "quantity": 5}
    assert httpx.get(f"{server.url}/views/order_lines/a%252Cb,1").json()["quantity"] == 3
    assert httpx.get(f"{server.url}/views/order_lines/x").status_code == 400
    assert httpx.get(f"{server.url}/views/order_lines/x,two").status_code == 400


def test_cursor_walks_every_row_once_with_a_link_and_an_exact_count(api):
    seen, url = [], f"{api.url}{VIEW}?limit=7&count=exact&customer_id__ne=c4"
    while url:
        answer = httpx.get(url)
        body = answer.json()
        assert body["count"] == 96 and answer.headers["x-total-count"] == "96"
        seen += [r["order_id"] for r in body["rows"]]
        link = answer.headers.get("link")
        assert (link is None) == (body["next"] is None)
        url = api.url + link.split(">")[0][1:] if link else None
    assert len(seen) == len(set(seen)) == 96
    other = httpx.get(f"{api.url}{VIEW}?limit=7").json()["next"]
    assert httpx.get(f"{api.url}{VIEW}?limit=7&order_by=order_id&cursor={other}").status_code == 400


def test_cursor_walk_while_publications_change_underneath(api, warehouse):
    """Keyset on the newest publication: rows that did not change are returned once, none is skipped."""
    url, seen, round_ = f"{api.url}{VIEW}?limit=10&order_by=order_id", [], 0
    while url:
        body = httpx.get(url).json()
        seen += [r["order_id"] for r in body["rows"]]
        round_ += 1
        warehouse.upsert([{"order_id": f"n{round_:03d}", "customer_id": "c1"}])  # after every o-key
        api.wait_for_build(warehouse.publish())
        url = f"{api.url}{VIEW}?limit=10&order_by=order_id&cursor={body['next']}" if body["next"] else None
    originals = [k for k in seen if k.startswith("o")]
    assert originals == sorted(originals) and len(originals) == len(set(originals)) == 120


def test_formats_keep_decimals_exact(api):
    csv_text = httpx.get(f"{api.url}{VIEW}?order_by=order_id&limit=2", headers={"accept": "text/csv"}).text
    assert csv_text.splitlines()[1].startswith("o000,c0,placed,0.05,")
    stream = httpx.get(
        f"{api.url}{VIEW}?order_by=order_id&limit=3", headers={"accept": "application/vnd.apache.arrow.stream"}
    ).content
    table = pa.ipc.open_stream(stream).read_all()
    assert table.schema.field("order_total").type == pa.decimal128(18, 2)
    assert table.column("order_total").to_pylist() == [Decimal("0.05"), Decimal("1.05"), Decimal("2.05")]
    parquet = httpx.get(f"{api.url}{VIEW}?format=parquet&order_by=order_id&limit=3").content
    assert pq.read_table(io.BytesIO(parquet)).column("order_total").to_pylist()[2] == Decimal("2.05")


def test_etag_answers_304_until_the_view_changes(api, warehouse):
    first = httpx.get(f"{api.url}{VIEW}?limit=5")
    etag = first.headers["etag"]
    assert httpx.get(f"{api.url}{VIEW}?limit=5", headers={"if-none-match": etag}).status_code == 304
    warehouse.upsert([{"order_id": "o001", "customer_id": "c1", "status": "shipped"}])
    build = warehouse.publish()
    api.wait_for_build(build)
    again = httpx.get(f"{api.url}{VIEW}?limit=5", headers={"if-none-match": etag})
    assert again.status_code == 200 and again.headers["mirador-build"] == build


def test_read_your_writes_waits_for_the_position_without_holding_a_worker(api, warehouse):
    served = threading.Event()

    def later() -> None:
        served.wait(30)  # publish once another request was answered while all 50 waited
        warehouse.upsert([{"order_id": "new", "customer_id": "c1"}])
        warehouse.publish({"orders": {"lsn": (5 << 32) + 16, "commit_ts": "2026-01-01T00:00:00+00:00"}})

    waiting = [None] * 50

    def wait(i: int) -> None:
        waiting[i] = httpx.get(f"{api.url}{VIEW}/new?after=orders:5/10&wait=10", timeout=15)

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(50)] + [threading.Thread(target=later)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    assert httpx.get(f"{api.url}{VIEW}/o001").status_code == 200  # others are served meanwhile
    assert waiting == [None] * 50, "the waiters are still waiting for their position"
    served.set()
    for thread in threads:
        thread.join()
    assert all(a.status_code == 200 and a.json()["order_id"] == "new" for a in waiting)
    late = httpx.get(f"{api.url}{VIEW}?after=orders:9/0&wait=0.3")
    assert late.status_code == 503 and late.headers["retry-after"] == "1"
    assert late.json()["type"] == "urn:mirador:problem:not_yet_visible" and "watermark" in late.json()


def events(response, count: int, timeout: float = 10) -> list[tuple[str, str, dict]]:
    found, current = [], {}
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if line.startswith("id: "):
            current["id"] = line[4:]
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: "):
            found.append((current.get("id"), current.get("event"), json.loads(line[6:])))
            current = {}
            if len(found) >= count or time.monotonic() > deadline:
                return found
    return found


def test_live_changes_with_a_filter_and_a_resume(api, warehouse):
    with httpx.stream("GET", f"{api.url}{VIEW}/changes?customer_id=c1", timeout=20) as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        time.sleep(0.2)
        warehouse.upsert(
            [
                {"order_id": "o001", "customer_id": "c1", "status": "shipped"},  # stays in c1
                {"order_id": "o002", "customer_id": "c1"},  # moves into c1
                {"order_id": "o006", "customer_id": "c3"},  # moves out of c1
                {"order_id": "o003", "customer_id": "c3", "status": "shipped"},
            ]
        )  # never in c1
        warehouse.delete(["o011"])  # a c1 row goes
        build = warehouse.publish()
        (ready_id, ready, _), (event_id, kind, data) = events(stream, 2)
        assert ready == "ready" and kind == "change" and data["build_id"] == build
        assert sorted(k["order_id"] for k in data["upserted"]) == ["o001", "o002"]
        assert sorted(k["order_id"] for k in data["deleted"]) == ["o006", "o011"]
    with httpx.stream("GET", f"{api.url}{VIEW}/changes", headers={"last-event-id": ready_id}, timeout=20) as stream:
        ((resumed_id, kind, data),) = events(stream, 1)
        assert (resumed_id, kind, data["build_id"]) == (event_id, "change", build)
    with httpx.stream("GET", f"{api.url}{VIEW}/changes", headers={"last-event-id": "-5"}, timeout=20) as stream:
        assert events(stream, 1)[0][1] == "reset"


def test_cors_auth_health_and_metrics(warehouse, serve):
    server = serve(env={"MIRADOR_API_TOKENS": '["s3cret"]', "MIRADOR_API_CORS_ORIGINS": '["http://app.test"]'})
    assert httpx.get(f"{server.url}/readyz").status_code == 503  # nothing published
    server.wait_for_build = server.wait_for_build  # the catalogue needs the token: poll readyz instead
    seed(warehouse)
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{server.url}{VIEW}").status_code == 401
    auth = {"authorization": "Bearer s3cret"}
    allowed = httpx.get(f"{server.url}{VIEW}", headers={**auth, "origin": "http://app.test"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://app.test"
    refused = httpx.get(f"{server.url}{VIEW}", headers={**auth, "origin": "http://evil.test"})
    assert "access-control-allow-origin" not in refused.headers
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'route="rows",status="200"' in metrics and "mirador_api_publication_age_seconds" in metrics


def test_production_refuses_to_start_open(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [str(Path(sys.executable).parent / "mirador"), "serve"],
        capture_output=True,
        text=True,
        env={"MIRADOR_ENV": "production", "MIRADOR_HOME": str(tmp_path), "PATH": "/usr/bin"},
    )
    assert done.returncode == 1 and "MIRADOR_API_TOKENS" in done.stderr


def test_many_readers_while_publications_switch_see_whole_publications(api, warehouse):
    """Readers on both workers while 15 publications switch: every answer is a 200 from one publication,
    whose build its header names, never a mix of two."""
    totals: dict[str, str] = {}

    def publish(round_: int) -> str:
        warehouse.upsert(
            [
                {
                    "order_id": f"o{i:03d}",
                    "customer_id": f"c{i % 5}",
                    "order_total": f"{round_}.00",
                    "placed_at": f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00Z",
                }
                for i in range(0, 120, 3)
            ]
        )
        build = warehouse.publish()
        totals[build] = f"{round_}.00"
        return build

    api.wait_for_build(publish(1))
    failures: list[str] = []
    answers: list[tuple[str, set[str]]] = []
    done = threading.Event()

    def read(query: str) -> None:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            while not done.is_set():
                answer = client.get(f"{VIEW}?{query}")
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                    continue
                answers.append(
                    (
                        answer.headers["mirador-build"],
                        {r["order_total"] for r in answer.json()["rows"] if int(r["order_id"][1:]) % 3 == 0},
                    )
                )

    readers = [
        threading.Thread(target=read, args=(q,))
        for q in (
            "limit=1000",
            "customer_id=c0&limit=1000",
            "order_by=order_id&limit=1000&fields=order_id,order_total",
            "customer_id__in=c0,c3&limit=1000",
        )
    ]
    for reader in readers:
        reader.start()
    for round_ in range(2, 16):
        publish(round_)
        time.sleep(0.15)
    api.wait_for_build(list(totals)[-1])
    time.sleep(0.3)
    done.set()
    for reader in readers:
        reader.join()
    assert not failures, failures[:5]
    mixed = [(build, seen) for build, seen in answers if build in totals and seen != {totals[build]}]
    assert not mixed, mixed[:5]
    assert len({build for build, _ in answers} & set(totals)) >= 5, "the readers saw the publications switch"
