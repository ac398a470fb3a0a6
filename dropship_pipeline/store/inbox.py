"""The inbox: feed pages, their entries, and the orders and lines they carry, loaded set-based.

:func:`store_pages` writes a batch of parsed pages in one transaction together with the crawl's
position (the ``feed_pages`` rows), so a crash leaves either all of a batch or none of it.
Entries are deduplicated by entry id and orders by order id, so every input can arrive twice.
An order's and its lines' status follow the feed's ``order-status-updated`` entries, rebuilt
from all of them by publication time, so the order in which entries arrive does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from dropship_pipeline.dropship.models import (
    ORDER_CREATED,
    ORDER_STATUS_UPDATED,
    OrderStatus,
    PageRows,
)
from dropship_pipeline.store.batch import ORDER_FIELDS, PageBatch, build_batch
from dropship_pipeline.store.db import transaction

_STATUS_CODES = {status.name: int(status) for status in OrderStatus}
#: The view of the lines of a batch's new orders.
_NEW_ITEMS_VIEW = "batch_new_items"


@dataclass
class IngestCounts:
    """What a crawl or a batch did; the same figures go to logs and Dagster metadata."""

    pages_read: int = 0
    events_new: int = 0
    events_duplicate: int = 0
    orders_new: int = 0
    orders_duplicate: int = 0
    status_events_new: int = 0

    def add(self, other: IngestCounts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def complete_page_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The ids of archive pages already stored whole; the crawl never fetches them again."""
    rows = con.execute("SELECT page_id FROM feed_pages WHERE complete").fetchall()
    return {page_id for (page_id,) in rows}


def store_pages(
    con: duckdb.DuckDBPyConnection,
    pages: Sequence[PageRows],
    *,
    complete: bool,
    received_at: datetime | None = None,
) -> IngestCounts:
    """Store ``pages`` (oldest first), all complete or all not, in one transaction."""
    return store_batch(con, build_batch(pages), complete=complete, received_at=received_at)


def store_batch(
    con: duckdb.DuckDBPyConnection,
    batch: PageBatch,
    *,
    complete: bool,
    received_at: datetime | None = None,
) -> IngestCounts:
    """Store a batch and the crawl position it covers (its ``feed_pages`` rows) atomically."""
    received_at = received_at or datetime.now(UTC)
    counts = IngestCounts(pages_read=batch.page_count)
    tables = batch.tables

    views = {f"batch_{name}": table for name, table in tables.items()}
    try:
        with transaction(con):
            for name, table in views.items():
                con.register(name, table)
            new_types = _insert_events(con, received_at)
            counts.events_new = len(new_types)
            counts.status_events_new = new_types.count(ORDER_STATUS_UPDATED)
            counts.events_duplicate = batch.entry_count - counts.events_new
            counts.orders_new = _insert_orders(con, tables["orders"], tables["items"], received_at)
            # New order-created entries for an order already known: re-deliveries.
            counts.orders_duplicate = new_types.count(ORDER_CREATED) - counts.orders_new
            if tables["statuses"].num_rows:
                _insert_statuses(con)
            if tables["statuses"].num_rows or _have_stored_statuses(con):
                _apply_statuses(con)
            _record_pages(con, complete, received_at)
    finally:
        # Once the transaction is over, committed or rolled back: in a transaction that a
        # failed statement aborted, unregistering fails too, and that second error would hide
        # the one that says what went wrong.
        for name in (*views, _NEW_ITEMS_VIEW):
            con.unregister(name)
    return counts


def _insert_events(con: duckdb.DuckDBPyConnection, received_at: datetime) -> list[str | None]:
    """Insert the batch's new entries; return the event type of each one inserted."""
    # The batch holds each entry id once (_batch_tables): only the database can have it.
    rows = con.execute(
        """
        INSERT INTO feed_events
        SELECT b.entry_id, b.event_type, b.order_id, b.title, b.published, b.updated,
               b.page_id, b.content_xml, ?,
               (SELECT coalesce(max(seq), 0) FROM feed_events) + b.pos + 1
        FROM batch_events b
        WHERE NOT EXISTS (SELECT 1 FROM feed_events f WHERE f.entry_id = b.entry_id)
        RETURNING event_type
        """,
        [received_at],
    ).fetchall()
    return [event_type for (event_type,) in rows]


def _insert_orders(
    con: duckdb.DuckDBPyConnection, orders: pa.Table, items: pa.Table, received_at: datetime
) -> int:
    columns = ", ".join(ORDER_FIELDS)
    selected = ", ".join(f"b.{name}" for name in ORDER_FIELDS)
    # The first order-created entry of an order wins; later copies (re-deliveries under a new
    # entry id) are kept in feed_events only. The batch holds each order once already.
    created = con.execute(
        f"""
        INSERT INTO orders ({columns}, created_at, created_entry_id, received_at)
        SELECT {selected}, b.created_at, b.entry_id, ?
        FROM batch_orders b
        WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = b.order_id)
        RETURNING created_entry_id
        """,
        [received_at],
    ).fetchall()
    if created:
        # Lines go in with their order, in this transaction, so only the orders just created
        # can lack them: no need to look at the stored lines or orders again. In a backfill
        # every order of the batch is new, and all its lines go in as they are.
        new_items = items
        if len(created) < orders.num_rows:
            entry_ids = pa.array([entry_id for (entry_id,) in created], type=pa.string())
            new_items = items.filter(pc.is_in(items["entry_id"], value_set=entry_ids))
        # Unregistered by store_batch, after its transaction.
        con.register(_NEW_ITEMS_VIEW, new_items)
        con.execute(
            f"""
            INSERT INTO order_items (order_id, line_number, sku, catalog_id, description,
                                     quantity, selling_price)
            SELECT order_id, line_number, sku, catalog_id, description, quantity,
                   CAST(selling_price AS DECIMAL(18, 4))
            FROM {_NEW_ITEMS_VIEW}
            """
        )
    return len(created)


def _insert_statuses(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        INSERT INTO feed_item_statuses
        SELECT s.entry_id, s.position, s.order_id, s.sku, s.catalog_id, s.status, s.quantity,
               s.tracking_info, s.shipping_provider, s.info, s.message, s.published,
               e.seq
        FROM batch_statuses s
        JOIN feed_events e ON e.entry_id = s.entry_id
        WHERE NOT EXISTS (
            SELECT 1 FROM feed_item_statuses x
            WHERE x.entry_id = s.entry_id AND x.position = s.position
        )
        """
    )


def _have_stored_statuses(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether an order of this batch has status entries stored before it (they can arrive
    before the order itself when pages are re-read in another order)."""
    row = con.execute(
        "SELECT EXISTS (SELECT 1 FROM feed_item_statuses s "
        "WHERE s.order_id IN (SELECT order_id FROM batch_orders))"
    ).fetchone()
    return bool(row and row[0])


def _apply_statuses(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the lines and orders touched by this batch in line with the newest status entries."""
    touched = """
        SELECT order_id FROM batch_statuses
        UNION SELECT order_id FROM batch_orders
    """
    con.execute(
        f"""
        UPDATE order_items AS i
        SET status = latest.status,
            tracking_info = latest.tracking_info,
            shipping_provider = latest.shipping_provider,
            status_updated_at = latest.published
        FROM (
            SELECT order_id, sku,
                   arg_max(status, (published, seq)) AS status,
                   arg_max(tracking_info, (published, seq)) AS tracking_info,
                   arg_max(shipping_provider, (published, seq)) AS shipping_provider,
                   max(published) AS published
            FROM feed_item_statuses
            WHERE order_id IN ({touched}) AND status IS NOT NULL
            GROUP BY order_id, sku
        ) AS latest
        WHERE i.order_id = latest.order_id AND i.sku = latest.sku
        """
    )
    codes = " ".join(f"WHEN '{name}' THEN {code}" for name, code in _STATUS_CODES.items())
    con.execute(
        f"""
        UPDATE orders AS o
        SET status = derived.status,
            status_code = CASE derived.status {codes} ELSE 8 END,
            status_updated_at = derived.updated_at
        FROM (
            -- Every line counts, those no update has touched as PendingSupplier; cancelled
            -- lines only decide when all are cancelled, as nothing is left to do for them.
            SELECT order_id,
                   CASE
                       WHEN bool_and(status = 'Cancelled') THEN 'Cancelled'
                       WHEN count(DISTINCT status) FILTER (WHERE status <> 'Cancelled') = 1
                           THEN any_value(status) FILTER (WHERE status <> 'Cancelled')
                       WHEN bool_or(status IN ('Shipped', 'PartiallyShipped'))
                           THEN 'PartiallyShipped'
                       ELSE coalesce(
                           arg_max(status, status_updated_at)
                               FILTER (WHERE status <> 'Cancelled'),
                           'PendingSupplier'
                       )
                   END AS status,
                   max(status_updated_at) AS updated_at
            FROM order_items
            WHERE order_id IN ({touched})
            GROUP BY order_id
            HAVING max(status_updated_at) IS NOT NULL
        ) AS derived
        WHERE o.order_id = derived.order_id
        """
    )


def _record_pages(con: duckdb.DuckDBPyConnection, complete: bool, received_at: datetime) -> None:
    """Record the crawl position: one ``feed_pages`` row per page of the batch."""
    # A page once complete stays as it is: an archive never changes. Only the current page,
    # stored as not complete, is ever replaced. (An ON CONFLICT upsert costs three times this.)
    stored = con.execute(
        "SELECT page_id, complete FROM feed_pages "
        "WHERE page_id IN (SELECT page_id FROM batch_pages)"
    ).fetchall()
    replaced = [page_id for page_id, was_complete in stored if not was_complete]
    if replaced:
        con.execute("DELETE FROM feed_pages WHERE list_contains(?, page_id)", [replaced])
    kept = [page_id for page_id, was_complete in stored if was_complete]
    con.execute(
        """
        INSERT INTO feed_pages
        SELECT page_id, url, prev_page_id, next_page_id, entry_count, ?, ?
        FROM batch_pages
        WHERE NOT list_contains(?, page_id)
        """,
        [complete, received_at, kept],
    )
