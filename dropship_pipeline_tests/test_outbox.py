"""The outbox and its sender against the simulator on 127.0.0.1 and a real DuckDB file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from dropship_pipeline.dropship.auth import StaticToken
from dropship_pipeline.dropship.client import DropshipClient, RetryPolicy
from dropship_pipeline.dropship.crawl import crawl_feed
from dropship_pipeline.dropship.models import (
    ItemInformation,
    ItemStatusUpdate,
    OrderStatus,
    OrderStatusUpdate,
)
from dropship_pipeline.errors import DropshipApiError
from dropship_pipeline.fulfilment.outbox import (
    BACKOFF_BASE,
    FEED_CONFIRMED,
    MAX_RETRIES,
    send_outbox,
    update_from_payload,
)
from dropship_pipeline.simulator import SimulatorServer
from dropship_pipeline.store import outbox
from dropship_pipeline.store.db import connect, transaction
from dropship_pipeline.store.outbox import NewUpdate, ack_update_id

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "outbox-test-token"
# One attempt per send: a transient failure reaches the outbox at once instead of being retried
# inside the client.
ONE_TRY = RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0, max_total=5)
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server(make_simulator) -> SimulatorServer:
    return make_simulator(access_token=TOKEN, initial_orders=3)


@pytest.fixture
def db(server: SimulatorServer, tmp_path: Path) -> Path:
    path = tmp_path / "outbox.duckdb"
    with client_for(server) as client:
        crawl_feed(client, path, spool_dir=tmp_path / "spool")
    return path


def client_for(server: SimulatorServer, token: str = TOKEN) -> DropshipClient:
    return DropshipClient(
        api_url=server.base_url,
        supplier_id=server.state.supplier_ids[0],
        tokens=StaticToken(token),
        retry=ONE_TRY,
    )


def ack(order_id: str) -> NewUpdate:
    body = OrderStatusUpdate(order_id, OrderStatus.Ordered).to_json()
    return NewUpdate(ack_update_id(order_id), order_id, "order", 1, body)


def enqueue(db: Path, *updates: NewUpdate, now: datetime = T0) -> int:
    with connect(db) as con, transaction(con):
        return outbox.enqueue(con, updates, now=now)


def row(db: Path, update_id: str) -> dict[str, object]:
    with duckdb.connect(str(db), read_only=True) as con:
        cursor = con.execute("SELECT * FROM status_updates WHERE update_id = ?", [update_id])
        names = [column[0] for column in cursor.description]
        values = cursor.fetchone()
    assert values is not None
    return dict(zip(names, values, strict=True))


def send(db: Path, server: SimulatorServer, clock: Clock, **kwargs: object):
    with client_for(server, **kwargs) as client:  # type: ignore[arg-type]
        return send_outbox(db, client, clock=clock)


def test_an_update_id_is_written_once(server, db):
    order_id = server.state.order_ids()[0]

    assert enqueue(db, ack(order_id), ack(order_id)) == 1
    assert enqueue(db, ack(order_id)) == 0


def test_pending_updates_are_sent_oldest_first_and_never_again(server, db):
    order_ids = server.state.order_ids()
    enqueue(db, *(ack(order_id) for order_id in reversed(order_ids)))
    clock = Clock()

    counts = send(db, server, clock)
    again = send(db, server, clock)

    assert (counts.sent, counts.acknowledged, again.sent) == (3, 3, 0)
    assert [record.order_id for record in server.state.updates()] == list(reversed(order_ids))
    assert all(record.http_status == 202 for record in server.state.updates())
    sent = row(db, ack_update_id(order_ids[0]))
    assert (sent["state"], sent["http_status"], sent["attempts"]) == ("sent", 202, 1)
    assert sent["sent_at"] == T0
    with duckdb.connect(str(db), read_only=True) as con:
        acknowledged = con.execute(
            "SELECT count(*) FROM orders WHERE acknowledged_at = ?", [T0]
        ).fetchone()
    assert acknowledged == (3,)
    with connect(db) as con:
        assert outbox.requeue_failed(con) == 0  # a sent update is not failed: nothing to requeue


def test_an_unknown_order_fails_for_good_until_an_operator_requeues_it(server, db, tmp_path):
    enqueue(db, ack("00000000-0000-0000-0000-000000000000"))
    clock = Clock()

    counts = send(db, server, clock)

    assert counts.failed == 1
    failed = row(db, "ack:00000000-0000-0000-0000-000000000000")
    assert (failed["state"], failed["http_status"], failed["attempts"]) == ("failed", 404, 1)
    assert "00000000-0000-0000-0000-000000000000" in str(failed["last_error"])
    assert "requeue-failed" in str(failed["last_error"])
    assert send(db, server, clock).failed == 0  # a failed update is not tried again by itself

    env = {
        "DROPSHIP_SUPPLIER_ID": str(server.state.supplier_ids[0]),
        "DROPSHIP_ACCESS_TOKEN": TOKEN,
        "DROPSHIP_DB": str(db),
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DROPSHIP_", "DAGSTER"))}
    result = subprocess.run(
        [sys.executable, "-m", "dropship_pipeline.cli", "requeue-failed"],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "re-queued 1 failed update(s)"
    assert row(db, "ack:00000000-0000-0000-0000-000000000000")["state"] == "pending"

    assert send(db, server, clock).failed == 1  # still unknown: failed again, attempt 2
    assert row(db, "ack:00000000-0000-0000-0000-000000000000")["attempts"] == 2


def test_requeue_can_be_limited_to_one_order(server, db):
    unknown = ["11111111-0000-0000-0000-000000000000", "22222222-0000-0000-0000-000000000000"]
    enqueue(db, *(ack(order_id) for order_id in unknown))
    send(db, server, Clock())

    with connect(db) as con:
        assert outbox.requeue_failed(con, order_id=unknown[1]) == 1
        assert outbox.state_counts(con) == {"pending": 1, "sent": 0, "failed": 1}


@pytest.mark.parametrize(
    "fault", [{"server_error_every": 1}, {"rate_limit_every": 1, "retry_after_seconds": 0}]
)
def test_a_503_or_429_keeps_the_update_pending_until_its_next_attempt(server, db, fault):
    order_id = server.state.order_ids()[0]
    enqueue(db, ack(order_id))
    clock = Clock()
    server.state.set_faults(fault)

    counts = send(db, server, clock)

    assert counts.retrying == 1
    pending = row(db, ack_update_id(order_id))
    assert pending["state"] == "pending"
    assert pending["http_status"] in (429, 503)
    assert pending["attempts"] == 1
    assert pending["next_attempt_at"] == T0 + BACKOFF_BASE

    server.state.set_faults({"server_error_every": 0, "rate_limit_every": 0})
    clock.now = T0 + BACKOFF_BASE - timedelta(seconds=1)
    assert send(db, server, clock).sent == 0  # not yet due: no PUT at all
    clock.now = T0 + BACKOFF_BASE

    assert send(db, server, clock).sent == 1
    accepted = [r for r in server.state.updates(order_id) if r.http_status == 202]
    assert len(accepted) == 1
    done = row(db, ack_update_id(order_id))
    assert (done["state"], done["http_status"], done["attempts"]) == ("sent", 202, 2)
    assert done["last_error"] is None  # the earlier failure's message is gone with it
    assert json.loads(str(done["response"])) == {
        "Id": order_id,
        "Status": "Ordered",
        "TrackingInfo": None,
        "ShippingProvider": None,
        "Info": None,
        "Message": None,
    }


def test_a_transient_failure_keeps_its_status_and_message_until_the_next_attempt(server, db):
    order_id = server.state.order_ids()[0]
    enqueue(db, ack(order_id))
    server.state.set_faults({"server_error_every": 1})

    send(db, server, Clock())

    pending = row(db, ack_update_id(order_id))
    assert pending["http_status"] == 503
    assert "503" in str(pending["last_error"])
    assert pending["response"] is None
    assert pending["attempted_at"] is None  # the outcome is recorded: nothing in flight


def test_an_update_given_up_after_repeated_transient_failures_can_be_requeued(server, db):
    order_id = server.state.order_ids()[0]
    enqueue(db, ack(order_id))
    server.state.set_faults({"server_error_every": 1})
    clock = Clock()

    for _ in range(MAX_RETRIES - 1):
        assert send(db, server, clock).retrying == 1
        clock.now = row(db, ack_update_id(order_id))["next_attempt_at"]  # type: ignore[assignment]
    assert row(db, ack_update_id(order_id))["state"] == "pending"
    last = send(db, server, clock)

    given_up = row(db, ack_update_id(order_id))
    assert (last.failed, last.retrying) == (1, 0)
    assert (given_up["state"], given_up["attempts"]) == ("failed", MAX_RETRIES)
    assert given_up["http_status"] == 503
    assert f"after {MAX_RETRIES} transient failures" in str(given_up["last_error"])
    assert "dropship-pipeline requeue-failed" in str(given_up["last_error"])
    assert send(db, server, clock).failed == 0  # given up: not tried again by itself

    with connect(db) as con:
        assert outbox.requeue_failed(con) == 1
    send(db, server, clock)  # a fresh budget: the first failure waits the shortest backoff
    retrying = row(db, ack_update_id(order_id))
    assert retrying["state"] == "pending"
    assert retrying["next_attempt_at"] == clock.now + BACKOFF_BASE


def mark_in_flight(db: Path, update_id: str) -> None:
    """What a run commits right before its PUT: the state a crash after the PUT leaves."""
    with connect(db) as con:
        (update,) = [u for u in outbox.due_updates(con, now=T0) if u.update_id == update_id]
        with transaction(con):
            outbox.record_attempt(con, update, attempted_at=T0)


def test_an_acknowledgement_whose_put_went_out_before_a_crash_is_not_sent_again(
    server, db, tmp_path
):
    order_id = server.state.order_ids()[0]
    enqueue(db, ack(order_id))
    mark_in_flight(db, ack_update_id(order_id))
    with client_for(server) as client:  # the PUT that went out; then the run died
        client.order_status_update(OrderStatusUpdate(order_id, OrderStatus.Ordered))
        crawl_feed(client, db, spool_dir=tmp_path / "spool")  # the next run's ingest
    puts = len(server.state.updates())

    counts = send(db, server, Clock())

    assert (counts.sent, counts.confirmed, counts.acknowledged) == (0, 1, 1)
    assert len(server.state.updates()) == puts
    done = row(db, ack_update_id(order_id))
    assert (done["state"], done["http_status"], done["attempts"]) == ("sent", None, 1)
    assert done["response"] == FEED_CONFIRMED
    assert done["attempted_at"] is None
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "SELECT acknowledged_at FROM orders WHERE order_id = ?", [order_id]
        ).fetchone() == (T0,)


def test_an_update_in_flight_that_the_feed_does_not_show_is_sent_again_with_a_warning(
    server, db, caplog
):
    order_id = server.state.order_ids()[0]
    enqueue(db, ack(order_id))
    mark_in_flight(db, ack_update_id(order_id))  # and the run died before its PUT left

    with caplog.at_level(logging.WARNING, logger="dropship_pipeline.fulfilment.outbox"):
        counts = send(db, server, Clock())

    assert (counts.sent, counts.confirmed) == (1, 0)
    assert [r.http_status for r in server.state.updates(order_id)] == [202]
    assert row(db, ack_update_id(order_id))["attempts"] == 2
    assert any("sending it again" in record.getMessage() for record in caplog.records)


def test_a_later_update_of_an_order_waits_for_the_earlier_one(server, db):
    first, other = server.state.order_ids()[:2]
    shipped = OrderStatusUpdate(first, OrderStatus.Shipped, tracking_info="1Z1")
    enqueue(db, ack(first))
    enqueue(db, NewUpdate(f"ship:{first}", first, "order", 2, shipped.to_json()), ack(other))
    with connect(db) as con, transaction(con):
        con.execute(
            "UPDATE status_updates SET next_attempt_at = ? WHERE update_id = ?",
            [T0 + timedelta(minutes=5), ack_update_id(first)],
        )

    with connect(db) as con:
        due = [update.update_id for update in outbox.due_updates(con, now=T0)]

    assert due == [ack_update_id(other)]


def test_an_item_update_is_sent_from_its_payload(server, db):
    order = server.state.orders()[0]
    sku = order["items"][0]["sku"]
    body = ItemStatusUpdate(
        order["order_id"], (ItemInformation(sku, OrderStatus.BackOrdered, quantity=1),)
    ).to_json()
    enqueue(db, NewUpdate("items:1", order["order_id"], "item", 3, body))

    assert send(db, server, Clock()).sent == 1

    (record,) = server.state.updates()
    assert (record.kind, record.http_status, record.body) == ("item", 202, body)
    assert row(db, "items:1")["state"] == "sent"


def test_a_malformed_payload_fails_without_a_put(server, db):
    order_id = server.state.order_ids()[0]
    enqueue(db, NewUpdate("bad:1", order_id, "order", 1, {"Status": 1}))

    assert send(db, server, Clock()).failed == 1
    assert server.state.updates() == []
    assert "malformed payload" in str(row(db, "bad:1")["last_error"])


def test_a_refused_token_stops_the_round_and_keeps_the_update_pending(server, db):
    order_id = server.state.order_ids()[0]
    enqueue(db, ack(order_id))

    with pytest.raises(DropshipApiError) as raised:
        send(db, server, Clock(), token="wrong-token")

    assert raised.value.status_code == 401
    refused = row(db, ack_update_id(order_id))
    assert (refused["state"], refused["http_status"]) == ("pending", 401)
    assert "wrong-token" not in str(refused["last_error"])


def test_payloads_round_trip_into_the_typed_bodies():
    order = OrderStatusUpdate("o-1", OrderStatus.Shipped, tracking_info="A,B", message="m")
    items = ItemStatusUpdate(
        "o-1", (ItemInformation("0012", OrderStatus.PartiallyShipped, quantity=2),)
    )

    assert update_from_payload("order", order.to_json()) == order
    assert update_from_payload("item", items.to_json()) == items
    with pytest.raises(ValueError):
        update_from_payload("parcel", {"Id": "o-1"})
