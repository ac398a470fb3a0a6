"""The outbox: every status update to iQmetrix, written before it is sent (``status_updates``).

An update is written once under a deterministic ``update_id`` (an insert skips an id that is
already there, and a unique index backs that up), then moves ``pending`` -> ``sent``, or
``pending`` -> ``failed`` when the service refuses it for good or the sender gives up. An operator
puts failed updates back with :func:`requeue_failed`. A ``sent`` update never changes again, so
nothing here can send it twice.

Each attempt is recorded before its PUT (:func:`record_attempt`: ``attempts`` counted,
``attempted_at`` set) and its outcome after it, which clears ``attempted_at`` again. A pending
update that still has ``attempted_at`` was being sent when a run stopped, and nobody knows
whether the service took it.

Updates of one order go out strictly in turn: :func:`due_updates` holds back every update of
an order while an older one of that order is not yet sent, so a later Shipped can never overtake
the Ordered acknowledgement and be undone by it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import duckdb

from dropship_pipeline.dropship.models import OrderStatus

UpdateKind = Literal["order", "item"]
UpdateState = Literal["pending", "sent", "failed"]
STATES: tuple[UpdateState, ...] = ("pending", "sent", "failed")


def ack_update_id(order_id: str) -> str:
    """The update id of an order's Ordered acknowledgement: one per order, ever."""
    return f"ack:{order_id}"


@dataclass(frozen=True, slots=True)
class NewUpdate:
    """An update to put in the outbox; ``payload`` is the PUT body as JSON-ready data."""

    update_id: str
    order_id: str
    kind: UpdateKind
    status_code: int
    payload: Mapping[str, object]


RESPONSE_MAX_CHARS = 500
"""Longest answer of the service kept in ``response``; the rest is cut off."""


@dataclass(frozen=True, slots=True)
class OutboxUpdate:
    """A pending update as the sender reads it.

    ``retries`` counts transient failures in a row (it drives the backoff and the give-up
    bound); ``in_flight`` says an earlier attempt was made and its outcome never recorded.
    """

    update_id: str
    order_id: str
    kind: UpdateKind
    status_code: int
    payload: dict[str, object]
    attempts: int
    retries: int = 0
    in_flight: bool = False

    @property
    def is_acknowledgement(self) -> bool:
        return self.kind == "order" and self.status_code == OrderStatus.Ordered


def enqueue(con: duckdb.DuckDBPyConnection, updates: Iterable[NewUpdate], *, now: datetime) -> int:
    """Add ``updates`` as pending, skipping every id already in the outbox; return how many.

    Runs in the caller's transaction, so the updates commit with whatever caused them.
    """
    rows = [
        (
            update.update_id,
            update.order_id,
            update.kind,
            update.status_code,
            json.dumps(update.payload, separators=(",", ":"), ensure_ascii=False),
        )
        for update in updates
    ]
    if not rows:
        return 0
    con.execute(
        "CREATE OR REPLACE TEMP TABLE outbox_batch (pos INTEGER, update_id VARCHAR, "
        "order_id VARCHAR, kind VARCHAR, status_code INTEGER, payload VARCHAR)"
    )
    try:
        con.executemany(
            "INSERT INTO outbox_batch VALUES (?, ?, ?, ?, ?, ?)",
            [(pos, *row) for pos, row in enumerate(rows)],
        )
        row = con.execute(
            """
            INSERT INTO status_updates (update_id, order_id, kind, status_code, payload,
                                        state, attempts, created_at, seq)
            SELECT b.update_id, b.order_id, b.kind, b.status_code, b.payload, 'pending', 0, ?,
                   (SELECT coalesce(max(seq), 0) FROM status_updates)
                   + row_number() OVER (ORDER BY b.pos)
            FROM outbox_batch b
            WHERE NOT EXISTS (SELECT 1 FROM status_updates s WHERE s.update_id = b.update_id)
            QUALIFY row_number() OVER (PARTITION BY b.update_id ORDER BY b.pos) = 1
            """,
            [now],
        ).fetchone()
    finally:
        con.execute("DROP TABLE IF EXISTS outbox_batch")
    return int(row[0]) if row else 0


def due_updates(
    con: duckdb.DuckDBPyConnection, *, now: datetime, limit: int | None = None
) -> list[OutboxUpdate]:
    """Pending updates whose time has come, oldest first, at most one per order at a time."""
    rows = con.execute(
        f"""
        SELECT u.update_id, u.order_id, u.kind, u.status_code, u.payload, u.attempts,
               coalesce(u.retry_count, 0), u.attempted_at IS NOT NULL
        FROM status_updates u
        WHERE u.state = 'pending'
          AND (u.next_attempt_at IS NULL OR u.next_attempt_at <= ?)
          AND NOT EXISTS (
              SELECT 1 FROM status_updates o
              WHERE o.order_id = u.order_id AND o.state <> 'sent' AND o.seq < u.seq
          )
        ORDER BY u.seq
        {"LIMIT " + str(int(limit)) if limit is not None else ""}
        """,
        [now],
    ).fetchall()
    return [
        OutboxUpdate(
            update_id=update_id,
            order_id=order_id,
            kind=kind,
            status_code=status_code,
            payload=json.loads(payload),
            attempts=attempts,
            retries=retries,
            in_flight=in_flight,
        )
        for update_id, order_id, kind, status_code, payload, attempts, retries, in_flight in rows
    ]


def record_attempt(
    con: duckdb.DuckDBPyConnection, update: OutboxUpdate, *, attempted_at: datetime
) -> None:
    """Count an attempt about to be made; commit this before the PUT goes out."""
    con.execute(
        """
        UPDATE status_updates SET attempts = attempts + 1, attempted_at = ?
        WHERE update_id = ? AND state = 'pending'
        """,
        [attempted_at, update.update_id],
    )


def record_sent(
    con: duckdb.DuckDBPyConnection,
    update: OutboxUpdate,
    *,
    http_status: int | None,
    sent_at: datetime,
    response: str,
) -> None:
    """Mark ``update`` sent (and its order acknowledged, for an Ordered order update).

    ``response`` is what the service answered (cut to :data:`RESPONSE_MAX_CHARS`);
    ``http_status`` is None when the update was found in the feed instead of sent again.
    """
    con.execute(
        """
        UPDATE status_updates
        SET state = 'sent', http_status = ?, sent_at = ?, response = ?, last_error = NULL,
            next_attempt_at = NULL, attempted_at = NULL, retry_count = 0
        WHERE update_id = ? AND state = 'pending'
        """,
        [http_status, sent_at, _cut(response), update.update_id],
    )
    if update.is_acknowledgement:
        con.execute(
            "UPDATE orders SET acknowledged_at = ? WHERE order_id = ? AND acknowledged_at IS NULL",
            [sent_at, update.order_id],
        )


def record_retry(
    con: duckdb.DuckDBPyConnection,
    update: OutboxUpdate,
    *,
    http_status: int | None,
    error: str,
    next_attempt_at: datetime,
    retries: int,
) -> None:
    """Record a failed attempt that may succeed later; the update stays pending until then.

    ``retries`` is the new count of transient failures in a row.
    """
    con.execute(
        """
        UPDATE status_updates
        SET http_status = ?, last_error = ?, next_attempt_at = ?, retry_count = ?,
            attempted_at = NULL
        WHERE update_id = ? AND state = 'pending'
        """,
        [http_status, error, next_attempt_at, retries, update.update_id],
    )


def record_failed(
    con: duckdb.DuckDBPyConnection, update: OutboxUpdate, *, http_status: int | None, error: str
) -> None:
    """Park an update the service refused for good, or the sender gave up on; it waits for an
    operator."""
    con.execute(
        """
        UPDATE status_updates
        SET state = 'failed', http_status = ?, last_error = ?, next_attempt_at = NULL,
            attempted_at = NULL
        WHERE update_id = ? AND state = 'pending'
        """,
        [http_status, error, update.update_id],
    )


def feed_shows_ordered(con: duckdb.DuckDBPyConnection, order_id: str) -> bool:
    """Whether the stored feed has every line of the order past PendingSupplier: the Ordered
    acknowledgement (or a later status) has reached the service."""
    row = con.execute(
        """
        SELECT count(*) > 0 AND count(*) FILTER (WHERE status = ?) = 0
        FROM order_items WHERE order_id = ?
        """,
        [OrderStatus.PendingSupplier.name, order_id],
    ).fetchone()
    return bool(row and row[0])


def requeue_failed(con: duckdb.DuckDBPyConnection, *, order_id: str | None = None) -> int:
    """Put failed updates (of one order, or all) back to pending, due now, with a fresh retry
    budget; return how many."""
    row = con.execute(
        """
        UPDATE status_updates SET state = 'pending', next_attempt_at = NULL, retry_count = 0
        WHERE state = 'failed' AND (CAST(? AS VARCHAR) IS NULL OR order_id = ?)
        """,
        [order_id, order_id],
    ).fetchone()
    return int(row[0]) if row else 0


def state_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many updates are pending, sent and failed (every state present, zero included)."""
    counts: dict[str, int] = dict.fromkeys(STATES, 0)
    for state, count in con.execute(
        "SELECT state, count(*) FROM status_updates GROUP BY state"
    ).fetchall():
        counts[state] = int(count)
    return counts


def _cut(text: str) -> str:
    return text if len(text) <= RESPONSE_MAX_CHARS else text[: RESPONSE_MAX_CHARS - 1] + "…"
