"""DropshipClient against a mock transport (instant, with a fake clock) and one real socket."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import pytest

from dropship_pipeline.dropship.auth import PasswordGrant, StaticToken
from dropship_pipeline.dropship.client import (
    DropshipClient,
    RetryPolicy,
    parse_reset_timestamp,
    rate_limit_reset_seconds,
)
from dropship_pipeline.dropship.models import (
    EchoedItem,
    ItemInformation,
    ItemStatusUpdate,
    OrderStatus,
    OrderStatusUpdate,
)
from dropship_pipeline.errors import DropshipApiError, DropshipUnavailableError
from dropship_pipeline.settings import Settings

API = "https://dropship.example.test/v1"
FEED = f"{API}/Suppliers(60455)/Notifications"
ORDER_ID = "0b05f9fb-1210-4494-b654-d051948716b4"
ATOM_BODY = b"<feed xmlns='http://www.w3.org/2005/Atom'><id>x</id></feed>"
STEADY = RetryPolicy(jitter=False)

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Tokens:
    """A token source that hands out tok-1, tok-2, … and records what was invalidated."""

    def __init__(self) -> None:
        self.issued = 1
        self.invalidated: list[str] = []

    def token(self) -> str:
        return f"tok-{self.issued}"

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if token == self.token():
            self.issued += 1


class Recorder:
    """Answers requests from a script of responses (or exceptions) and keeps every request."""

    def __init__(self, *script: httpx.Response | Exception | Handler) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step


def atom(status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, content=ATOM_BODY, headers={"Content-Type": "application/atom+xml", **headers}
    )


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Iterator[Callable[..., DropshipClient]]:
    made: list[DropshipClient] = []

    def make(
        recorder: Recorder, *, tokens: object | None = None, retry: RetryPolicy = STEADY
    ) -> DropshipClient:
        client = DropshipClient(
            api_url=API,
            supplier_id=60455,
            tokens=tokens if tokens is not None else Tokens(),  # type: ignore[arg-type]
            retry=retry,
            transport=httpx.MockTransport(recorder),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# ---- feed pages -------------------------------------------------------------------------


def test_current_page_url_is_the_suppliers_notifications(make_client) -> None:
    client = make_client(Recorder(atom()))

    assert client.current_page_url == FEED


def test_fetch_page_sends_the_bearer_token_and_asks_for_atom(make_client) -> None:
    recorder = Recorder(atom())
    client = make_client(recorder)

    page = client.fetch_page(FEED)

    assert page.body == ATOM_BODY
    assert page.status_code == 200
    assert page.content_type == "application/atom+xml"
    assert page.url == FEED
    request = recorder.requests[0]
    assert request.method == "GET"
    assert request.headers["Authorization"] == "Bearer tok-1"
    assert request.headers["Accept"] == "application/atom+xml"


def test_fetch_page_sends_the_client_wide_headers_too(make_client) -> None:
    recorder = Recorder(atom())

    make_client(recorder).fetch_page(FEED)

    assert recorder.requests[0].headers["User-Agent"].startswith("dropship-pipeline/")


def test_each_call_logs_one_info_line_with_method_path_status_and_attempt(
    make_client, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="dropship_pipeline")
    client = make_client(Recorder(httpx.Response(503), atom()))

    client.fetch_page(FEED + "?secret=abc")

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("dropship_pipeline")]
    assert len(lines) == 2
    assert lines[0].startswith("GET /v1/Suppliers(60455)/Notifications -> 503 in ")
    assert lines[0].endswith("(attempt 1)")
    assert " -> 200 " in lines[1] and lines[1].endswith("(attempt 2)")
    assert "secret" not in caplog.text


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.test/v1/Suppliers(60455)/Notifications",
        "http://dropship.example.test/v1/Suppliers(60455)/Notifications",
        "https://dropship.example.test:8443/v1/Suppliers(60455)/Notifications",
        "https://dropship.example.test/v2/Suppliers(60455)/Notifications",
        "https://dropship.example.test/v1x/Suppliers(60455)/Notifications",
        "https://dropship.example.test/v1/%2e%2e/admin",
        "https://user@dropship.example.test/v1/Suppliers(60455)/Notifications",
        "https://dropship.example.test.evil.test/v1/Suppliers(60455)/Notifications",
        "ftp://dropship.example.test/v1/Suppliers(60455)/Notifications",
    ],
)
def test_a_link_off_the_api_origin_is_refused_without_any_request(make_client, link) -> None:
    recorder = Recorder(atom())
    client = make_client(recorder)

    with pytest.raises(DropshipApiError) as caught:
        client.fetch_page(link)

    assert recorder.requests == []
    assert link in str(caught.value)
    assert "tok-" not in str(caught.value)


@pytest.mark.parametrize(
    "link",
    [
        "https://dropship.example.test/v1/Suppliers(60455)/Notifications/Pages(abc)",
        "https://DROPSHIP.example.test:443/v1/Suppliers(60455)/Notifications",
    ],
)
def test_a_link_on_the_api_origin_under_its_base_path_is_fetched(make_client, link) -> None:
    recorder = Recorder(atom())
    client = make_client(recorder)

    client.fetch_page(link)

    assert len(recorder.requests) == 1


def test_a_redirect_is_not_followed(make_client) -> None:
    recorder = Recorder(httpx.Response(302, headers={"Location": "https://evil.example.test/"}))
    client = make_client(recorder)

    with pytest.raises(DropshipApiError, match="redirect"):
        client.fetch_page(FEED)

    assert len(recorder.requests) == 1


# ---- 401 --------------------------------------------------------------------------------


def test_a_401_invalidates_the_token_and_retries_once_with_a_fresh_one(make_client) -> None:
    tokens = Tokens()
    recorder = Recorder(httpx.Response(401, text="Invalid token"), atom())
    client = make_client(recorder, tokens=tokens)

    page = client.fetch_page(FEED)

    assert page.status_code == 200
    assert tokens.invalidated == ["tok-1"]
    sent = [r.headers["Authorization"] for r in recorder.requests]
    assert sent == ["Bearer tok-1", "Bearer tok-2"]


def test_a_second_401_raises_with_the_status(make_client) -> None:
    recorder = Recorder(httpx.Response(401, text="Invalid token"))
    client = make_client(recorder)

    with pytest.raises(DropshipApiError) as caught:
        client.fetch_page(FEED)

    assert caught.value.status_code == 401
    assert "Invalid token" in str(caught.value)
    assert "freshly issued" in str(caught.value)
    assert len(recorder.requests) == 2


def test_a_refused_fixed_token_is_reported_as_such_after_one_request(make_client) -> None:
    recorder = Recorder(httpx.Response(401, text="Invalid token"))
    client = make_client(recorder, tokens=StaticToken("fixed-token-value"))

    with pytest.raises(DropshipApiError) as caught:
        client.fetch_page(FEED)

    assert "DROPSHIP_ACCESS_TOKEN" in str(caught.value)
    assert "fixed-token-value" not in str(caught.value)
    assert len(recorder.requests) == 1


# ---- rate limits ------------------------------------------------------------------------


def test_429_waits_for_retry_after_seconds(make_client, fake_time) -> None:
    recorder = Recorder(
        httpx.Response(429, text="rate limit exceeded", headers={"Retry-After": "7"}), atom()
    )
    client = make_client(recorder)

    client.fetch_page(FEED)

    assert fake_time.sleeps == [7.0]
    assert len(recorder.requests) == 2


def test_429_waits_for_a_retry_after_http_date(make_client, fake_time) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": when}), atom())
    client = make_client(recorder)

    client.fetch_page(FEED)

    assert len(fake_time.sleeps) == 1
    assert 17.0 <= fake_time.sleeps[0] <= 20.0


def test_429_without_retry_after_waits_for_the_reset_seconds(make_client, fake_time) -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-ResetSeconds": "12"}
    client = make_client(Recorder(httpx.Response(429, headers=headers), atom()))

    client.fetch_page(FEED)

    assert fake_time.sleeps == [12.0]


def test_429_with_only_the_reset_stamp_waits_until_then(make_client, fake_time) -> None:
    reset = datetime.now(UTC) + timedelta(seconds=15)
    stamp = reset.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    client = make_client(
        Recorder(httpx.Response(429, headers={"X-RateLimit-Reset": stamp}), atom())
    )

    client.fetch_page(FEED)

    assert len(fake_time.sleeps) == 1
    assert 13.0 <= fake_time.sleeps[0] <= 15.0


def test_a_server_wait_longer_than_max_delay_is_waited_in_full(make_client, fake_time) -> None:
    client = make_client(Recorder(httpx.Response(429, headers={"Retry-After": "45"}), atom()))

    client.fetch_page(FEED)

    assert fake_time.sleeps == [45.0]


def test_a_server_wait_past_the_total_budget_gives_up_at_once(make_client, fake_time) -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "3600"}), atom())
    client = make_client(recorder)

    with pytest.raises(DropshipUnavailableError, match="asked to wait 3600 s"):
        client.fetch_page(FEED)

    assert fake_time.sleeps == []
    assert len(recorder.requests) == 1


def test_a_5xx_echoing_the_token_does_not_put_it_in_the_error(make_client) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text=f"upstream said: {request.headers['Authorization']}")

    client = make_client(Recorder(echo))

    with pytest.raises(DropshipUnavailableError) as caught:
        client.fetch_page(FEED)

    assert "tok-1" not in str(caught.value)
    assert "[token]" in str(caught.value)


def test_a_body_past_the_size_limit_is_refused_not_read_on(make_client, monkeypatch) -> None:
    monkeypatch.setattr("dropship_pipeline.dropship.client.MAX_BODY_BYTES", 1000)
    recorder = Recorder(httpx.Response(200, content=b"<feed>" + b" " * 5000 + b"</feed>"))
    client = make_client(recorder)

    with pytest.raises(DropshipApiError, match="more than"):
        client.fetch_page(FEED)

    assert len(recorder.requests) == 1


def test_remaining_zero_on_success_pauses_before_the_next_call(make_client, fake_time) -> None:
    spent = atom(**{"X-RateLimit-Remaining": "0", "X-RateLimit-ResetSeconds": "9"})
    client = make_client(Recorder(spent, atom()))

    client.fetch_page(FEED)
    assert fake_time.sleeps == []
    client.fetch_page(FEED)

    assert fake_time.sleeps == [9.0]


def test_remaining_above_zero_does_not_pause(make_client, fake_time) -> None:
    plenty = atom(**{"X-RateLimit-Remaining": "999", "X-RateLimit-ResetSeconds": "9"})
    client = make_client(Recorder(plenty))

    client.fetch_page(FEED)
    client.fetch_page(FEED)

    assert fake_time.sleeps == []


def test_the_reset_stamp_keeps_seven_fractional_digits_apart() -> None:
    stamp = parse_reset_timestamp("2016-02-25T13:00:00.1234567Z")

    assert stamp == datetime(2016, 2, 25, 13, 0, 0, 123456, UTC)
    assert parse_reset_timestamp("2016-02-25T15:00:00.0000000+02:00") == datetime(
        2016, 2, 25, 13, 0, tzinfo=UTC
    )
    assert parse_reset_timestamp("soon") is None
    assert rate_limit_reset_seconds(httpx.Headers({"X-RateLimit-Reset": "garbage"})) is None


# ---- transient failures -----------------------------------------------------------------


def test_503_then_success_backs_off_once(make_client, fake_time) -> None:
    recorder = Recorder(httpx.Response(503, text="busy"), atom())
    client = make_client(recorder)

    page = client.fetch_page(FEED)

    assert page.status_code == 200
    assert fake_time.sleeps == [STEADY.base_delay]


def test_backoff_with_jitter_stays_below_the_exponential_cap(make_client, fake_time) -> None:
    policy = RetryPolicy(max_attempts=5)
    client = make_client(Recorder(httpx.Response(500)), retry=policy)

    with pytest.raises(DropshipUnavailableError):
        client.fetch_page(FEED)

    caps = [0.5, 1.0, 2.0, 4.0]
    assert len(fake_time.sleeps) == 4
    assert all(0.0 <= slept <= cap for slept, cap in zip(fake_time.sleeps, caps, strict=True))


def test_exhausted_retries_raise_unavailable_naming_the_call(make_client, fake_time) -> None:
    recorder = Recorder(httpx.Response(503, json={"Message": "maintenance"}))
    client = make_client(recorder)

    with pytest.raises(DropshipUnavailableError) as caught:
        client.fetch_page(FEED)

    message = str(caught.value)
    assert f"GET feed page {FEED}" in message
    assert "HTTP 503" in message and "maintenance" in message
    assert "6 attempts" in message
    assert len(recorder.requests) == 6
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert caught.value.call == f"GET feed page {FEED}"


def test_total_time_is_bounded_as_well_as_attempts(make_client, fake_time) -> None:
    policy = RetryPolicy(max_attempts=100, max_total=100.0, jitter=False)
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "30"}))
    client = make_client(recorder, retry=policy)

    with pytest.raises(DropshipUnavailableError, match="4 attempts"):
        client.fetch_page(FEED)

    assert sum(fake_time.sleeps) <= 100.0
    assert len(recorder.requests) == 4


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection without sending complete body"),
    ],
    ids=["connect", "read-timeout", "dropped"],
)
def test_transport_errors_are_retried(make_client, fake_time, failure) -> None:
    recorder = Recorder(failure, atom())
    client = make_client(recorder)

    page = client.fetch_page(FEED)

    assert page.body == ATOM_BODY
    assert len(recorder.requests) == 2
    assert fake_time.sleeps == [0.5]


def test_exhausted_transport_errors_name_the_error(make_client) -> None:
    client = make_client(Recorder(httpx.ConnectError("connection refused")))

    with pytest.raises(DropshipUnavailableError, match="ConnectError: connection refused"):
        client.fetch_page(FEED)


def test_400_is_not_retried_and_quotes_the_server(make_client, fake_time) -> None:
    answer = httpx.Response(400, json={"Message": "The request is invalid"})
    recorder = Recorder(answer)
    client = make_client(recorder)

    with pytest.raises(DropshipApiError) as caught:
        client.fetch_page(FEED + "/Pages(nope)")

    assert not isinstance(caught.value, DropshipUnavailableError)
    assert "The request is invalid" in str(caught.value)
    assert "HTTP 400" in str(caught.value)
    assert caught.value.status_code == 400
    assert len(recorder.requests) == 1
    assert fake_time.sleeps == []


def test_a_long_plain_text_error_is_truncated(make_client) -> None:
    client = make_client(Recorder(httpx.Response(404, text="Not found " + "x" * 2000)))

    with pytest.raises(DropshipApiError) as caught:
        client.fetch_page(FEED)

    assert "Not found" in str(caught.value)
    assert len(caught.value.body) <= 300
    assert len(str(caught.value)) < 500


# ---- status PUTs ------------------------------------------------------------------------


def test_order_status_update_puts_the_documented_json(make_client) -> None:
    echo = {"Id": ORDER_ID, "Status": "Shipped", "TrackingInfo": "1Z9", "Info": None}
    recorder = Recorder(httpx.Response(202, json=echo))
    client = make_client(recorder)
    update = OrderStatusUpdate(
        order_id=ORDER_ID,
        status=OrderStatus.Shipped,
        tracking_info="1Z9",
        shipping_provider="UPS",
        message="No errors",
    )

    receipt = client.order_status_update(update)

    request = recorder.requests[0]
    assert request.method == "PUT"
    assert str(request.url) == f"{API}/Suppliers(60455)/Orders({ORDER_ID})/OrderStatusUpdate"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Bearer tok-1"
    body = json.loads(request.content)
    assert body == {
        "Id": ORDER_ID,
        "Status": 2,
        "TrackingInfo": "1Z9",
        "ShippingProvider": "UPS",
        "Message": "No errors",
    }
    assert type(body["Status"]) is int
    assert receipt.http_status == 202
    assert receipt.echo == echo
    assert (receipt.order_id, receipt.status, receipt.tracking_info) == (
        ORDER_ID,
        OrderStatus.Shipped,
        "1Z9",
    )


def test_item_status_update_puts_every_item_with_numeric_status(make_client) -> None:
    echoed_items = [
        # As the service answers: status as a name, CatalogId filled in, a tracking number
        # sent as a bare number returned as text; and one item in a shape it never sends.
        {
            "Sku": "abc123",
            "CatalogId": "c-1",
            "Quantity": 1,
            "Status": "PartiallyShipped",
            "TrackingInfo": 9870873242,
        },
        {"Sku": "def456", "Quantity": "2", "Status": 3, "TrackingInfo": None},
        {"Sku": "ghi789", "Status": "Exception"},
        "not an item",
    ]
    echo = {"Id": ORDER_ID, "ItemInformation": echoed_items}
    recorder = Recorder(httpx.Response(202, json=echo))
    client = make_client(recorder)
    update = ItemStatusUpdate(
        order_id=ORDER_ID,
        items=(
            ItemInformation(sku="abc123", status=OrderStatus.PartiallyShipped, quantity=1),
            ItemInformation(sku="def456", status=OrderStatus.BackOrdered, message="late"),
        ),
    )

    receipt = client.item_status_update(update)

    request = recorder.requests[0]
    assert request.url.path == f"/v1/Suppliers(60455)/Orders({ORDER_ID})/ItemStatusUpdate"
    body = json.loads(request.content)
    assert body == {
        "Id": ORDER_ID,
        "ItemInformation": [
            {"Sku": "abc123", "Status": 6, "Quantity": 1},
            {"Sku": "def456", "Status": 3, "Message": "late"},
        ],
    }
    assert all(type(item["Status"]) is int for item in body["ItemInformation"])
    assert receipt.items == (
        EchoedItem("abc123", OrderStatus.PartiallyShipped, "c-1", 1, "9870873242"),
        EchoedItem("def456", OrderStatus.BackOrdered, None, None, None),
        EchoedItem("ghi789", None, None, None, None),
    )


@pytest.mark.parametrize("status", [200, 204])
def test_put_also_accepts_200_and_204(make_client, status) -> None:
    client = make_client(Recorder(httpx.Response(status)))

    receipt = client.order_status_update(OrderStatusUpdate(ORDER_ID, OrderStatus.Ordered))

    assert receipt.http_status == status
    assert receipt.echo == {}


def test_put_is_retried_on_503_and_sends_the_same_body(make_client) -> None:
    recorder = Recorder(httpx.Response(503), httpx.Response(202, json={"Id": ORDER_ID}))
    client = make_client(recorder)

    client.order_status_update(OrderStatusUpdate(ORDER_ID, OrderStatus.Ordered))

    assert len(recorder.requests) == 2
    assert recorder.requests[0].content == recorder.requests[1].content


def test_a_refused_put_names_the_order(make_client) -> None:
    client = make_client(Recorder(httpx.Response(404, text="Not found")))

    with pytest.raises(DropshipApiError) as caught:
        client.order_status_update(OrderStatusUpdate(ORDER_ID, OrderStatus.Ordered))

    assert f"PUT OrderStatusUpdate for order {ORDER_ID}" in str(caught.value)
    assert "404" in str(caught.value) and "Not found" in str(caught.value)


def test_exhausted_put_names_the_call(make_client) -> None:
    client = make_client(Recorder(httpx.ReadTimeout("timed out")))

    with pytest.raises(DropshipUnavailableError) as caught:
        client.item_status_update(
            ItemStatusUpdate(ORDER_ID, (ItemInformation("abc", OrderStatus.Shipped),))
        )

    assert f"PUT ItemStatusUpdate for order {ORDER_ID}" in str(caught.value)
    assert "ReadTimeout" in str(caught.value)


def test_an_odd_order_id_stays_one_path_segment(make_client) -> None:
    recorder = Recorder(httpx.Response(202))
    client = make_client(recorder)

    client.order_status_update(OrderStatusUpdate("../../x?y", OrderStatus.Ordered))

    assert recorder.requests[0].url.path.startswith("/v1/Suppliers(60455)/Orders(")
    assert recorder.requests[0].url.query == b""


# ---- from_settings ----------------------------------------------------------------------


def test_from_settings_uses_the_fixed_token_when_set() -> None:
    recorder = Recorder(atom())
    settings = Settings(supplier_id=7, api_url=API, access_token="fixed-abc")

    with DropshipClient.from_settings(settings, transport=httpx.MockTransport(recorder)) as client:
        client.fetch_page(client.current_page_url)

    assert recorder.requests[0].headers["Authorization"] == "Bearer fixed-abc"
    assert recorder.requests[0].url.path == "/v1/Suppliers(7)/Notifications"


def test_from_settings_uses_the_password_grant_otherwise() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.example.test":
            return httpx.Response(
                200, json={"access_token": "granted", "expires_in": 43199, "refresh_token": "r"}
            )
        return atom()

    recorder = Recorder(answer)
    settings = Settings(
        supplier_id=7,
        api_url=API,
        auth_url="https://accounts.example.test/v1",
        client_id="cid",
        client_secret="csecret",
        username="user@example.test",
        password="pw",
    )

    with DropshipClient.from_settings(settings, transport=httpx.MockTransport(recorder)) as client:
        client.fetch_page(client.current_page_url)

    token_request, page_request = recorder.requests
    assert str(token_request.url) == "https://accounts.example.test/v1/oauth2/token"
    assert parse_qs(token_request.content.decode())["grant_type"] == ["password"]
    assert page_request.headers["Authorization"] == "Bearer granted"
    assert "csecret" not in repr(client)


# ---- a real socket ----------------------------------------------------------------------


class _LiveDropship(BaseHTTPRequestHandler):
    """A token endpoint and one feed page; the first page answer is cut off mid-body."""

    protocol_version = "HTTP/1.1"
    server: _LiveServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        self.server.grants.append(form["grant_type"][0])
        token = f"live-token-{len(self.server.grants)}"
        body = json.dumps(
            {"access_token": token, "expires_in": 43199, "refresh_token": "live-refresh"}
        ).encode()
        self._answer(200, body, "application/json")

    def do_GET(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        attempt = len(self.server.authorizations)
        if attempt == 1:
            # Promise more bytes than are sent, then hang up: a connection lost mid-response.
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(ATOM_BODY) + 500))
            self.end_headers()
            self.wfile.write(ATOM_BODY[:20])
            self.wfile.flush()
            self.close_connection = True
            return
        if attempt == 2:
            self._answer(401, b"Invalid token", "text/plain")
            return
        self._answer(200, ATOM_BODY, "application/atom+xml")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


class _LiveServer(ThreadingHTTPServer):
    daemon_threads = True
    grants: list[str]
    authorizations: list[str]


@pytest.fixture
def live_server() -> Iterator[_LiveServer]:
    server = _LiveServer(("127.0.0.1", 0), _LiveDropship)
    server.grants = []
    server.authorizations = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_connection_dropped_mid_response_is_retried_on_a_real_socket(live_server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    base = f"http://127.0.0.1:{live_server.server_address[1]}/v1"
    fake_time = FakeTime()
    http = httpx.Client(timeout=5.0)
    tokens = PasswordGrant(
        base,
        "live-client",
        "live-client-secret",
        "live-user",
        "live-password",
        http=http,
    )

    try:
        with DropshipClient(
            api_url=base,
            supplier_id=60455,
            tokens=tokens,
            timeout=httpx.Timeout(5.0),
            retry=STEADY,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        ) as client:
            page = client.fetch_page(client.current_page_url)
    finally:
        http.close()

    assert page.body == ATOM_BODY
    assert fake_time.sleeps == [STEADY.base_delay]
    assert live_server.grants == ["password", "refresh_token"]
    assert live_server.authorizations == [
        "Bearer live-token-1",
        "Bearer live-token-1",
        "Bearer live-token-2",
    ]
    assert "RemoteProtocolError" in caplog.text
    for secret in ("live-token", "live-refresh", "live-client-secret", "live-password"):
        assert secret not in caplog.text


class _Trickle(BaseHTTPRequestHandler):
    """Answers every GET with a body sent a byte at a time, each byte well inside the read
    timeout: only a deadline on the whole attempt ends it."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(ATOM_BODY)))
        self.end_headers()
        try:
            for byte in ATOM_BODY:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                threading.Event().wait(0.05)
        except OSError:
            pass  # the client hung up, as it should

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_a_trickling_answer_is_cut_off_by_the_attempt_deadline(monkeypatch) -> None:
    monkeypatch.setattr("dropship_pipeline.dropship.client.ATTEMPT_DEADLINE", 0.3)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    fake_time = FakeTime()

    client = DropshipClient(
        api_url=base,
        supplier_id=60455,
        tokens=StaticToken("trickle-token"),
        timeout=httpx.Timeout(5.0),
        retry=RetryPolicy(max_attempts=2, jitter=False),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    try:
        with pytest.raises(DropshipUnavailableError, match="ReadTimeout: the answer took longer"):
            client.fetch_page(client.current_page_url)
    finally:
        client.close()
        server.shutdown()
        server.server_close()

    assert fake_time.sleeps == [0.5]


@pytest.mark.parametrize(
    "api_url", ["http://dropship.example.test/v1", "ftp://127.0.0.1/v1", "/v1"]
)
def test_an_insecure_api_url_is_refused(api_url) -> None:
    with pytest.raises(ValueError, match="https://"):
        DropshipClient(api_url=api_url, supplier_id=1, tokens=StaticToken("t"))


def test_exhausted_retries_carry_the_last_status(make_client) -> None:
    client = make_client(Recorder(httpx.Response(502)))

    with pytest.raises(DropshipUnavailableError) as caught:
        client.fetch_page(FEED)

    assert caught.value.status_code == 502


@pytest.mark.parametrize("proxied", [False, True])
def test_a_proxy_set_in_the_environment_is_used(live_server, monkeypatch, proxied) -> None:
    """Requests go to the transport straight only while no proxy would take them elsewhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    if proxied:
        # A port nobody listens on: through this proxy the page can only fail.
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    base = f"http://127.0.0.1:{live_server.server_address[1]}/v1"
    live_server.authorizations.extend(["", ""])  # past the dropped answer and the 401

    with DropshipClient(
        api_url=base,
        supplier_id=60455,
        tokens=StaticToken("fixed"),
        retry=RetryPolicy(max_attempts=2, base_delay=0.01, jitter=False),
    ) as client:
        if proxied:
            with pytest.raises(DropshipUnavailableError, match="ConnectError"):
                client.fetch_page(client.current_page_url)
        else:
            assert client.fetch_page(client.current_page_url).body == ATOM_BODY

    assert len(live_server.authorizations) == (2 if proxied else 3)


def test_a_closed_client_sends_nothing(make_client) -> None:
    recorder = Recorder(atom())
    client = make_client(recorder)
    client.close()

    with pytest.raises(RuntimeError, match="closed"):
        client.fetch_page(FEED)
    assert recorder.requests == []
