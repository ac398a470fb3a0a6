"""The inbox on a real DuckDB file: orders and lines follow the feed's status entries."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from dropship_pipeline.dropship.atom import read_page
from dropship_pipeline.store.batch import PageBatch, build_batch
from dropship_pipeline.store.db import connect
from dropship_pipeline.store.inbox import store_batch, store_pages

FEED = "https://dropshiprc.iqmetrix.net/v1/Suppliers(14107)/Notifications"
ORDER = "5d7c1a52-7c1e-4d0e-9a55-0f2b8c1d9e01"
NS = 'xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:iQmetrix:dropship"'


def created(skus: tuple[str, ...] = ("SKU-A", "SKU-B")) -> str:
    lines = "".join(
        f"<order-item><quantity>2</quantity><selling-price>9.5</selling-price><sku>{sku}</sku>"
        "</order-item>"
        for sku in skus
    )
    return (
        f"<order-created {NS}><items>{lines}</items><order-id>{ORDER}</order-id>"
        "<ship-to-store>false</ship-to-store><supplier-id>14107</supplier-id></order-created>"
    )


def status(*items: tuple[str, str, str | None]) -> str:
    """An order-status-updated entry; each item is (sku, status, tracking number or None)."""
    infos = "".join(
        f"<item-information><quantity>2</quantity><sku>{sku}</sku><status>{name}</status>"
        + (
            f"<tracking-info>{tracking}</tracking-info>"
            if tracking
            else '<tracking-info i:nil="true"/>'
        )
        + "</item-information>"
        for sku, name, tracking in items
    )
    return (
        f"<order-status-updated {NS}><items>{infos}</items><order-id>{ORDER}</order-id>"
        "</order-status-updated>"
    )


def page(page_id: str, *entries: tuple[str, str, str]) -> bytes:
    """A feed page; each entry is (entry id, published, content), listed newest first."""
    body = "".join(
        f"<entry><id>{entry_id}</id><title>t</title><published>{published}</published>"
        f'<updated>{published}</updated><content type="application/xml">{content}</content>'
        "</entry>"
        for entry_id, published, content in entries
    )
    return (
        f'<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:uuid:{page_id}</id>'
        f'<link rel="self" href="{FEED}/Pages({page_id})"/>{body}</feed>'
    ).encode()


def store(db: Path, *bodies: bytes) -> None:
    """Store each page in its own transaction, in the order given."""
    with connect(db) as con:
        for number, body in enumerate(bodies):
            store_pages(con, [read_page(body, f"{FEED}/Pages(p{number})")], complete=True)


def order_state(db: Path) -> tuple[str, int, list[tuple[str, str, str | None]]]:
    with connect(db, read_only=True) as con:
        status_name, code = con.execute(
            "SELECT status, status_code FROM orders WHERE order_id = ?", [ORDER]
        ).fetchone()
        lines = con.execute(
            "SELECT sku, status, tracking_info FROM order_items WHERE order_id = ? ORDER BY sku",
            [ORDER],
        ).fetchall()
    return status_name, code, lines


CREATED = ("urn:uuid:created", "2026-11-02T10:00:00Z", created())


def test_a_new_order_is_pending_supplier(tmp_path: Path) -> None:
    db = tmp_path / "inbox.duckdb"

    store(db, page("p1", CREATED))

    assert order_state(db) == (
        "PendingSupplier",
        0,
        [("SKU-A", "PendingSupplier", None), ("SKU-B", "PendingSupplier", None)],
    )


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ((("SKU-A", "Shipped", "1Z1"),), ("PartiallyShipped", 6)),
        ((("SKU-A", "Cancelled", None),), ("PendingSupplier", 0)),
        ((("SKU-A", "Shipped", "1Z1"), ("SKU-B", "Cancelled", None)), ("Shipped", 2)),
        ((("SKU-A", "Shipped", "1Z1"), ("SKU-B", "Shipped", "1Z2")), ("Shipped", 2)),
        ((("SKU-A", "Ordered", None), ("SKU-B", "Ordered", None)), ("Ordered", 1)),
        ((("SKU-A", "BackOrdered", None),), ("BackOrdered", 3)),
    ],
    ids=[
        "one-of-two-shipped",
        "one-of-two-cancelled",
        "shipped-and-cancelled",
        "all-shipped",
        "all-ordered",
        "one-back-ordered",
    ],
)
def test_the_order_status_counts_every_line(tmp_path: Path, items, expected) -> None:
    db = tmp_path / "inbox.duckdb"
    update = ("urn:uuid:status", "2026-11-02T11:00:00Z", status(*items))

    store(db, page("p1", CREATED), page("p2", update))

    assert order_state(db)[:2] == expected


def test_a_status_stored_before_its_order_is_applied_when_the_order_arrives(tmp_path) -> None:
    db = tmp_path / "inbox.duckdb"
    update = ("urn:uuid:status", "2026-11-02T11:00:00Z", status(("SKU-A", "Shipped", "1Z1")))

    store(db, page("p2", update), page("p1", CREATED))

    status_name, code, lines = order_state(db)
    assert (status_name, code) == ("PartiallyShipped", 6)
    assert lines[0] == ("SKU-A", "Shipped", "1Z1")


def test_the_newest_status_wins_whatever_order_the_entries_arrive_in(tmp_path) -> None:
    db = tmp_path / "inbox.duckdb"
    ordered = ("urn:uuid:s1", "2026-11-02T11:00:00Z", status(("SKU-A", "Ordered", None)))
    shipped = ("urn:uuid:s2", "2026-11-02T12:00:00Z", status(("SKU-A", "Shipped", "1Z1")))

    # The later update first, then the earlier one re-delivered on another page.
    store(db, page("p1", CREATED), page("p3", shipped), page("p2", ordered))

    assert order_state(db)[2][0] == ("SKU-A", "Shipped", "1Z1")


def test_a_batch_larger_than_one_conversion_keeps_dedup_and_order_across_it(tmp_path) -> None:
    """A batch's rows become Arrow arrays a few hundred entries at a time (batch.py); the
    duplicates and the numbering must not restart at each step."""
    db = tmp_path / "inbox.duckdb"

    def entry(number: int, order: int) -> tuple[str, str, str]:
        content = created().replace(ORDER, f"order-{order}")
        published = f"2026-11-02T10:{number // 60:02d}:{number % 60:02d}Z"
        return (f"urn:uuid:e{number}", published, content)

    pages = []
    for number in range(12):
        first = number * 50
        entries = [entry(n, n) for n in range(first, first + 50)]
        if number == 11:
            # The same entry as on the oldest page, and order-1 again under a new entry id.
            entries[-2] = entry(0, 0)
            entries[-1] = ("urn:uuid:again", "2026-11-02T11:00:00Z", entry(1, 1)[2])
        pages.append(read_page(page(f"p{number}", *reversed(entries)), f"{FEED}/Pages(p{number})"))

    with connect(db) as con:
        counts = store_pages(con, pages, complete=True)
        stored = con.execute(
            "SELECT count(*), count(DISTINCT entry_id), count(DISTINCT seq) FROM feed_events"
        ).fetchone()
        orders = con.execute("SELECT count(*), count(DISTINCT order_id) FROM orders").fetchone()
        first_of_order_1 = con.execute(
            "SELECT created_entry_id FROM orders WHERE order_id = 'order-1'"
        ).fetchone()
        by_page = con.execute(
            "SELECT page_id, min(seq), max(seq) FROM feed_events GROUP BY page_id ORDER BY 2"
        ).fetchall()

    assert (counts.events_new, counts.events_duplicate) == (599, 1)
    assert (counts.orders_new, counts.orders_duplicate) == (598, 1)
    assert stored == (599, 599, 599)
    assert orders == (598, 598)
    assert first_of_order_1 == ("urn:uuid:e1",)
    assert [page_id for page_id, _, _ in by_page] == [f"p{number}" for number in range(12)]
    assert all(low <= high for (_, low, high) in by_page)
    assert all(earlier[2] < later[1] for earlier, later in pairwise(by_page))


def test_a_batch_that_fails_raises_its_own_error_and_leaves_nothing_behind(tmp_path) -> None:
    db = tmp_path / "inbox.duckdb"
    batch = build_batch([read_page(page("p1", CREATED), f"{FEED}/Pages(p1)")])
    items = batch.tables["items"]
    price = items.schema.get_field_index("selling_price")
    unreadable = pa.array(["not a price"] * items.num_rows, pa.string())
    broken = PageBatch(
        batch.page_count,
        batch.entry_count,
        {**batch.tables, "items": items.set_column(price, "selling_price", unreadable)},
    )

    with connect(db) as con:
        # The failed cast aborts the transaction; the error must still be the cast's.
        with pytest.raises(duckdb.ConversionException, match="not a price"):
            store_batch(con, broken, complete=True)
        counts = store_batch(con, batch, complete=True)  # the connection goes on working
        stored = con.execute("SELECT count(*) FROM feed_events").fetchone()

    assert (counts.events_new, stored) == (1, (1,))
