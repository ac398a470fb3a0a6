"""The schema, as numbered migrations. A migration once released is never edited: add one.

Column names of the analyst-facing tables are fixed by CONTRACT.md section 3. Times are
TIMESTAMPTZ in UTC; ids, SKUs and tracking numbers are VARCHAR.
"""

from __future__ import annotations

# Uniqueness of entry ids, order ids and lines is kept by the inbox's anti-joins under the single
# writer, not by PRIMARY KEY constraints: DuckDB rewrites a table's whole ART index at every
# checkpoint, which made a 100,000-event backfill quadratic (benchmarks/ingest.py). The asset
# check `orders_are_unique` watches the result.
_FEED = [
    # One row per feed page seen. `complete` pages are archives, which never change: the crawl
    # stops walking back at the first one. The current page is stored with complete = false.
    """
    CREATE TABLE feed_pages (
        page_id VARCHAR PRIMARY KEY,
        url VARCHAR NOT NULL,
        prev_page_id VARCHAR,
        next_page_id VARCHAR,
        entry_count INTEGER NOT NULL,
        complete BOOLEAN NOT NULL,
        fetched_at TIMESTAMPTZ NOT NULL
    )
    """,
    # Raw entry XML is most of a backfill's bytes. DuckDB's default string compression made the
    # checkpoint after a 100,000-event backfill take 1.4 s and the file 114 MB; zstd: 0.4 s, 18 MB.
    """
    CREATE TABLE feed_events (
        entry_id VARCHAR NOT NULL,
        event_type VARCHAR,
        order_id VARCHAR,
        title VARCHAR,
        published TIMESTAMPTZ,
        updated TIMESTAMPTZ,
        page_id VARCHAR NOT NULL,
        content_xml VARCHAR NOT NULL USING COMPRESSION zstd,
        received_at TIMESTAMPTZ NOT NULL,
        seq BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE orders (
        order_id VARCHAR NOT NULL,
        supplier_id VARCHAR,
        seller_company_id VARCHAR,
        seller_location_id VARCHAR,
        po_reference VARCHAR,
        printable_id VARCHAR,
        ship_to_store BOOLEAN,
        shipping_method VARCHAR,
        shipping_entity_id VARCHAR,
        customer_id VARCHAR,
        customer_type VARCHAR,
        title VARCHAR,
        primary_name VARCHAR,
        middle_name VARCHAR,
        family_name VARCHAR,
        alternate_name VARCHAR,
        customer_notes VARCHAR,
        address_id VARCHAR,
        address_type VARCHAR,
        attention_to VARCHAR,
        business_name VARCHAR,
        street_address_1 VARCHAR,
        street_address_2 VARCHAR,
        post_office_box_number VARCHAR,
        locality VARCHAR,
        region VARCHAR,
        region_code VARCHAR,
        postal_code VARCHAR,
        country VARCHAR,
        country_code VARCHAR,
        phone VARCHAR,
        address_notes VARCHAR,
        created_at TIMESTAMPTZ,
        created_entry_id VARCHAR NOT NULL,
        status VARCHAR NOT NULL DEFAULT 'PendingSupplier',
        status_code INTEGER NOT NULL DEFAULT 0,
        status_updated_at TIMESTAMPTZ,
        exported_at TIMESTAMPTZ,
        acknowledged_at TIMESTAMPTZ,
        received_at TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE order_items (
        order_id VARCHAR NOT NULL,
        line_number INTEGER NOT NULL,
        sku VARCHAR,
        catalog_id VARCHAR,
        description VARCHAR,
        quantity INTEGER,
        selling_price DECIMAL(18, 4),
        status VARCHAR NOT NULL DEFAULT 'PendingSupplier',
        shipped_quantity INTEGER NOT NULL DEFAULT 0,
        tracking_info VARCHAR,
        shipping_provider VARCHAR,
        status_updated_at TIMESTAMPTZ
    )
    """,
    # The items of every order-status-updated entry, so that an order's state can be rebuilt
    # from the feed in any order of arrival.
    """
    CREATE TABLE feed_item_statuses (
        entry_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,
        order_id VARCHAR NOT NULL,
        sku VARCHAR,
        catalog_id VARCHAR,
        status VARCHAR,
        quantity INTEGER,
        tracking_info VARCHAR,
        shipping_provider VARCHAR,
        info VARCHAR,
        message VARCHAR,
        published TIMESTAMPTZ,
        seq BIGINT NOT NULL
    )
    """,
]

# Exports and the outbox follow the same rule: no PRIMARY KEY or UNIQUE. An order is in one
# export only and an update id is written once because every insert anti-joins under the single
# writer; the asset checks `orders_in_one_export` and `update_ids_are_unique` watch it.
# (Migration 3 adds unique indexes on these small tables as a second guard.)
_EXPORTS_AND_OUTBOX = [
    # One row per file of an export batch: a batch written as CSV and XLSX has two rows with the
    # same export_id. `staged` rows are recorded before the upload, with the name fixed and the
    # sha256 of the bytes rendered then; `delivered` once the file is in the drop.
    """
    CREATE TABLE erp_exports (
        export_id VARCHAR NOT NULL,
        file_name VARCHAR NOT NULL,
        format VARCHAR NOT NULL,
        order_count INTEGER NOT NULL,
        row_count INTEGER NOT NULL,
        sha256 VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        staged_at TIMESTAMPTZ NOT NULL,
        uploaded_at TIMESTAMPTZ
    )
    """,
    """
    CREATE TABLE erp_export_orders (
        export_id VARCHAR NOT NULL,
        order_id VARCHAR NOT NULL
    )
    """,
    # The outbox. `seq` orders the sends (oldest first, and within an order strictly in turn);
    # `next_attempt_at` holds a pending update back after a transient failure.
    """
    CREATE TABLE status_updates (
        update_id VARCHAR NOT NULL,
        order_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        status_code INTEGER NOT NULL,
        payload VARCHAR NOT NULL,
        state VARCHAR NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        http_status INTEGER,
        last_error VARCHAR,
        created_at TIMESTAMPTZ NOT NULL,
        sent_at TIMESTAMPTZ,
        next_attempt_at TIMESTAMPTZ,
        seq BIGINT NOT NULL
    )
    """,
]


def _refuse_duplicates(table: str, column: str) -> str:
    """A statement that stops the migration, naming the table, when ``column`` repeats in it."""
    return f"""
    SELECT CASE WHEN EXISTS (
        SELECT 1 FROM {table} GROUP BY {column} HAVING count(*) > 1
    ) THEN error('Table {table} has repeated {column} values, so they cannot be made unique: '
                 || 'find the rows with SELECT {column}, count(*) FROM {table} GROUP BY 1 '
                 || 'HAVING count(*) > 1, keep one of each and run again.') END
    """


# A crash between staging and marking left a batch whose XLSX could not be rendered again to the
# same bytes (openpyxl stamps the write time in), so the bytes are now kept with the staging,
# until the batch is delivered. The outbox records each attempt before its PUT, the service's
# answer after it, and how many transient failures in a row the retry bound has counted.
# The three small tables get the unique keys the anti-joins kept so far; they are written a few
# rows per run, far from the backfill sizes that rule PRIMARY KEYs out of the feed tables.
_STAGED_BYTES_ATTEMPTS_AND_KEYS = [
    """
    CREATE TABLE erp_export_content (
        export_id VARCHAR NOT NULL,
        file_name VARCHAR PRIMARY KEY,
        content BLOB NOT NULL
    )
    """,
    "ALTER TABLE status_updates ADD COLUMN attempted_at TIMESTAMPTZ",
    "ALTER TABLE status_updates ADD COLUMN retry_count INTEGER DEFAULT 0",
    "ALTER TABLE status_updates ADD COLUMN response VARCHAR",
    _refuse_duplicates("erp_export_orders", "order_id"),
    _refuse_duplicates("erp_exports", "file_name"),
    _refuse_duplicates("status_updates", "update_id"),
    "CREATE UNIQUE INDEX erp_export_orders_order_id ON erp_export_orders (order_id)",
    "CREATE UNIQUE INDEX erp_exports_file_name ON erp_exports (file_name)",
    "CREATE UNIQUE INDEX status_updates_update_id ON status_updates (update_id)",
]

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "feed inbox: pages, events, orders, order items, item statuses", _FEED),
    (2, "ERP exports, the orders in them, and the status update outbox", _EXPORTS_AND_OUTBOX),
    (
        3,
        "staged file bytes, outbox attempts and answers, unique keys on exports and outbox",
        _STAGED_BYTES_ATTEMPTS_AND_KEYS,
    ),
]
