"""The archive crawl against the simulated Dropship service, into a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from dataclasses import astuple
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import pytest
from lxml import etree

from dropship_pipeline.dropship import crawl as crawl_module
from dropship_pipeline.dropship.auth import StaticToken
from dropship_pipeline.dropship.client import DropshipClient, FetchedPage, RetryPolicy
from dropship_pipeline.dropship.crawl import crawl_feed
from dropship_pipeline.dropship.models import OrderStatus, OrderStatusUpdate
from dropship_pipeline.dropship.spool import PageSpool, SpooledPage
from dropship_pipeline.errors import FeedPageError
from dropship_pipeline.simulator import Faults, SimulatorServer
from dropship_pipeline.store.batch import read_batch

TOKEN = "crawl-test-token"
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, max_total=30)


class RecordingClient:
    """The real client, recording every URL it fetches. ``after_fetch`` runs after each fetch
    and may return a body to use instead; ``rewrite`` turns every body into another."""

    def __init__(
        self,
        client: DropshipClient,
        after_fetch: Callable[[str], bytes | None] | None = None,
        rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.client = client
        self.fetched: list[str] = []
        self.after_fetch = after_fetch
        self.rewrite = rewrite

    @property
    def current_page_url(self) -> str:
        return self.client.current_page_url

    def fetch_page(self, url: str) -> FetchedPage:
        page = self.client.fetch_page(url)
        self.fetched.append(url)
        if self.rewrite is not None:
            page = FetchedPage(url, self.rewrite(page.body), page.status_code, page.content_type)
        if self.after_fetch is not None:
            replaced = self.after_fetch(url)
            if replaced is not None:
                return FetchedPage(url, replaced, page.status_code, page.content_type)
        return page


@pytest.fixture
def start(make_simulator) -> Callable[..., SimulatorServer]:
    def start_simulator(**settings: object) -> SimulatorServer:
        return make_simulator(access_token=TOKEN, **settings)

    return start_simulator


def client_for(server: SimulatorServer, **kwargs: object) -> DropshipClient:
    return DropshipClient(
        api_url=server.base_url,
        supplier_id=server.state.supplier_ids[0],
        tokens=StaticToken(TOKEN),
        retry=kwargs.pop("retry", FAST_RETRY),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def crawl(server: SimulatorServer, db: Path, **kwargs: object):
    with client_for(server) as client:
        return crawl_feed(client, db, spool_dir=db.with_suffix(".spool"), **kwargs)  # type: ignore[arg-type]


def table_counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            "events": con.execute("SELECT count(*) FROM feed_events").fetchone()[0],
            "distinct_events": con.execute(
                "SELECT count(DISTINCT entry_id) FROM feed_events"
            ).fetchone()[0],
            "orders": con.execute("SELECT count(*) FROM orders").fetchone()[0],
            "distinct_orders": con.execute(
                "SELECT count(DISTINCT order_id) FROM orders"
            ).fetchone()[0],
            "lines": con.execute("SELECT count(*) FROM order_items").fetchone()[0],
            "complete_pages": con.execute(
                "SELECT count(*) FROM feed_pages WHERE complete"
            ).fetchone()[0],
        }


def simulator_order_ids(server: SimulatorServer) -> set[str]:
    return set(server.state.order_ids())


def stored_order_ids(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT order_id FROM orders").fetchall()}


@pytest.mark.parametrize("orders", [0, 1, 50, 51])
def test_a_feed_of_0_1_50_or_51_events_is_stored_exactly_once(start, tmp_path, orders):
    server = start(initial_orders=orders)
    db = tmp_path / "feed.duckdb"

    counts = crawl(server, db)

    assert counts.events_new == orders
    assert counts.orders_new == orders
    assert counts.pages_read == max(1, -(-orders // 50))
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"] == orders
    assert stored_order_ids(db) == simulator_order_ids(server)
    # Every page but the current one is an archive, complete once stored.
    assert stored["complete_pages"] == max(0, counts.pages_read - 1)

    again = crawl(server, db)
    assert again.events_new == 0 and again.orders_new == 0
    assert again.pages_read == 1  # the current page only: archives are never fetched again


def links_last(body: bytes) -> bytes:
    """The same page with its feed-level links moved after its entries (Atom allows it)."""
    root = etree.fromstring(body)
    for link in root.findall("{*}link"):
        root.remove(link)
        root.append(link)
    return etree.tostring(root)


def test_archive_pages_with_their_links_after_the_entries_lose_nothing(start, tmp_path):
    server = start(initial_orders=260)  # 6 pages
    db = tmp_path / "feed.duckdb"

    with client_for(server) as client:
        counts = crawl_feed(
            RecordingClient(client, rewrite=links_last), db, spool_dir=tmp_path / "spool"
        )

    assert counts.orders_new == 260
    assert stored_order_ids(db) == simulator_order_ids(server)
    assert table_counts(db)["complete_pages"] == 5


def self_link_upper_case(body: bytes) -> bytes:
    root = etree.fromstring(body)
    for link in root.findall("{*}link[@rel='self']"):
        base, _, guid = link.get("href").rpartition("Pages(")
        link.set("href", f"{base}Pages({guid.upper()}")
    for feed_id in root.findall("{*}id"):
        feed_id.text = feed_id.text.upper()
    return etree.tostring(root)


def self_link_renamed(body: bytes) -> bytes:
    root = etree.fromstring(body)
    for link in root.findall("{*}link[@rel='self']"):
        link.set("href", link.get("href").replace("Pages(", "Pages(another-name-"))
    return etree.tostring(root)


@pytest.mark.parametrize("rewrite", [self_link_upper_case, self_link_renamed])
def test_a_page_whose_self_link_names_it_differently_is_not_fetched_again(start, tmp_path, rewrite):
    server = start(initial_orders=160)  # 4 pages
    db = tmp_path / "feed.duckdb"

    with client_for(server) as client:
        crawl_feed(RecordingClient(client, rewrite=rewrite), db, spool_dir=tmp_path / "spool")
        again = RecordingClient(client, rewrite=rewrite)
        counts = crawl_feed(again, db, spool_dir=tmp_path / "spool")

    assert counts.pages_read == 1
    assert again.fetched == [client.current_page_url]
    assert stored_order_ids(db) == simulator_order_ids(server)


def test_a_backfill_of_many_pages_is_stored_oldest_first_in_batches(start, tmp_path):
    server = start(initial_orders=1000)  # 20 pages
    db = tmp_path / "feed.duckdb"
    batches = []

    counts = crawl(server, db, batch_pages=3, on_batch=batches.append)

    assert counts.events_new == 1000 and counts.orders_new == 1000
    assert [batch.pages_read for batch in batches] == [1, 3, 3, 3, 3, 3, 3]
    with duckdb.connect(str(db), read_only=True) as con:
        published = [
            row[0]
            for row in con.execute("SELECT published FROM feed_events ORDER BY seq").fetchall()
        ]
        lines = con.execute(
            "SELECT order_id, sku, catalog_id, quantity, selling_price FROM order_items"
        ).fetchall()
    assert published == sorted(published)  # oldest first, across pages and within them
    expected_lines = [
        (
            order["order_id"],
            item["sku"],
            item["catalog_id"],
            item["quantity"],
            Decimal(item["selling_price"]),
        )
        for order in server.state.orders()
        for item in order["items"]
    ]
    assert sorted(lines) == sorted(expected_lines)
    assert not list(db.with_suffix(".spool").glob("*.pages"))  # the spool is emptied


def test_status_updates_in_the_feed_set_order_and_line_status(start, tmp_path):
    server = start(initial_orders=3)
    db = tmp_path / "feed.duckdb"
    crawl(server, db)
    order_id = sorted(simulator_order_ids(server))[0]

    with client_for(server) as client:
        client.order_status_update(
            OrderStatusUpdate(
                order_id=order_id,
                status=OrderStatus.Shipped,
                tracking_info="1Z999,1Z998",
                shipping_provider="UPS",
            )
        )
    counts = crawl(server, db)

    assert counts.status_events_new == 1
    with duckdb.connect(str(db), read_only=True) as con:
        status, code = con.execute(
            "SELECT status, status_code FROM orders WHERE order_id = ?", [order_id]
        ).fetchone()
        items = con.execute(
            "SELECT DISTINCT status, tracking_info, shipping_provider FROM order_items "
            "WHERE order_id = ?",
            [order_id],
        ).fetchall()
        others = con.execute(
            "SELECT DISTINCT status FROM orders WHERE order_id <> ?", [order_id]
        ).fetchall()
    assert (status, code) == ("Shipped", 2)
    assert items == [("Shipped", "1Z999,1Z998", "UPS")]
    assert others == [("PendingSupplier",)]


def test_a_page_rolling_over_between_two_polls_is_read_again_and_completed(start, tmp_path):
    server = start(initial_orders=30)
    db = tmp_path / "feed.duckdb"
    crawl(server, db)
    assert table_counts(db)["complete_pages"] == 0

    server.state.add_orders(40)  # the current page fills with 20 and rolls over
    counts = crawl(server, db)

    assert counts.events_new == 40
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"] == 70
    assert stored["complete_pages"] == 1
    assert stored_order_ids(db) == simulator_order_ids(server)


def test_a_page_rolling_over_while_a_poll_runs_loses_nothing(start, tmp_path):
    server = start(initial_orders=120)
    db = tmp_path / "feed.duckdb"
    first_fetch = True

    def roll_over(url: str) -> None:
        nonlocal first_fetch
        if first_fetch:  # right after the current page was read
            first_fetch = False
            server.state.add_orders(45)
        return None

    with client_for(server) as client:
        recording = RecordingClient(client, after_fetch=roll_over)
        crawl_feed(recording, db, spool_dir=tmp_path / "spool")
    assert table_counts(db)["events"] == 120

    crawl(server, db)
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"] == 165
    assert stored_order_ids(db) == simulator_order_ids(server)


def test_entries_repeated_on_two_pages_and_orders_redelivered_are_stored_once(start, tmp_path):
    server = start(
        faults=Faults(repeat_entry_rate=1.0, duplicate_order_rate=0.3, seed=7),
    )
    server.state.add_orders(400)
    db = tmp_path / "feed.duckdb"

    counts = crawl(server, db)

    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"]
    assert counts.events_duplicate > 0  # repeated entries were seen and skipped
    assert counts.orders_duplicate > 0  # re-delivered orders were seen and skipped
    assert stored["orders"] == stored["distinct_orders"] == 400
    assert stored_order_ids(db) == simulator_order_ids(server)


def test_rate_limits_server_errors_and_dropped_connections_mid_crawl_lose_nothing(start, tmp_path):
    server = start(
        faults=Faults(
            rate_limit_every=4, retry_after_seconds=0, server_error_every=5, drop_every=7
        ),
    )
    server.state.add_orders(600)
    db = tmp_path / "feed.duckdb"

    counts = crawl(server, db)

    assert counts.events_new == 600
    assert stored_order_ids(db) == simulator_order_ids(server)
    stats = server.state.summary()["stats"]
    assert stats["rate_limited"] > 0 and stats["server_errors"] > 0 and stats["dropped"] > 0


def test_every_fault_and_feed_variation_at_once_still_stores_each_order_once(start, tmp_path):
    server = start(
        faults=Faults(
            duplicate_order_rate=0.2,
            repeat_entry_rate=0.3,
            non_guid_entry_id_rate=0.3,
            unknown_elements=True,
            https_xsi_namespace=True,
            self_closing_empty=True,
            https_atom_namespace=True,
            json_content_type=True,
            rate_limit_every=5,
            retry_after_seconds=0,
            server_error_every=6,
            drop_every=9,
            seed=11,
        ),
    )
    server.state.add_orders(700)
    db = tmp_path / "feed.duckdb"

    first = crawl(server, db)
    server.state.add_orders(90)  # the current page rolls over between the polls
    second = crawl(server, db)

    assert first.orders_new + second.orders_new == 790
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"]
    assert stored["orders"] == stored["distinct_orders"] == 790
    assert stored_order_ids(db) == simulator_order_ids(server)
    stats = server.state.summary()["stats"]
    for fault in ("rate_limited", "server_errors", "dropped", "duplicate_orders"):
        assert stats[fault] > 0, fault


def test_a_read_timeout_mid_crawl_is_retried(start, tmp_path):
    server = start(faults=Faults(slow_rate=0.3, slow_seconds=0.5, seed=3))
    server.state.add_orders(300)
    db = tmp_path / "feed.duckdb"

    timeout = httpx.Timeout(connect=2, read=0.2, write=2, pool=2)
    with client_for(server, timeout=timeout) as client:
        counts = crawl_feed(client, db, spool_dir=tmp_path / "spool")

    assert counts.events_new == 300
    assert stored_order_ids(db) == simulator_order_ids(server)
    assert server.state.summary()["stats"]["slowed"] > 0


def test_a_parse_worker_that_stops_answering_is_replaced_by_parsing_here(
    start, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(crawl_module, "WORKER_MODULE", "dropship_pipeline_tests.silent_worker")
    monkeypatch.setattr(crawl_module, "WORKER_CHUNK_SECONDS", 0.5)
    server = start(initial_orders=400)  # 8 pages
    db = tmp_path / "feed.duckdb"

    counts = crawl(server, db, batch_pages=2, parse_workers=1)

    assert counts.orders_new == 400
    assert stored_order_ids(db) == simulator_order_ids(server)
    assert "gave no answer" in caplog.text


def test_a_parse_worker_that_stops_reading_does_not_block_the_walk(tmp_path, monkeypatch):
    """More requests than its pipe holds: the walk must go on, and closing must end."""
    monkeypatch.setattr(crawl_module, "WORKER_MODULE", "dropship_pipeline_tests.deaf_worker")
    monkeypatch.setattr(crawl_module, "WORKER_EXIT_SECONDS", 0.5)
    answers: dict[int, dict] = {}
    worker = crawl_module._Worker(tmp_path, answers, threading.Condition())
    where = SpooledPage("segment-x.pages", 0, 10, 0)
    refs = [(f"page-{n}", "http://127.0.0.1/" + "p" * 2000, where) for n in range(50)]

    sender = threading.Thread(target=lambda: [worker.send(chunk, refs) for chunk in range(20)])
    sender.start()
    sender.join(timeout=30)  # 20 requests of 100 KB: twenty times what a pipe holds
    blocked = sender.is_alive()
    closer = threading.Thread(target=worker.close)
    closer.start()
    closer.join(timeout=30)

    assert not blocked
    assert not closer.is_alive()
    assert worker.process.returncode is not None  # killed, as it never took its end of input


def test_a_malformed_page_stops_the_crawl_there_and_nothing_is_skipped(start, tmp_path):
    server = start(initial_orders=500)  # 10 pages
    db = tmp_path / "feed.duckdb"
    bad_page = server.state.page_ids()[3]  # an archive page in the middle
    broken = True

    def corrupt(url: str) -> bytes | None:
        if broken and bad_page in url:
            return b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><id>x</id>"
        return None

    with client_for(server) as client, pytest.raises(FeedPageError) as error:
        crawl_feed(RecordingClient(client, corrupt), db, spool_dir=tmp_path / "spool")
    assert bad_page in str(error.value)

    # Nothing newer than the bad page was stored, so nothing after it can be skipped.
    with duckdb.connect(str(db), read_only=True) as con:
        stored_pages = {row[0] for row in con.execute("SELECT page_id FROM feed_pages").fetchall()}
    assert bad_page not in stored_pages
    assert not stored_pages & set(server.state.page_ids()[4:])

    broken = False
    with client_for(server) as client:
        recording = RecordingClient(client, corrupt)
        crawl_feed(recording, db, spool_dir=tmp_path / "spool")
    assert any(bad_page in url for url in recording.fetched)  # fetched again, not skipped
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"] == 500


def test_a_hostile_page_fails_safely_naming_its_url(start, tmp_path):
    server = start(initial_orders=120)
    db = tmp_path / "feed.duckdb"
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = (
        f'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<feed xmlns='http://www.w3.org/2005/Atom'><id>&x;</id></feed>"
    ).encode()
    target = server.state.page_ids()[0]

    with client_for(server) as client:
        source = RecordingClient(client, lambda url: hostile if target in url else None)
        with pytest.raises(FeedPageError) as error:
            crawl_feed(source, db, spool_dir=tmp_path / "spool")
    assert target in str(error.value)
    assert "TOP-SECRET" not in str(error.value)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from dropship_pipeline.dropship import crawl as crawl_module
    from dropship_pipeline.dropship.auth import StaticToken
    from dropship_pipeline.dropship.client import DropshipClient

    base_url, db, spool, mode, after = sys.argv[1:6]
    after = int(after)
    calls = 0

    def die_after(original):
        def wrapped(*args, **kwargs):
            global calls
            result = original(*args, **kwargs)
            calls += 1
            if calls >= after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapped

    client = DropshipClient(api_url=base_url, supplier_id=14107, tokens=StaticToken(sys.argv[6]))
    if mode == "store":
        crawl_module.store_batch = die_after(crawl_module.store_batch)
    else:
        client.fetch_page = die_after(client.fetch_page)
    crawl_module.crawl_feed(client, Path(db), spool_dir=Path(spool), batch_pages=2)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "after"), [("fetch", 9), ("store", 3)])
def test_a_backfill_killed_half_way_resumes_without_refetching_or_skipping(
    start, tmp_path, mode, after
):
    server = start(initial_orders=1000)  # 20 pages
    db = tmp_path / "feed.duckdb"
    spool = tmp_path / "spool"

    child = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            server.base_url,
            str(db),
            str(spool),
            mode,
            str(after),
            TOKEN,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.returncode == -9, child.stderr  # killed, not finished

    with duckdb.connect(str(db)) as con:
        stored_before = {row[0] for row in con.execute("SELECT page_id FROM feed_pages").fetchall()}
    archive_ids = server.state.page_ids()[:-1]
    spooled_before = {pid for pid in archive_ids if PageSpool(spool).get(pid) is not None}
    if mode == "store":
        # Three batches were committed: the oldest page alone, then two pages at a time.
        assert len(stored_before) == 1 + 2 * (after - 1)
    else:
        # The current page, then archives: all but the last one fetched reached the spool.
        assert len(spooled_before) == after - 2

    with client_for(server) as client:
        recording = RecordingClient(client)
        crawl_feed(recording, db, spool_dir=spool)

    archive_fetches = [url for url in recording.fetched if "Pages(" in url]
    refetched = [url for url in archive_fetches if any(pid in url for pid in stored_before)]
    assert not refetched
    assert len(archive_fetches) == len(set(archive_ids) - stored_before - spooled_before)
    assert not list(spool.glob("*.pages"))
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"] == 1000
    assert stored_order_ids(db) == simulator_order_ids(server)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_backfill_gives_the_same_result_with_no_or_several_parse_workers(
    start, tmp_path, workers
):
    server = start(initial_orders=700)  # 14 pages, several batches
    db = tmp_path / "feed.duckdb"

    counts = crawl(server, db, batch_pages=3, parse_workers=workers)

    assert counts.events_new == 700
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"] == 700
    assert stored_order_ids(db) == simulator_order_ids(server)


def test_a_parse_worker_that_dies_leaves_its_work_to_the_crawl_itself(start, tmp_path, monkeypatch):
    from dropship_pipeline.dropship import crawl as crawl_module

    # A module that does not exist: the worker's interpreter exits at once.
    monkeypatch.setattr(crawl_module, "WORKER_MODULE", "dropship_pipeline.no_such_worker")
    server = start(initial_orders=700)
    db = tmp_path / "feed.duckdb"

    counts = crawl(server, db, batch_pages=3)

    assert counts.events_new == 700
    assert stored_order_ids(db) == simulator_order_ids(server)
    assert not list((tmp_path / "feed.spool").glob("*"))


def test_a_parse_worker_given_a_request_it_cannot_read_exits_rather_than_waits(tmp_path):
    """A worker left waiting would block the crawl once the pipe to it is full."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "dropship_pipeline.dropship.parse_worker", str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert worker.stdin is not None
        # The format of an older version: no location of the page in the spool.
        worker.stdin.write(b'{"chunk": 0, "pages": [["page-id", "http://x/Pages(page-id)"]]}\n')
        worker.stdin.flush()  # and the pipe stays open, as the crawl keeps it
        worker.wait(timeout=60)
    finally:
        worker.kill()
        worker.communicate()
    assert worker.returncode is not None


WORKER_CHILD = textwrap.dedent(
    """
    import sys
    from dropship_pipeline.dropship import parse_worker
    code = parse_worker.main([sys.argv[1]])
    print("loaded:", *sorted(m for m in ("numpy", "pandas") if m in sys.modules), file=sys.stderr)
    sys.exit(code)
    """
)


def test_a_parse_worker_parses_a_chunk_into_a_batch_without_numpy_or_pandas(tmp_path):
    """A worker that fails is covered up by the crawl parsing in process, so check it alone."""
    spool = PageSpool(tmp_path)
    page = (Path(__file__).parent / "fixtures" / "seed_feed_archive.xml").read_bytes()
    page_id = "477d9f09-2965-4452-8770-bfbc24328b21"  # what the page calls itself
    where = spool.put(page_id, page)
    spool.seal()
    request = {"chunk": 7, "pages": [[page_id, f"http://x/Pages({page_id})", *astuple(where)]]}

    done = subprocess.run(
        [sys.executable, "-c", WORKER_CHILD, str(tmp_path)],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"chunk": 7, "file": "chunk-7.batch", "failure": None}
    batch = read_batch(tmp_path / answer["file"])
    assert batch.entry_count == 1
    assert done.stderr.splitlines()[-1] == "loaded:"


BACKFILL_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from dropship_pipeline.dropship.auth import StaticToken
    from dropship_pipeline.dropship.client import DropshipClient
    from dropship_pipeline.dropship.crawl import crawl_feed

    base_url, db, spool, token = sys.argv[1:5]
    with DropshipClient(api_url=base_url, supplier_id=14107, tokens=StaticToken(token)) as client:
        counts = crawl_feed(client, Path(db), spool_dir=Path(spool), batch_pages=2)
    print(json.dumps({"events": counts.events_new, "pandas": "pandas" in sys.modules}))
    """
)


def test_in_a_backfill_a_worker_parses_the_current_page_too(start, tmp_path):
    """Built here, the current page's batch would make pyarrow import pandas at the crawl's end."""
    server = start(initial_orders=230)  # four archive pages and a current page of 30
    db = tmp_path / "feed.duckdb"
    spool = tmp_path / "spool"

    done = subprocess.run(
        [sys.executable, "-c", BACKFILL_CHILD, server.base_url, str(db), str(spool), TOKEN],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"events": 230, "pandas": False}
    assert stored_order_ids(db) == simulator_order_ids(server)
    with duckdb.connect(str(db), read_only=True) as con:
        pages = con.execute(
            "SELECT complete, entry_count FROM feed_pages ORDER BY complete"
        ).fetchall()
    assert pages == [(False, 30)] + [(True, 50)] * 4
    assert not list(spool.iterdir())


MEASURED_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from dropship_pipeline.dropship.auth import StaticToken
    from dropship_pipeline.dropship.client import DropshipClient
    from dropship_pipeline.dropship.crawl import crawl_feed

    base_url, db, spool, token = sys.argv[1:5]
    with DropshipClient(api_url=base_url, supplier_id=14107, tokens=StaticToken(token)) as client:
        counts = crawl_feed(client, Path(db), spool_dir=Path(spool), parse_workers=0)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    print(json.dumps({"events": counts.events_new, "peak_mb": peak}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_backfill_four_times_longer_needs_no_more_memory(start, tmp_path):
    """The crawl's own process, not the simulator's: memory must not follow the archive."""

    def backfill_peak(orders: int) -> float:
        server = start(initial_orders=orders)
        folder = tmp_path / str(orders)
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                MEASURED_CHILD,
                server.base_url,
                str(folder / "f.duckdb"),
                str(folder / "spool"),
                TOKEN,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        assert measured["events"] == orders
        return measured["peak_mb"]

    short = backfill_peak(15_000)  # 300 pages
    long = backfill_peak(60_000)  # 1,200 pages: 150 MB of page bodies if they were all kept

    assert long - short < 50, f"peak {short:.0f} MB for 300 pages, {long:.0f} MB for 1,200"
    assert long < 400


def test_a_backfill_of_small_pages_stays_within_the_database_memory(start, tmp_path, monkeypatch):
    """Batches of small pages fill no row group, so their rows go through DuckDB's WAL and stay
    in its memory until a checkpoint. A backfill of such batches far past the memory limit must
    not run out of it (with checkpoints at 256 MB of WAL, this one did)."""
    from dropship_pipeline.store import db as store_db

    monkeypatch.setattr(store_db, "MEMORY_LIMIT_MB", 16)
    server = start(initial_orders=8_000, page_size=20)  # batches of 50 pages: 1,000 events
    db = tmp_path / "feed.duckdb"

    counts = crawl(server, db)

    assert counts.events_new == 8_000
    stored = table_counts(db)
    assert stored["events"] == stored["distinct_events"] == 8_000
    assert stored_order_ids(db) == simulator_order_ids(server)
