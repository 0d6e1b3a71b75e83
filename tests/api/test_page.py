"""The read API's page in a real browser (headless Debian chromium through its chromedriver), over
`mirador serve` serving publications the warehouse's own `publish()` wrote: the views list, a view's
rows filtered, sorted and paged, a new publication redrawn live without a reload, each service's data
age, and the page served from another origin, allowed or refused by MIRADOR_API_CORS_ORIGINS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

from tests.ports import free_ports
from warehouse.publish import current_publication, publish

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "api" / "page" / "index.html"
MARTS = ROOT / "dbt_project" / "models" / "marts" / "_marts.yml"
BIN = Path(sys.executable).parent
SCREENSHOT = Path(os.environ.get("MIRADOR_PAGE_SCREENSHOT", "/tmp/page.png"))

TABLES = {"orders_with_invoices": ["order_id"], "product_stock": ["product_id"]}
COLUMNS = {
    "orders_with_invoices": """order_id uuid, customer_id uuid, customer_name varchar, customer_email varchar,
        status varchar, currency varchar, line_count bigint, order_total decimal(18,2), placed_at timestamptz,
        updated_at timestamptz, invoice_id uuid, invoice_status varchar, invoice_amount decimal(12,2),
        invoice_currency varchar, invoice_due_date date, invoice_document_url varchar, is_paid boolean,
        _batch_id bigint, _built_batch bigint""",
    "product_stock": """product_id uuid, sku varchar, product_name varchar, list_price decimal(12,2),
        currency varchar, is_retired boolean, current_stock hugeint, last_movement_at timestamptz,
        event_count bigint, _batch_id bigint, _built_batch bigint""",
}
IDS = uuid.UUID("6f1c1a52-3f0e-4a3e-9a39-2f1d6c3e8b10")
CUSTOMERS = [uuid.uuid5(IDS, f"customer-{i}") for i in range(5)]
STATUSES = ["placed", "paid", "shipped", "cancelled"]
ORDERS, PRODUCTS = 45, 30


def catalog() -> dict:
    """The catalogue `mirador build` hands `publish()`: the marts' descriptions and `meta`, from their yml."""
    models = {m["name"]: m for m in yaml.safe_load(MARTS.read_text())["models"]}
    return {
        name: {
            "description": models[name]["description"],
            "meta": models[name]["config"]["meta"],
            "columns": {c["name"]: c.get("description", "") for c in models[name]["columns"]},
        }
        for name in TABLES
    }


class Shop:
    """A working file holding the two marts as dbt builds them, published with the warehouse's `publish()`."""

    def __init__(self, root: Path) -> None:
        self.published = root / "published"
        self.conn = duckdb.connect(str(root / "work.duckdb"))
        self.batch = 1
        self.conn.execute("""create schema marts; create schema loader;
            create table loader.builds (build_id varchar primary key, started_at timestamptz,
                finished_at timestamptz, through_batch bigint, selected varchar, success boolean, seconds double,
                tested boolean default true)""")
        for table, columns in COLUMNS.items():
            self.conn.execute(f"create table marts.{table} ({columns})")
        start = datetime(2026, 3, 1, 9, tzinfo=UTC)
        self.order_ids = [uuid.uuid5(IDS, f"order-{i}") for i in range(ORDERS)]
        for i, order_id in enumerate(self.order_ids):
            status = STATUSES[i % 4]
            total = Decimal(17 * i % 101) + Decimal("0.25") * (i % 4)
            self.conn.execute(
                "insert into marts.orders_with_invoices values (?, ?, ?, ?, ?, 'EUR', ?, ?, ?, ?, ?, ?, ?, 'EUR', ?, "
                "null, ?, 1, 1)",
                [
                    order_id,
                    CUSTOMERS[i % 5],
                    f"Customer {i % 5}",
                    f"c{i % 5}@example.com",
                    status,
                    1 + i % 3,
                    total,
                    start + timedelta(minutes=i),
                    start + timedelta(minutes=i),
                    uuid.uuid5(IDS, f"invoice-{i}"),
                    "paid" if status in ("paid", "shipped") else "issued",
                    total,
                    (start + timedelta(days=30)).date(),
                    status in ("paid", "shipped"),
                ],
            )
        for i in range(PRODUCTS):
            self.conn.execute(
                "insert into marts.product_stock values (?, ?, ?, ?, 'EUR', false, ?, ?, ?, 1, 1)",
                [
                    uuid.uuid5(IDS, f"product-{i}"),
                    f"SKU-{i:03d}",
                    f"Product {i}",
                    Decimal(i) + Decimal("0.99"),
                    10 * i,
                    start,
                    i,
                ],
            )

    def change_order(self, order_id: uuid.UUID, **values) -> None:
        """What a build does to a changed row: new values, stamped with the batch it read."""
        self.batch += 1
        assignments = ", ".join(f"{column} = ?" for column in values)
        self.conn.execute(
            f"update marts.orders_with_invoices set {assignments}, _batch_id = ?, _built_batch = ? where order_id = ?",
            [*values.values(), self.batch, self.batch, order_id],
        )

    def publish(self) -> str:
        build_id = f"b{self.batch:05d}-{uuid.uuid4().hex[:6]}"
        now = datetime.now(UTC).isoformat()
        self.conn.execute(
            "insert into loader.builds values (?, now(), now(), ?, '', true, 0, true)", [build_id, self.batch]
        )
        watermark = {service: {"lsn": self.batch * 100, "commit_ts": now} for service in ("inventory", "orders")}
        publish(self.conn, self.published, build_id, self.batch, TABLES, watermark, catalog=catalog())
        return build_id


def free_port() -> int:
    return free_ports(1)[0]


class ReadApi:
    """`mirador serve` as users start it, over the shop's publication directory."""

    def __init__(
        self, home: Path, published: Path, cors_origins: str, port: int | None = None, env: dict | None = None
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **(env or os.environ),
            "MIRADOR_HOME": str(home),
            "MIRADOR_PUBLISH_DIR": str(published),
            "MIRADOR_API_CORS_ORIGINS": cors_origins,
        }
        env.pop("MIRADOR_API_TOKENS", None)
        self.log_path = home / "serve.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(BIN / "mirador"), "serve", "--port", str(self.port), "--workers", "1"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_for_build(self, build_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mirador serve stopped:\n" + self.log_path.read_text())
            try:
                if httpx.get(f"{self.url}/views", timeout=2).headers.get("mirador-build") == build_id:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"build {build_id} not served within {timeout}s:\n" + self.log_path.read_text())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()


class PageHost:
    """The page's file served from another origin, as a team's own dashboard host would."""

    def __init__(self) -> None:
        handler = partial(_QuietHandler, directory=str(PAGE.parent))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Shop:
    shop = Shop(tmp_path_factory.mktemp("page-warehouse"))
    shop.first_build = shop.publish()
    yield shop
    shop.conn.close()


@pytest.fixture(scope="module")
def hosts():
    allowed, refused = PageHost(), PageHost()
    yield allowed, refused
    allowed.stop()
    refused.stop()


@pytest.fixture(scope="module")
def api(shop, hosts, tmp_path_factory) -> ReadApi:
    allowed, _ = hosts
    server = ReadApi(tmp_path_factory.mktemp("page-home"), shop.published, f'["{allowed.origin}"]')
    try:
        server.wait_for_build(shop.first_build)
        yield server
    finally:
        server.stop()


# -- what a visitor sees -------------------------------------------------------------------------


def wait_until(check, timeout: float = 10, message: str = ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - the DOM is being redrawn; look again
            last = err
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {message} {last or ''}")


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_until(
        lambda: driver.find_element("tag name", "body").get_attribute("data-ready") == "true",
        message="the page loads the views",
    )
    for view in TABLES:
        wait_until(lambda v=view: rows(driver, v), message=f"{view} shows rows")


def panel(driver, view: str):
    return driver.find_element("css selector", f'section.panel[data-view="{view}"]')


def rows(driver, view: str) -> list[dict[str, str]]:
    """The rows a view's table shows, as {column: value} (a shortened id's whole value)."""
    return driver.execute_script(
        """
        const body = document.querySelector(`section.panel[data-view="${arguments[0]}"] tbody`);
        return [...body.querySelectorAll("tr[data-key]")].map((tr) =>
            Object.fromEntries([...tr.querySelectorAll("td")].map((td) => [td.dataset.col, td.dataset.value])));
    """,
        view,
    )


def page_changes(driver, view: str, action) -> list[dict[str, str]]:
    """Do `action`, then the rows once the table shows others than before."""
    before = rows(driver, view)
    action()
    return wait_until(lambda: (now := rows(driver, view)) != before and now, message=f"{view} redraws")


def filter_by(driver, view: str, **values: str) -> None:
    section = panel(driver, view)
    for name, value in values.items():
        box = section.find_element("css selector", f'input[name="{name}"]')
        box.clear()
        box.send_keys(value)
    section.find_element("css selector", 'button[type="submit"]').click()


def test_the_page_lists_the_views(api, browser):
    open_page(browser, api.url)
    listed = {
        item.get_attribute("data-view"): item.text for item in browser.find_elements("css selector", "#views-list li")
    }
    assert set(listed) == set(TABLES)
    assert f"{ORDERS} rows" in listed["orders_with_invoices"]
    assert "Every order with its customer" in listed["orders_with_invoices"]
    assert browser.find_element("id", "build-id").text == httpx.get(f"{api.url}/views").json()["build_id"]


def test_rows_narrow_with_filters(api, browser):
    open_page(browser, api.url)
    customer = str(CUSTOMERS[2])
    shown = page_changes(
        browser, "orders_with_invoices", lambda: filter_by(browser, "orders_with_invoices", customer_id=customer)
    )
    assert len(shown) == ORDERS // 5 and {r["customer_id"] for r in shown} == {customer}
    shown = page_changes(
        browser, "orders_with_invoices", lambda: filter_by(browser, "orders_with_invoices", status="paid")
    )
    assert {(r["customer_id"], r["status"]) for r in shown} == {(customer, "paid")}
    products = page_changes(
        browser, "product_stock", lambda: filter_by(browser, "product_stock", sku__startswith="SKU-01")
    )
    assert [r["sku"] for r in products] == [f"SKU-{i:03d}" for i in range(10, 20)]


def test_a_column_header_sorts_both_ways(api, browser):
    open_page(browser, api.url)
    placed = [r["placed_at"] for r in rows(browser, "orders_with_invoices")]
    assert placed == sorted(placed, reverse=True), "the view's default order: newest first"
    header = panel(browser, "orders_with_invoices").find_element("css selector", 'th[data-col="order_total"]')
    ascending = page_changes(browser, "orders_with_invoices", header.click)
    totals = [Decimal(r["order_total"]) for r in ascending]
    assert totals == sorted(totals) and totals[0] == min(Decimal(17 * i % 101) for i in range(ORDERS))
    header = panel(browser, "orders_with_invoices").find_element("css selector", 'th[data-col="order_total"]')
    assert "▲" in header.text
    descending = page_changes(browser, "orders_with_invoices", header.click)
    totals = [Decimal(r["order_total"]) for r in descending]
    assert totals == sorted(totals, reverse=True)
    assert "▼" in panel(browser, "orders_with_invoices").find_element("css selector", 'th[data-col="order_total"]').text


def test_next_page_follows_the_cursor_to_the_last_row(api, browser):
    open_page(browser, api.url)
    section = panel(browser, "orders_with_invoices")
    seen, pages = [], 0
    while True:
        shown = rows(browser, "orders_with_invoices")
        seen += [r["order_id"] for r in shown]
        pages += 1
        button = section.find_element("css selector", "button.next")
        if not button.is_enabled():
            break
        page_changes(browser, "orders_with_invoices", button.click)
    assert pages == 3 and len(seen) == len(set(seen)) == ORDERS
    assert "last page" in section.find_element("css selector", ".status").text
    first = page_changes(browser, "orders_with_invoices", section.find_element("css selector", "button.first").click)
    assert [r["order_id"] for r in first] == seen[:20]


def test_a_new_publication_redraws_the_rows_without_a_reload(api, shop, browser):
    open_page(browser, api.url)
    wait_until(
        lambda: panel(browser, "orders_with_invoices").find_element("css selector", ".live").text == "live",
        message="the live stream is open",
    )
    browser.execute_script("window.stillThisPage = true")
    newest = rows(browser, "orders_with_invoices")[0]
    assert newest["status"] != "shipped"
    shop.change_order(uuid.UUID(newest["order_id"]), status="shipped", order_total=Decimal("999.99"))
    started = time.monotonic()
    build = shop.publish()

    def redrawn():
        row = next(r for r in rows(browser, "orders_with_invoices") if r["order_id"] == newest["order_id"])
        return row["status"] == "shipped" and row["order_total"] == "999.99"

    wait_until(redrawn, timeout=5, message="the changed row is redrawn")
    seconds = time.monotonic() - started
    assert browser.execute_script("return window.stillThisPage") is True, "the page reloaded"
    assert panel(browser, "orders_with_invoices").get_attribute("data-last-change") == build
    wait_until(lambda: browser.find_element("id", "build-id").text == build, message="the header's build")
    print(f"publication to redrawn row: {seconds:.2f}s")


def test_a_filtered_page_loses_a_row_that_stops_matching(api, shop, browser):
    open_page(browser, api.url)
    shown = page_changes(
        browser, "orders_with_invoices", lambda: filter_by(browser, "orders_with_invoices", status="placed")
    )
    wait_until(
        lambda: panel(browser, "orders_with_invoices").find_element("css selector", ".live").text == "live",
        message="the filtered stream is open",
    )
    leaving = shown[0]["order_id"]
    shop.change_order(uuid.UUID(leaving), status="cancelled")
    shop.publish()
    wait_until(
        lambda: leaving not in {r["order_id"] for r in rows(browser, "orders_with_invoices")},
        timeout=5,
        message="the cancelled order leaves the page of placed ones",
    )
    assert {r["status"] for r in rows(browser, "orders_with_invoices")} == {"placed"}


def test_each_services_data_age_ticks(api, browser):
    open_page(browser, api.url)

    def ages() -> dict[str, str]:
        return {
            chip.get_attribute("data-service"): chip.find_element("css selector", ".seconds").text
            for chip in browser.find_elements("css selector", "#freshness .age")
        }

    first = wait_until(ages, message="the freshness chips")
    assert set(first) == {"inventory", "orders"} and all(text.endswith(" s") for text in first.values()), first
    wait_until(lambda: ages()["orders"] != first["orders"], timeout=3, message="the age moves each second")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1440, height + 120)
    browser.save_screenshot(str(SCREENSHOT))
    browser.set_window_size(1440, 1400)


def test_the_order_form_offers_a_shown_customer_and_the_shown_products(api, browser):
    open_page(browser, api.url)
    form = browser.find_element("id", "order-form")
    first = rows(browser, "orders_with_invoices")[0]
    assert form.find_element("name", "customer_id").get_attribute("value") == first["customer_id"]
    offered = [o.text for o in form.find_elements("css selector", 'select[name="product"] option')]
    assert offered[:2] == ["SKU-000 · Product 0 · 0.99 EUR", "SKU-001 · Product 1 · 1.99 EUR"]
    other = rows(browser, "orders_with_invoices")[3]["customer_id"]
    panel(browser, "orders_with_invoices").find_elements("css selector", "tbody tr")[3].click()
    assert form.find_element("name", "customer_id").get_attribute("value") == other


def test_an_order_service_out_of_reach_is_said_so(api, browser):
    open_page(browser, api.url)
    form = browser.find_element("id", "order-form")
    url = form.find_element("name", "orders_url")
    url.clear()
    url.send_keys(f"http://127.0.0.1:{free_port()}")
    form.find_element("css selector", 'button[type="submit"]').click()
    result = browser.find_element("id", "order-result")
    wait_until(lambda: result.get_attribute("data-state") == "refused", message="the form gives up")
    assert "cannot reach" in result.text


def test_another_origin_listed_in_the_cors_origins_reads_the_views(api, hosts, browser):
    allowed, _ = hosts
    answer = httpx.get(f"{api.url}/views/orders_with_invoices", headers={"Origin": allowed.origin})
    assert answer.headers["access-control-allow-origin"] == allowed.origin
    open_page(browser, f"{allowed.origin}/index.html?api={api.url}")
    assert len(rows(browser, "orders_with_invoices")) == 20
    wait_until(
        lambda: panel(browser, "product_stock").find_element("css selector", ".live").text == "live",
        message="the live stream opens across origins",
    )


def test_an_origin_not_listed_is_refused_by_the_browser(api, hosts, browser):
    _, refused = hosts
    answer = httpx.get(f"{api.url}/views", headers={"Origin": refused.origin})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    browser.get(f"{refused.origin}/index.html?api={api.url}")
    wait_until(
        lambda: browser.find_element("tag name", "body").get_attribute("data-ready") == "error",
        message="the page gives up",
    )
    assert "CORS" in browser.find_element("id", "views-status").text
    outcome = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(() => done("read"), (err) => done("refused: " + err.name));
    """,
        f"{api.url}/views",
    )
    assert outcome == "refused: TypeError"
    assert browser.find_elements("css selector", "section.panel tbody tr") == []


# -- on the real stack: a command placed on the page becomes a row -------------------------------

DEV_TOKEN = {"Authorization": "Bearer mirador-dev"}


def _command(url: str, body: dict) -> dict:
    answer = httpx.post(url, json=body, headers={**DEV_TOKEN, "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@pytest.fixture
def page_port(monkeypatch) -> int:
    """The read API's port, chosen before the services start so that their CORS origins name its page."""
    port = free_port()
    monkeypatch.setenv("MIRADOR_CORS_ORIGINS", json.dumps([f"http://127.0.0.1:{port}"]))
    return port


@pytest.mark.stack
@pytest.mark.timeout(900)
def test_an_order_placed_on_the_page_becomes_its_row(browser, page_port, pipeline_env):
    env, urls, home = pipeline_env
    tag = uuid.uuid4().hex[:8]
    customer = _command(
        f"{urls['customers']}/customers", {"email": f"page-{tag}@example.com", "name": "Grace Hopper", "country": "US"}
    )
    product = _command(
        f"{urls['inventory']}/products", {"sku": f"PAGE-{tag}", "name": "Compiler", "list_price": "42.50"}
    )
    first = _command(
        f"{urls['orders']}/orders",
        {"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1, "unit_price": "42.50"}]},
    )

    run_log = home / "run.log"
    with run_log.open("w") as out:
        run = subprocess.Popen([BIN / "mirador", "run"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    published = home / "warehouse" / "published"
    api = None
    try:
        deadline = time.monotonic() + 300
        wanted = {"customers": customer, "inventory": product, "orders": first}
        while not (
            (publication := current_publication(published))
            and all(
                (publication.watermark.get(s, {}).get("lsn") or 0) >= _lsn(r["position"]["lsn"])
                for s, r in wanted.items()
            )
        ):
            assert time.monotonic() < deadline, "the views never caught up with the commands"
            assert run.poll() is None, run_log.read_text()[-3000:]
            time.sleep(0.5)
        api = ReadApi(home / "page", published, json.dumps([f"http://127.0.0.1:{page_port}"]), port=page_port, env=env)
        # The first copy holds every row the stack's topics hold (all earlier sessions' on a shared one).
        api.wait_for_build(current_publication(published).build_id, timeout=180)

        open_page(browser, f"{api.url}/?orders={urls['orders']}")
        # This scratch shop holds only the test's rows: the filtered tables may look as they did before.
        filter_by(browser, "orders_with_invoices", customer_id=customer["id"])
        wait_until(
            lambda: [r["order_id"] for r in rows(browser, "orders_with_invoices")] == [first["id"]],
            message="the customer's one order",
        )
        filter_by(browser, "product_stock", sku__startswith=f"PAGE-{tag}")
        wait_until(
            lambda: [r["sku"] for r in rows(browser, "product_stock")] == [f"PAGE-{tag}"], message="the product's stock"
        )
        form = browser.find_element("id", "order-form")
        assert form.find_element("name", "customer_id").get_attribute("value") == customer["id"]
        assert form.find_element("css selector", 'select[name="product"]').text.startswith(f"PAGE-{tag} · Compiler")
        started = time.monotonic()
        form.find_element("css selector", 'button[type="submit"]').click()

        result = browser.find_element("id", "order-result")
        wait_until(
            lambda: result.get_attribute("data-state") in ("visible", "refused", "failed"),
            timeout=60,
            message="the order is placed and read back",
        )
        assert result.get_attribute("data-state") == "visible", result.text
        seconds = time.monotonic() - started
        order_id = result.get_attribute("data-order-id")
        shown = {td.get_attribute("data-col"): td.text for td in result.find_elements("css selector", "#my-order td")}
        assert shown["order_id"] == order_id and shown["customer_id"] == customer["id"]
        assert (shown["customer_name"], shown["order_total"], shown["status"]) == ("Grace Hopper", "42.50", "placed")
        assert "visible in the views after" in result.text

        # The panel filtered on that customer follows: the new order joins it, marked as the visitor's.
        wait_until(
            lambda: {r["order_id"] for r in rows(browser, "orders_with_invoices")} == {first["id"], order_id},
            timeout=10,
            message="the new order joins the customer's page",
        )
        mine = panel(browser, "orders_with_invoices").find_elements("css selector", "tbody tr.mine")
        assert [tr.get_attribute("data-key") for tr in mine] == [json.dumps([order_id])]
        browser.save_screenshot(str(SCREENSHOT.with_name("page-order.png")))
        print(f"order placed on the page to its row read back: {seconds:.2f}s")
    finally:
        if api:
            api.stop()
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=180)
