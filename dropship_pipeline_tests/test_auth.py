"""Tokens: the fixed token and the password grant, against a mock token endpoint."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs

import httpx
import pytest

from dropship_pipeline.dropship.auth import PasswordGrant, StaticToken, TokenSource
from dropship_pipeline.dropship.client import DropshipClient, RetryPolicy
from dropship_pipeline.errors import (
    DropshipApiError,
    DropshipAuthError,
    DropshipUnavailableError,
)

AUTH = "https://accounts.example.test/v1"
API = "https://dropship.example.test/v1"
CLIENT_SECRET = "client-secret-Zq81"
PASSWORD = "user-password-Kw27"
USERNAME = "supplier@example.test"
STEADY = RetryPolicy(jitter=False)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TokenEndpoint:
    """A scripted ``/oauth2/token``: issues numbered tokens unless told to refuse."""

    def __init__(self, expires_in: int = 43199) -> None:
        self.expires_in = expires_in
        self.forms: list[dict[str, str]] = []
        self.refusals: dict[str, httpx.Response] = {}
        self.failures: list[httpx.Response | Exception] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/oauth2/token"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        with self.lock:
            self.forms.append(form)
            number = len(self.forms)
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        refusal = self.refusals.get(form["grant_type"])
        if refusal is not None:
            return refusal
        return httpx.Response(
            200,
            json={
                "access_token": f"access-{number}-Aa9",
                "expires_in": self.expires_in,
                "refresh_token": f"refresh-{number}-Bb8",
            },
        )

    @property
    def grant_types(self) -> list[str]:
        return [form["grant_type"] for form in self.forms]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def endpoint() -> TokenEndpoint:
    return TokenEndpoint()


@pytest.fixture
def make_grant(fake_time: FakeTime) -> Iterator[Callable[..., PasswordGrant]]:
    clients: list[httpx.Client] = []

    def make(endpoint: TokenEndpoint, **options: object) -> PasswordGrant:
        http = httpx.Client(transport=httpx.MockTransport(endpoint))
        clients.append(http)
        return PasswordGrant(
            AUTH,
            "client-id-1",
            CLIENT_SECRET,
            USERNAME,
            PASSWORD,
            http=http,
            clock=fake_time.clock,
            sleep=fake_time.sleep,
            retry=STEADY,
            **options,  # type: ignore[arg-type]
        )

    yield make
    for http in clients:
        http.close()


# ---- the fixed token --------------------------------------------------------------------


def test_static_token_is_returned_as_given_and_survives_invalidate() -> None:
    source = StaticToken("fixed-token-Cc7")

    source.invalidate("fixed-token-Cc7")

    assert source.token() == "fixed-token-Cc7"
    assert isinstance(source, TokenSource)
    assert "fixed-token-Cc7" not in repr(source) and "fixed-token-Cc7" not in str(source)


def test_static_token_must_not_be_empty() -> None:
    with pytest.raises(ValueError):
        StaticToken("  ")


# ---- the password grant -----------------------------------------------------------------


def test_password_grant_posts_the_documented_form(make_grant, endpoint) -> None:
    grant = make_grant(endpoint)

    token = grant.token()

    assert token == "access-1-Aa9"
    assert endpoint.forms == [
        {
            "grant_type": "password",
            "username": USERNAME,
            "password": PASSWORD,
            "client_id": "client-id-1",
            "client_secret": CLIENT_SECRET,
        }
    ]


def test_the_token_is_reused_until_the_refresh_margin(make_grant, endpoint, fake_time) -> None:
    grant = make_grant(endpoint)
    grant.token()

    fake_time.now += 43199 - 301
    token = grant.token()

    assert token == "access-1-Aa9"
    assert endpoint.grant_types == ["password"]


def test_the_token_is_refreshed_inside_the_margin(make_grant, endpoint, fake_time) -> None:
    grant = make_grant(endpoint)
    grant.token()

    fake_time.now += 43199 - 299
    token = grant.token()

    assert token == "access-2-Aa9"
    assert endpoint.grant_types == ["password", "refresh_token"]
    assert endpoint.forms[1] == {
        "grant_type": "refresh_token",
        "client_id": "client-id-1",
        "client_secret": CLIENT_SECRET,
        "refresh_token": "refresh-1-Bb8",
    }


def test_a_short_lived_token_is_refreshed_at_nine_tenths_of_its_life(make_grant, fake_time) -> None:
    endpoint = TokenEndpoint(expires_in=60)
    grant = make_grant(endpoint)
    grant.token()

    fake_time.now += 53
    grant.token()
    assert endpoint.grant_types == ["password"]
    fake_time.now += 2
    grant.token()

    assert endpoint.grant_types == ["password", "refresh_token"]


def test_a_refused_refresh_falls_back_to_the_password_grant(
    make_grant, endpoint, fake_time
) -> None:
    endpoint.refusals["refresh_token"] = httpx.Response(400, json={"error": "invalid_grant"})
    grant = make_grant(endpoint)
    grant.token()

    fake_time.now += 43199
    token = grant.token()

    assert token == "access-3-Aa9"
    assert endpoint.grant_types == ["password", "refresh_token", "password"]


def test_a_refused_refresh_and_a_refused_password_raise(make_grant, endpoint, fake_time) -> None:
    grant = make_grant(endpoint)
    grant.token()
    endpoint.refusals["refresh_token"] = httpx.Response(400, json={"error": "invalid_grant"})
    endpoint.refusals["password"] = httpx.Response(400, json={"error": "invalid_grant"})

    fake_time.now += 43199
    with pytest.raises(DropshipAuthError, match="DROPSHIP_USERNAME and DROPSHIP_PASSWORD"):
        grant.token()

    assert endpoint.grant_types == ["password", "refresh_token", "password"]


def test_invalidate_makes_the_next_call_refresh(make_grant, endpoint) -> None:
    grant = make_grant(endpoint)
    first = grant.token()

    grant.invalidate(first)

    assert grant.token() == "access-2-Aa9"
    assert endpoint.grant_types == ["password", "refresh_token"]


def test_invalidating_an_old_token_keeps_the_current_one(make_grant, endpoint) -> None:
    grant = make_grant(endpoint)
    first = grant.token()
    grant.invalidate(first)
    second = grant.token()

    grant.invalidate(first)

    assert grant.token() == second
    assert len(endpoint.forms) == 2


@pytest.mark.parametrize(
    ("answer", "code", "hint"),
    [
        (
            httpx.Response(400, json={"error": "invalid_client"}),
            "invalid_client",
            "DROPSHIP_CLIENT_ID and DROPSHIP_CLIENT_SECRET",
        ),
        (
            httpx.Response(400, json={"error": "invalid_grant", "error_description": "bad"}),
            "invalid_grant",
            "DROPSHIP_USERNAME and DROPSHIP_PASSWORD",
        ),
        (
            httpx.Response(400, text="unsupported_grant_type"),
            "unsupported_grant_type",
            "DROPSHIP_AUTH_URL",
        ),
        (
            httpx.Response(
                400,
                text="The authorization grant type ' ' is not supported by the server.",
            ),
            "unsupported_grant_type",
            "DROPSHIP_AUTH_URL",
        ),
    ],
    ids=["invalid_client", "invalid_grant", "plain-text", "faq-wording"],
)
def test_a_refused_grant_raises_auth_error_naming_the_code(
    make_grant, endpoint, answer, code, hint
) -> None:
    endpoint.refusals["password"] = answer
    grant = make_grant(endpoint)

    with pytest.raises(DropshipAuthError) as caught:
        grant.token()

    message = str(caught.value)
    assert code in message and hint in message
    assert caught.value.status_code == 400
    assert caught.value.body == code
    assert CLIENT_SECRET not in message and PASSWORD not in message
    assert len(endpoint.forms) == 1


def test_an_unrecognised_refusal_is_quoted_without_echoed_secrets(make_grant, endpoint) -> None:
    endpoint.refusals["password"] = httpx.Response(
        400, text=f"no such combination {USERNAME} / {PASSWORD}"
    )
    grant = make_grant(endpoint)

    with pytest.raises(DropshipAuthError) as caught:
        grant.token()

    assert "no such combination" in str(caught.value)
    assert PASSWORD not in str(caught.value) and USERNAME not in str(caught.value)


def test_a_5xx_echoing_the_form_does_not_put_secrets_in_the_error(make_grant, endpoint) -> None:
    echoed = f"bad gateway for password={PASSWORD}&client_secret={CLIENT_SECRET}"
    endpoint.failures += [httpx.Response(502, text=echoed)] * 10
    grant = make_grant(endpoint)

    with pytest.raises(DropshipUnavailableError) as caught:
        grant.token()

    message = str(caught.value)
    assert "bad gateway" in message
    assert PASSWORD not in message and CLIENT_SECRET not in message


def test_a_token_answer_without_access_token_is_an_api_error(make_grant, endpoint) -> None:
    endpoint.failures.append(httpx.Response(200, json={"refresh_token": "only-refresh-Dd6"}))
    grant = make_grant(endpoint)

    with pytest.raises(DropshipApiError) as caught:
        grant.token()

    assert "access_token" in str(caught.value)
    assert "only-refresh-Dd6" not in str(caught.value)


def test_transient_token_failures_are_retried(make_grant, endpoint, fake_time) -> None:
    endpoint.failures += [httpx.Response(503), httpx.ConnectTimeout("slow")]
    grant = make_grant(endpoint)

    assert grant.token() == "access-3-Aa9"
    assert fake_time.sleeps == [0.5, 1.0]


def test_a_token_endpoint_that_stays_down_raises_unavailable(make_grant, endpoint) -> None:
    endpoint.failures += [httpx.Response(502)] * 10
    grant = make_grant(endpoint)

    with pytest.raises(DropshipUnavailableError, match="6 attempts"):
        grant.token()


def test_threads_share_one_grant(make_grant, endpoint) -> None:
    grant = make_grant(endpoint)
    seen: list[str] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        seen.append(grant.token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(seen) == {"access-1-Aa9"}
    assert len(endpoint.forms) == 1


def test_repr_and_str_hide_every_secret(make_grant, endpoint) -> None:
    grant = make_grant(endpoint)
    grant.token()

    shown = repr(grant) + str(grant)

    for secret in (CLIENT_SECRET, PASSWORD, "access-1-Aa9", "refresh-1-Bb8"):
        assert secret not in shown


# ---- nothing secret leaks through a whole cycle -----------------------------------------


def test_no_secret_reaches_logs_or_errors_through_grant_refresh_and_401(
    make_grant, endpoint, fake_time, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "dropship_pipeline"):
        caplog.set_level(logging.DEBUG, logger=name)
    grant = make_grant(endpoint)
    pages = iter(
        [
            httpx.Response(200, text="<feed/>"),
            httpx.Response(401, text="Invalid token"),
            httpx.Response(200, text="<feed/>"),
            httpx.Response(401, text="Invalid token access-4-Aa9"),
            httpx.Response(401, text="Invalid token access-5-Aa9"),
        ]
    )
    client = DropshipClient(
        api_url=API,
        supplier_id=1,
        tokens=grant,
        retry=STEADY,
        transport=httpx.MockTransport(lambda request: next(pages)),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    errors: list[BaseException] = []

    with client:
        client.fetch_page(client.current_page_url)  # password grant
        fake_time.now += 43199  # expired: refresh grant
        client.fetch_page(client.current_page_url)  # 401, refresh again, success
        endpoint.refusals["refresh_token"] = httpx.Response(400, json={"error": "invalid_grant"})
        with pytest.raises(DropshipApiError) as first:
            client.fetch_page(client.current_page_url)  # 401, refused refresh, password, 401
        errors.append(first.value)
        endpoint.refusals["password"] = httpx.Response(
            400, text=f"invalid_client {CLIENT_SECRET} {PASSWORD}"
        )
        grant.invalidate(grant.token())
        with pytest.raises(DropshipAuthError) as second:
            grant.token()
        errors.append(second.value)

    assert endpoint.grant_types == [
        "password",
        "refresh_token",
        "refresh_token",
        "refresh_token",
        "password",
        "refresh_token",
        "password",
    ]
    issued = [f"access-{n}-Aa9" for n in range(1, 8)] + [f"refresh-{n}-Bb8" for n in range(1, 8)]
    secrets = [CLIENT_SECRET, PASSWORD, *issued]
    shown = caplog.text + "".join(f"{error}{error!r}{error.args}{error.body}" for error in errors)
    shown += repr(grant) + str(grant) + repr(client) + str(client)
    for secret in secrets:
        assert secret not in shown, secret
    assert "/v1/oauth2/token" in caplog.text


def test_credentials_are_never_sent_over_plain_http_to_a_remote_host() -> None:
    with httpx.Client() as http, pytest.raises(ValueError, match="https://"):
        PasswordGrant("http://accounts.example.test/v1", "c", "s", "u", "p", http=http)
