"""Export batches in DuckDB: which orders go to the ERP in which file (``erp_exports``,
``erp_export_orders``), and the order lines a batch's files are rendered from.

A batch is recorded ``staged`` (its id, file names, orders, and each file's bytes with their
sha256, in ``erp_export_content``) before anything is uploaded, and marked ``delivered``
afterwards, when its bytes are dropped again. Every upload of a staged file, first or retried,
sends those recorded bytes: an XLSX rendering carries its write time, so rendering again would
not reproduce them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from dropship_pipeline.dropship.models import OrderStatus, OrderStatusUpdate
from dropship_pipeline.erp.layout import ORDER_FILE_COLUMNS
from dropship_pipeline.store.outbox import NewUpdate, ack_update_id, enqueue

STAGED = "staged"
DELIVERED = "delivered"

_LINE_COLUMNS = frozenset(
    {"line_number", "sku", "catalog_id", "description", "quantity", "selling_price"}
)
_SELECT_COLUMNS = ", ".join(
    f"i.{name}" if name in _LINE_COLUMNS else f"o.{name}" for name in ORDER_FILE_COLUMNS
)


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One file of a batch as recorded: its format, fixed name, and the bytes' sha256."""

    format: str
    file_name: str
    sha256: str
    row_count: int


@dataclass(frozen=True, slots=True)
class StagedBatch:
    """A batch recorded but not yet delivered."""

    export_id: str
    staged_at: datetime
    order_count: int
    files: tuple[ExportFile, ...]


def file_name(staged_at: datetime, export_id: str, file_format: str) -> str:
    """``orders_<UTC yyyymmddTHHMMSSZ>_<export_id>.<format>`` (CONTRACT.md section 4)."""
    return f"orders_{staged_at.strftime('%Y%m%dT%H%M%SZ')}_{export_id}.{file_format}"


def unfinished_batch(con: duckdb.DuckDBPyConnection) -> StagedBatch | None:
    """The batch staged but not delivered (left by a crash), or None.

    There is at most one: a run finishes an unfinished batch before it stages another.
    """
    rows = con.execute(
        """
        SELECT export_id, staged_at, order_count, format, file_name, sha256, row_count
        FROM erp_exports
        WHERE export_id = (
            SELECT export_id FROM erp_exports WHERE state = ?
            ORDER BY staged_at, export_id LIMIT 1
        )
        ORDER BY format
        """,
        [STAGED],
    ).fetchall()
    if not rows:
        return None
    export_id, staged_at, order_count = rows[0][:3]
    files = tuple(
        ExportFile(format=fmt, file_name=name, sha256=sha, row_count=int(count))
        for _, _, _, fmt, name, sha, count in rows
    )
    return StagedBatch(export_id, staged_at, int(order_count), files)


def next_export_id(con: duckdb.DuckDBPyConnection) -> str:
    """The next batch number, zero-padded: ``000001``, ``000002``, …"""
    row = con.execute(
        "SELECT coalesce(max(TRY_CAST(export_id AS BIGINT)), 0) + 1 FROM erp_exports"
    ).fetchone()
    return f"{int(row[0]) if row else 1:06d}"


def claim_orders(
    con: duckdb.DuckDBPyConnection,
    export_id: str,
    *,
    since: datetime | None,
    limit: int | None = None,
) -> int:
    """Put every order not yet in an export, created at or after ``since``, into ``export_id``.

    Orders without lines are left out (there is nothing to write for them; the ``orders`` asset
    check reports them). Returns how many orders were claimed. Runs in the caller's transaction.
    """
    row = con.execute(
        f"""
        INSERT INTO erp_export_orders (export_id, order_id)
        SELECT ?, order_id FROM (
            SELECT o.order_id, min(o.created_at) AS created_at
            FROM orders o
            WHERE NOT EXISTS (SELECT 1 FROM erp_export_orders e WHERE e.order_id = o.order_id)
              AND EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.order_id)
              AND (CAST(? AS TIMESTAMPTZ) IS NULL OR o.created_at >= ?)
            GROUP BY o.order_id
            ORDER BY created_at NULLS LAST, order_id
            {"LIMIT " + str(int(limit)) if limit is not None else ""}
        )
        """,
        [export_id, since, since],
    ).fetchone()
    return int(row[0]) if row else 0


def export_rows(con: duckdb.DuckDBPyConnection, export_id: str) -> pd.DataFrame:
    """The lines of a batch's orders, columns of the order file, in a fixed order: orders by
    creation time and id, lines by line number."""
    table = con.sql(
        f"""
        SELECT {_SELECT_COLUMNS}
        FROM erp_export_orders e
        JOIN orders o ON o.order_id = e.order_id
        JOIN order_items i ON i.order_id = o.order_id
        WHERE e.export_id = ?
        ORDER BY o.created_at NULLS LAST, o.order_id, i.line_number
        """,
        params=[export_id],
    ).to_arrow_table()
    # Arrow keeps DECIMAL prices as exact Decimals and ids as text.
    return table.to_pandas()


def record_staged(
    con: duckdb.DuckDBPyConnection, batch: StagedBatch, contents: Mapping[str, bytes]
) -> None:
    """Record a batch's files as staged, with the bytes of each (``contents`` by file name).

    Runs in the transaction that claimed its orders, so a batch is never staged without them.
    """
    missing = [file.file_name for file in batch.files if file.file_name not in contents]
    if missing:
        raise ValueError(f"Export {batch.export_id}: no bytes given for {', '.join(missing)}.")
    con.executemany(
        "INSERT INTO erp_export_content (export_id, file_name, content) VALUES (?, ?, ?)",
        [(batch.export_id, file.file_name, contents[file.file_name]) for file in batch.files],
    )
    con.executemany(
        "INSERT INTO erp_exports (export_id, file_name, format, order_count, row_count, sha256, "
        "state, staged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                batch.export_id,
                file.file_name,
                file.format,
                batch.order_count,
                file.row_count,
                file.sha256,
                STAGED,
                batch.staged_at,
            )
            for file in batch.files
        ],
    )


def staged_content(con: duckdb.DuckDBPyConnection, export_id: str) -> dict[str, bytes]:
    """The recorded bytes of a staged batch's files, by file name.

    A batch staged before the bytes were recorded (schema version 2) has none.
    """
    rows = con.execute(
        "SELECT file_name, content FROM erp_export_content WHERE export_id = ?", [export_id]
    ).fetchall()
    return {name: bytes(content) for name, content in rows}


def record_delivered(
    con: duckdb.DuckDBPyConnection,
    export_id: str,
    uploads: Mapping[str, tuple[str, datetime]],
    *,
    now: datetime,
) -> int:
    """Mark a batch delivered, its orders exported, and queue their Ordered acknowledgements.

    ``uploads`` maps each file name to the sha256 of the bytes delivered and when. An order still
    at PendingSupplier in the feed gets one ``OrderStatusUpdate`` with ``Status: 1``; orders the
    feed shows further along were acknowledged before and get none. The recorded bytes are
    deleted: they hold names and addresses, and once in the drop the file is the ERP's record.
    Runs in the caller's transaction; returns how many acknowledgements were queued.
    """
    for name, (sha256, uploaded_at) in uploads.items():
        con.execute(
            "UPDATE erp_exports SET state = ?, uploaded_at = ?, sha256 = ? "
            "WHERE export_id = ? AND file_name = ? AND state = ?",
            [DELIVERED, uploaded_at, sha256, export_id, name, STAGED],
        )
    con.execute("DELETE FROM erp_export_content WHERE export_id = ?", [export_id])
    con.execute(
        """
        UPDATE orders SET exported_at = ?
        WHERE exported_at IS NULL
          AND order_id IN (SELECT order_id FROM erp_export_orders WHERE export_id = ?)
        """,
        [now, export_id],
    )
    pending = con.execute(
        """
        SELECT DISTINCT e.order_id
        FROM erp_export_orders e JOIN orders o ON o.order_id = e.order_id
        WHERE e.export_id = ? AND o.status_code = ?
        ORDER BY e.order_id
        """,
        [export_id, int(OrderStatus.PendingSupplier)],
    ).fetchall()
    acks = [
        NewUpdate(
            update_id=ack_update_id(order_id),
            order_id=order_id,
            kind="order",
            status_code=int(OrderStatus.Ordered),
            payload=OrderStatusUpdate(order_id=order_id, status=OrderStatus.Ordered).to_json(),
        )
        for (order_id,) in pending
    ]
    return enqueue(con, acks, now=now)


def orders_in_export(con: duckdb.DuckDBPyConnection, export_id: str) -> list[str]:
    rows = con.execute(
        "SELECT order_id FROM erp_export_orders WHERE export_id = ? ORDER BY order_id",
        [export_id],
    ).fetchall()
    return [order_id for (order_id,) in rows]
