"""The outbox sender: pending status updates to iQmetrix, oldest first, each accepted once.

Every attempt is committed to the outbox before its PUT goes out, and its outcome in its own
short transaction right after the PUT returns. What happens to an update after an attempt:

- 2xx: ``sent`` for good (and the order ``acknowledged_at``, for an Ordered order update), with
  the service's echo kept in ``response`` and ``last_error`` cleared.
- transient (:class:`DropshipUnavailableError`: 429, 5xx, timeouts outlasting the client's own
  retries): stays ``pending`` until ``next_attempt_at`` (exponential backoff); the round stops,
  since the next update would meet the same outage. After :data:`MAX_RETRIES` such failures in a
  row the sender gives up: ``failed``, with a ``last_error`` that says so.
- refused for good (any other 4xx): ``failed``, waiting for an operator (``requeue-failed``).
- anything else (401/403, a redirect, a request that cannot be sent): a problem of the whole
  setup, not of the update: it stays ``pending`` and the error is raised.

A crash between a PUT and its record leaves the update pending with its attempt marked. The
next round looks at the stored feed first (the ingest runs before the sender in every run): an
Ordered acknowledgement whose order the feed already shows past PendingSupplier is marked sent
without a PUT. Any other such update is sent again, with a warning: the PUTs overwrite the
order's or lines' status, so one repeat is harmless where the feed cannot tell.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import duckdb

from dropship_pipeline.dropship.models import (
    ItemInformation,
    ItemStatusUpdate,
    OrderStatus,
    OrderStatusUpdate,
    StatusUpdateReceipt,
)
from dropship_pipeline.errors import DropshipApiError, DropshipUnavailableError
from dropship_pipeline.store import outbox
from dropship_pipeline.store.db import connect, transaction
from dropship_pipeline.store.outbox import OutboxUpdate

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=30)
"""Wait after the first transient failure; doubled after each further one."""

BACKOFF_MAX = timedelta(hours=1)
"""Longest wait between two attempts of one update."""

MAX_RETRIES = 30
"""Transient failures in a row after which an update is given up (``failed``): with the backoff
above, about a day of retrying. ``requeue-failed`` gives it a fresh budget."""

FEED_CONFIRMED = "not sent again: the stored feed already shows the order past PendingSupplier"
"""What ``response`` says for an acknowledgement found in the feed after an interrupted send."""

# Refusals that say nothing about the update itself: credentials, permissions, timeouts.
_SETUP_PROBLEMS = frozenset({401, 403, 407, 408})

Clock = Callable[[], datetime]


class StatusUpdateSender(Protocol):
    """What the sender needs of :class:`~dropship_pipeline.dropship.client.DropshipClient`."""

    def order_status_update(self, update: OrderStatusUpdate) -> StatusUpdateReceipt: ...

    def item_status_update(self, update: ItemStatusUpdate) -> StatusUpdateReceipt: ...


@dataclass
class SendCounts:
    """What one round of sending did, and the outbox's totals after it.

    ``confirmed`` counts interrupted acknowledgements marked sent because the feed shows them
    (no PUT); ``acknowledged`` counts acknowledgements done either way.
    """

    sent: int = 0
    confirmed: int = 0
    retrying: int = 0
    failed: int = 0
    acknowledged: int = 0
    totals: dict[str, int] = field(default_factory=dict)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (counting from 1)."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(attempts - 1, 0))


def update_from_payload(
    kind: str, payload: Mapping[str, object]
) -> OrderStatusUpdate | ItemStatusUpdate:
    """The typed PUT body of an outbox row; ValueError when the payload is not one."""
    if kind == "order":
        return OrderStatusUpdate(
            order_id=str(payload["Id"]),
            status=OrderStatus.parse(_status(payload)),
            tracking_info=_text(payload, "TrackingInfo"),
            shipping_provider=_text(payload, "ShippingProvider"),
            info=_text(payload, "Info"),
            message=_text(payload, "Message"),
        )
    if kind == "item":
        raw_items = payload.get("ItemInformation")
        if not isinstance(raw_items, list) or not raw_items:
            raise ValueError("an item update needs a non-empty ItemInformation list")
        items = []
        for raw in raw_items:
            if not isinstance(raw, dict):
                raise ValueError("every ItemInformation entry must be an object")
            quantity = raw.get("Quantity")
            items.append(
                ItemInformation(
                    sku=str(raw["Sku"]),
                    status=OrderStatus.parse(_status(raw)),
                    catalog_id=_text(raw, "CatalogId"),
                    quantity=int(quantity) if isinstance(quantity, int | str) else None,
                    tracking_info=_text(raw, "TrackingInfo"),
                    shipping_provider=_text(raw, "ShippingProvider"),
                    info=_text(raw, "Info"),
                    message=_text(raw, "Message"),
                )
            )
        return ItemStatusUpdate(order_id=str(payload["Id"]), items=tuple(items))
    raise ValueError(f"unknown update kind {kind!r}")


def _status(payload: Mapping[str, object]) -> str | int:
    value = payload.get("Status", 0)
    if isinstance(value, str | int):
        return value
    raise ValueError(f"Status {value!r} is neither a number nor a name")


def _text(payload: Mapping[str, object], key: str) -> str | None:
    value = payload.get(key)
    return None if value is None else str(value)


def send_outbox(
    db_path: Path | str,
    client: StatusUpdateSender,
    *,
    limit: int | None = None,
    clock: Clock = lambda: datetime.now(UTC),
) -> SendCounts:
    """Send the outbox's due updates (at most ``limit``), oldest first; return the counts.

    Raises the client's DropshipApiError, after recording the attempt, when the service refuses
    for a reason that is not the update's (401, 403, a redirect): fix the setup and run again.
    """
    counts = SendCounts()
    with connect(db_path) as con:
        due = outbox.due_updates(con, now=clock(), limit=limit)
        for update in due:
            outcome = _send_one(con, client, update, clock=clock)
            if outcome in ("sent", "confirmed") and update.is_acknowledgement:
                counts.acknowledged += 1
            if outcome == "sent":
                counts.sent += 1
            elif outcome == "confirmed":
                counts.confirmed += 1
            elif outcome == "failed":
                counts.failed += 1
            elif outcome == "gave up":
                counts.failed += 1
                break  # the outage that wore this update out meets the next one too
            else:
                counts.retrying += 1
                break
        counts.totals = outbox.state_counts(con)

    log.info(
        "Outbox: %d sent, %d found in the feed, %d to retry later, %d failed for good "
        "(due %d; totals %s)",
        counts.sent,
        counts.confirmed,
        counts.retrying,
        counts.failed,
        len(due),
        counts.totals,
    )
    return counts


def _send_one(
    con: duckdb.DuckDBPyConnection,
    client: StatusUpdateSender,
    update: OutboxUpdate,
    *,
    clock: Clock,
) -> str:
    """PUT one update and record the outcome.

    Returns ``sent``, ``confirmed`` (found in the feed, no PUT), ``failed``, ``retry`` or
    ``gave up``.
    """
    try:
        body = update_from_payload(update.kind, update.payload)
    except (KeyError, TypeError, ValueError) as exc:
        error = (
            f"Outbox update {update.update_id} for order {update.order_id} has a malformed "
            f"payload ({exc}); fix or delete the row, then requeue it."
        )
        with transaction(con):
            outbox.record_failed(con, update, http_status=None, error=error)
        log.warning("%s", error)
        return "failed"

    if update.in_flight:
        if update.is_acknowledgement and outbox.feed_shows_ordered(con, update.order_id):
            with transaction(con):
                outbox.record_sent(
                    con, update, http_status=None, sent_at=clock(), response=FEED_CONFIRMED
                )
            log.info(
                "Update %s for order %s was interrupted after its PUT went out, and the feed "
                "shows it arrived: marked sent without sending it again",
                update.update_id,
                update.order_id,
            )
            return "confirmed"
        log.warning(
            "Update %s for order %s was being sent when an earlier run stopped, and the feed "
            "does not show it: sending it again (the PUT overwrites, so a repeat is harmless)",
            update.update_id,
            update.order_id,
        )

    with transaction(con):
        outbox.record_attempt(con, update, attempted_at=clock())
    try:
        if isinstance(body, OrderStatusUpdate):
            receipt = client.order_status_update(body)
        else:
            receipt = client.item_status_update(body)
    except DropshipUnavailableError as exc:
        return _record_transient(con, update, exc, clock=clock)
    except DropshipApiError as exc:
        status = exc.status_code
        if status is not None and 400 <= status < 500 and status not in _SETUP_PROBLEMS:
            error = (
                f"Update {update.update_id} for order {update.order_id} was refused with "
                f"HTTP {status} ({exc.body or 'no message'}): check the order, then requeue it "
                "with dropship-pipeline requeue-failed."
            )
            with transaction(con):
                outbox.record_failed(con, update, http_status=status, error=error)
            log.warning("%s", error)
            return "failed"
        with transaction(con):
            outbox.record_retry(
                con,
                update,
                http_status=status,
                error=str(exc),
                next_attempt_at=clock(),
                retries=update.retries,
            )
        raise

    with transaction(con):
        outbox.record_sent(
            con,
            update,
            http_status=receipt.http_status,
            sent_at=clock(),
            response=_summary(receipt),
        )
    return "sent"


def _record_transient(
    con: duckdb.DuckDBPyConnection,
    update: OutboxUpdate,
    exc: DropshipUnavailableError,
    *,
    clock: Clock,
) -> str:
    """Hold the update back for a while, or give it up once it has failed too often in a row."""
    retries = update.retries + 1
    answer = f"HTTP {exc.status_code}" if exc.status_code else "no answer"
    if retries >= MAX_RETRIES:
        error = (
            f"Gave up on update {update.update_id} for order {update.order_id} after {retries} "
            f"transient failures in a row (the last: {answer}); once the service answers "
            "again, re-queue it with dropship-pipeline requeue-failed."
        )
        with transaction(con):
            outbox.record_failed(con, update, http_status=exc.status_code, error=error)
        log.warning("%s", error)
        return "gave up"

    wait = backoff(retries)
    with transaction(con):
        outbox.record_retry(
            con,
            update,
            http_status=exc.status_code,
            error=str(exc),
            next_attempt_at=clock() + wait,
            retries=retries,
        )
    log.warning(
        "Update %s for order %s not accepted yet (%s); next attempt in %s",
        update.update_id,
        update.order_id,
        answer,
        wait,
    )
    return "retry"


def _summary(receipt: StatusUpdateReceipt) -> str:
    """The service's answer as stored: its echo as compact JSON, or the bare status."""
    if not receipt.echo:
        return f"HTTP {receipt.http_status} without a body"
    return json.dumps(receipt.echo, separators=(",", ":"), ensure_ascii=False, default=str)
