"""The HTTP client of the Dropship service: feed pages and status PUTs, with retries.

One :class:`DropshipClient` holds one ``httpx.Client`` (TLS always verified, redirects never
followed, every call under a timeout). Transient failures (429, 5xx, timeouts, dropped
connections) are retried within a :class:`RetryPolicy`; when the budget runs out the call raises
:class:`DropshipUnavailableError`. Answers that retrying cannot fix raise :class:`DropshipApiError`.
The bearer token is sent to the configured API origin only, never to a host named by a feed link.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

import httpx

from dropship_pipeline import __version__
from dropship_pipeline.dropship.models import (
    ItemStatusUpdate,
    OrderStatusUpdate,
    StatusUpdateReceipt,
)
from dropship_pipeline.errors import DropshipApiError, DropshipUnavailableError, SettingsError
from dropship_pipeline.settings import LOOPBACK_HOSTS

if TYPE_CHECKING:
    from types import TracebackType

    from dropship_pipeline.dropship.auth import TokenSource
    from dropship_pipeline.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
USER_AGENT = f"dropship-pipeline/{__version__}"
ATOM = "application/atom+xml"
JSON = "application/json"
MESSAGE_LIMIT = 300
PUT_SUCCESS = frozenset({200, 202, 204})
#: A feed page is about 100 KB and a status echo a few hundred bytes; a body past this is not
#: an answer of the Dropship service, and reading on would only grow memory.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: httpx's read timeout restarts with every chunk, so a server trickling a byte at a time would
#: hold a call open for ever; this bounds one attempt from request to the body's last byte.
ATTEMPT_DEADLINE = 120.0

# Local mistakes, unsupported URLs and undecodable bodies fail the same way on every attempt;
# only failures that can clear up by themselves are worth another try.
_NOT_TRANSIENT = (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.DecodingError)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_RESET_STAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?"
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long transient failures are retried: attempts and total seconds are both bounded.

    Backoff is exponential (``base_delay * 2**(n-1)``, capped at ``max_delay``) with full jitter:
    each wait is drawn uniformly below that cap. A server-given wait (``Retry-After`` or the
    rate-limit reset) is waited in full instead: retrying before it would only be refused
    again. When that wait does not fit in what is left of ``max_total``, the call gives up at
    once and says how long the service asked to wait. ``jitter=False`` waits the full cap,
    which makes delays predictable in tests.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = 120.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_total) < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def backoff(self, failures: int) -> float:
        """The wait after the ``failures``-th failed attempt (counting from 1)."""
        cap = min(self.max_delay, self.base_delay * 2 ** max(failures - 1, 0))
        return random.uniform(0.0, cap) if self.jitter else cap


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class FetchedPage:
    """A feed page as received: the body is the raw bytes, parsed elsewhere."""

    url: str
    body: bytes
    status_code: int
    content_type: str | None


# ---- rate-limit headers -----------------------------------------------------------------


def parse_reset_timestamp(value: str) -> datetime | None:
    """Read an ``X-RateLimit-Reset`` stamp such as ``2016-02-25T13:00:00.0000000Z``.

    The service writes seven fractional digits, more than ``datetime`` holds, so the fraction is
    cut to microseconds. A stamp without a zone is UTC. Returns None when the text is not a stamp.
    """
    match = _RESET_STAMP.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        stamp = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, UTC
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        stamp -= timedelta(seconds=offset)
    return stamp


def _until(stamp: datetime) -> float:
    return max(0.0, (stamp - datetime.now(UTC)).total_seconds())


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta seconds or an HTTP-date); None if absent."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return _until(stamp)


def rate_limit_reset_seconds(headers: httpx.Headers) -> float | None:
    """Seconds until the rate-limit window resets, from ``X-RateLimit-ResetSeconds`` or else
    ``X-RateLimit-Reset``; None when neither is present and readable."""
    value = headers.get("x-ratelimit-resetseconds")
    if value is not None:
        try:
            return max(0.0, float(value.strip()))
        except ValueError:
            pass
    value = headers.get("x-ratelimit-reset")
    if value is not None:
        stamp = parse_reset_timestamp(value)
        if stamp is not None:
            return _until(stamp)
    return None


def server_message(response: httpx.Response, *, limit: int = MESSAGE_LIMIT) -> str:
    """The server's explanation: JSON ``Message`` (or ``error``) if present, else the text,
    on one line and cut to ``limit`` characters."""
    text = response.content.decode(response.encoding or "utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in ("Message", "message", "error_description", "error"):
                if isinstance(data.get(key), str) and data[key].strip():
                    text = data[key].strip()
                    break
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


# ---- the retry loop ---------------------------------------------------------------------


class RetryingSender:
    """Sends one logical call over an ``httpx.Client``, retrying transient failures.

    Shared by the API client and the token endpoint so both follow one policy. ``send`` returns
    the first response that is not 429 or 5xx (the caller decides what it means) and raises
    :class:`DropshipUnavailableError` when attempts or total time run out. A successful answer
    that reports ``X-RateLimit-Remaining: 0`` makes the next call wait for the reset, at most
    ``max_delay`` seconds.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        direct: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = http
        # The transport ``http`` sends every request through, when callers know it has one:
        # a request built by ``http`` already has all it needs to go there straight.
        self._direct = direct
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._not_before = 0.0

    def send(
        self,
        build: Callable[[], httpx.Request],
        *,
        call: str,
        on_unauthorized: Callable[[], bool] | None = None,
        scrub: Callable[[str], str] = str,
    ) -> httpx.Response:
        """Send ``build()`` until it gets a final answer, its body read in full.

        ``build`` is called for every attempt, so a fresh token is picked up after a 401. On a
        401, ``on_unauthorized`` (when given) decides whether one more attempt is worth it; that
        attempt does not count against the retry budget. ``scrub`` removes secrets from the
        server's text before it goes into an error. Raises DropshipUnavailableError naming
        ``call``, the last status or transport error, and the number of attempts; a body larger
        than MAX_BODY_BYTES raises DropshipApiError.
        """
        policy = self._policy
        started = self._clock()
        attempt = 0
        failures = 0
        last_problem = "no answer"
        last_status: int | None = None

        while True:
            self._wait_for_rate_limit()
            attempt += 1
            request = build()
            sent_at = time.perf_counter()
            try:
                response = self._receive(request, call)
            except _NOT_TRANSIENT as exc:
                self._log(request, type(exc).__name__, sent_at, attempt)
                raise DropshipApiError(
                    call, f"{call} could not be sent ({type(exc).__name__}: {exc})."
                ) from exc
            except httpx.TransportError as exc:
                self._log(request, type(exc).__name__, sent_at, attempt)
                failures += 1
                last_status = None
                last_problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = policy.backoff(failures)
            else:
                status = response.status_code
                self._log(request, status, sent_at, attempt)
                if status == 401 and on_unauthorized is not None and on_unauthorized():
                    on_unauthorized = None
                    continue
                if status != 429 and status < 500:
                    self._note_rate_limit(response)
                    return response
                failures += 1
                last_status = status
                last_problem = f"HTTP {status}"
                # Some servers echo the request, credentials included, in their error pages.
                detail = scrub(server_message(response, limit=120))
                if detail:
                    last_problem += f" ({detail})"
                server_wait = self._server_wait(response)
                if server_wait is None:
                    delay = policy.backoff(failures)
                else:
                    delay = server_wait
                    if delay > policy.max_delay:
                        last_problem += f", asked to wait {delay:.0f} s"

            elapsed = self._clock() - started
            if failures >= policy.max_attempts or elapsed + delay > policy.max_total:
                raise DropshipUnavailableError(
                    call,
                    f"{call} failed after {attempt} attempts in {elapsed:.1f} s, last with "
                    f"{last_problem}: the Dropship service is unreachable or overloaded, "
                    "try again later.",
                    status_code=last_status,
                )
            self._sleep(delay)

    def _receive(self, request: httpx.Request, call: str) -> httpx.Response:
        """One attempt: the response with its whole body, within ATTEMPT_DEADLINE and
        MAX_BODY_BYTES. Transport errors while reading count as the attempt's failure."""
        deadline = time.monotonic() + ATTEMPT_DEADLINE
        if self._direct is None:
            response = self._http.send(request, stream=True)
        else:
            if self._http.is_closed:  # as the httpx client itself would refuse
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            response = self._direct.handle_request(request)
            response.request = request
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise DropshipApiError(
                        call,
                        f"{call} was answered with more than {MAX_BODY_BYTES:,} bytes; "
                        "that is not a Dropship answer: check DROPSHIP_API_URL.",
                        status_code=response.status_code,
                    )
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(
                        f"the answer took longer than {ATTEMPT_DEADLINE:.0f} s", request=request
                    )
                chunks.append(chunk)
        finally:
            response.close()
        # iter_bytes has already undone any content encoding.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k not in ("content-encoding", "content-length")
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=request,
            extensions=response.extensions,
        )

    def _server_wait(self, response: httpx.Response) -> float | None:
        wait = retry_after_seconds(response.headers)
        if wait is None and response.status_code == 429:
            wait = rate_limit_reset_seconds(response.headers)
        return wait

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining")
        if remaining is None or remaining.strip() != "0":
            return
        wait = rate_limit_reset_seconds(response.headers)
        if wait:
            self._not_before = self._clock() + min(wait, self._policy.max_total)

    def _wait_for_rate_limit(self) -> None:
        if not self._not_before:
            return
        wait = self._not_before - self._clock()
        self._not_before = 0.0
        if wait > 0:
            logger.info("rate limit window used up; waiting %.1f s for its reset", wait)
            self._sleep(wait)

    @staticmethod
    def _log(request: httpx.Request, status: int | str, sent_at: float, attempt: int) -> None:
        # The path only: a query string is where a careless caller would put a secret.
        logger.info(
            "%s %s -> %s in %.0f ms (attempt %d)",
            request.method,
            request.url.path,
            status,
            (time.perf_counter() - sent_at) * 1000.0,
            attempt,
        )


def require_secure_url(name: str, url: str) -> httpx.URL:
    """Parse a base URL that credentials will be sent to: ``https://``, or plain ``http://``
    on a loopback host only (the simulator and tests). Raises ValueError otherwise."""
    parsed = httpx.URL(url.rstrip("/"))
    if parsed.scheme == "https" and parsed.host:
        return parsed
    if parsed.scheme == "http" and parsed.host in LOOPBACK_HOSTS:
        return parsed
    raise ValueError(
        f"{name} must be an https:// URL (plain http:// only on a loopback host), got {url!r}"
    )


def environment_proxies() -> bool:
    """Whether the environment names a proxy (``HTTPS_PROXY`` and the like), as httpx reads it."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def new_http_client(
    *, timeout: httpx.Timeout, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """An ``httpx.Client`` as every part of this package uses it: TLS verified, no redirects."""
    return httpx.Client(
        timeout=timeout,
        transport=transport,
        verify=True,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


# ---- the client -------------------------------------------------------------------------


class DropshipClient:
    """Reads feed pages and sends status updates for one supplier.

    ``api_url`` is the service's base URL including ``/v1``; it must be ``https://`` (plain
    ``http://`` only on a loopback host), else the constructor raises ValueError.

    Thread-safe as far as ``httpx.Client`` and the token source are; one instance is meant to be
    shared by a run. Close it (or use it as a context manager) to release its connections.
    """

    def __init__(
        self,
        *,
        api_url: str,
        supplier_id: int,
        tokens: TokenSource,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        base = require_secure_url("api_url", api_url)
        self.api_url = str(base).rstrip("/")
        self.supplier_id = supplier_id
        self._tokens = tokens
        self._origin = _origin(base)
        self._base_path = base.path.rstrip("/")
        # Requests go to the transport straight, past the httpx client's own layer (auth
        # flows, redirects, cookies, event hooks, its log line), none of which this package
        # uses: that layer took 0.1 ms of CPU a feed page, a sixth of the whole call. Only a
        # proxy from the environment makes httpx send elsewhere, and then the client does.
        # (Given a transport, httpx ignores such proxies itself.)
        if transport is None and not environment_proxies():
            transport = httpx.HTTPTransport(verify=True)  # what httpx would make itself
        self._http = new_http_client(timeout=timeout, transport=transport)
        self._sender = RetryingSender(
            self._http, policy=retry, sleep=sleep, clock=clock, direct=transport
        )
        self._also_close: list[httpx.Client] = []

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> DropshipClient:
        """A client for ``settings``: the fixed ``DROPSHIP_ACCESS_TOKEN`` when set, else the
        password grant against ``DROPSHIP_AUTH_URL``. ``kwargs`` go to the constructor (timeout,
        retry, transport, sleep, clock) and apply to the token endpoint as well.

        Raises SettingsError when neither a token nor all four grant credentials are present.
        """
        from dropship_pipeline.dropship.auth import PasswordGrant, StaticToken

        if settings.access_token is not None:
            return cls(
                api_url=settings.api_url,
                supplier_id=settings.supplier_id,
                tokens=StaticToken(settings.access_token),
                **kwargs,
            )

        credentials = (
            settings.client_id,
            settings.client_secret,
            settings.username,
            settings.password,
        )
        if any(value is None for value in credentials):
            raise SettingsError(
                "Set DROPSHIP_ACCESS_TOKEN, or all of DROPSHIP_CLIENT_ID, DROPSHIP_CLIENT_SECRET, "
                "DROPSHIP_USERNAME and DROPSHIP_PASSWORD for the password grant."
            )
        client_id, client_secret, username, password = (str(value) for value in credentials)

        auth_http = new_http_client(
            timeout=kwargs.get("timeout", DEFAULT_TIMEOUT), transport=kwargs.get("transport")
        )
        grant_options: dict[str, Any] = {
            key: kwargs[key] for key in ("retry", "sleep", "clock") if key in kwargs
        }
        tokens = PasswordGrant(
            settings.auth_url,
            client_id,
            client_secret,
            username,
            password,
            http=auth_http,
            **grant_options,
        )
        try:
            client = cls(
                api_url=settings.api_url,
                supplier_id=settings.supplier_id,
                tokens=tokens,
                **kwargs,
            )
        except BaseException:
            auth_http.close()
            raise
        client._also_close.append(auth_http)
        return client

    @property
    def current_page_url(self) -> str:
        """The URL of the feed's current (newest) page."""
        return f"{self.api_url}/Suppliers({self.supplier_id})/Notifications"

    def fetch_page(self, url: str) -> FetchedPage:
        """GET one feed page by its absolute URL (the current page, or a feed link).

        The URL must be on the configured API origin and under its base path: a link anywhere
        else raises DropshipApiError before anything is sent, so the token never leaves. Any 2xx
        is returned as received; the body is not parsed here. Raises DropshipApiError on other
        answers and DropshipUnavailableError when transient failures outlast the retry policy.
        """
        call = f"GET feed page {url}"
        target = self._checked_url(url, call)
        response = self._call("GET", target, call, accept=ATOM, success=_is_2xx)

        return FetchedPage(
            url=url,
            body=response.content,
            status_code=response.status_code,
            content_type=response.headers.get("content-type"),
        )

    def order_status_update(self, update: OrderStatusUpdate) -> StatusUpdateReceipt:
        """PUT an ``OrderStatusUpdate``; return the status (202, 200 or 204) and the echo.

        Safe to retry: the service overwrites the order's status. Raises DropshipApiError on any
        other answer and DropshipUnavailableError when transient failures outlast the policy.
        """
        return self._put_update(
            update.order_id,
            "OrderStatusUpdate",
            update.to_json(),
            f"PUT OrderStatusUpdate for order {update.order_id}",
        )

    def item_status_update(self, update: ItemStatusUpdate) -> StatusUpdateReceipt:
        """PUT an ``ItemStatusUpdate``; return the status (202, 200 or 204) and the echo.

        Same guarantees and errors as :meth:`order_status_update`.
        """
        return self._put_update(
            update.order_id,
            "ItemStatusUpdate",
            update.to_json(),
            f"PUT ItemStatusUpdate for order {update.order_id}",
        )

    def close(self) -> None:
        """Release the connections; the client cannot be used afterwards."""
        try:
            self._http.close()
        finally:
            for http in self._also_close:
                http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DropshipClient(api_url={self.api_url!r}, supplier_id={self.supplier_id})"

    # ---- internals ----------------------------------------------------------------------

    def _put_update(
        self, order_id: str, operation: str, body: dict[str, object], call: str
    ) -> StatusUpdateReceipt:
        # The order id is opaque text from the feed; quoting keeps it one path segment.
        url = httpx.URL(
            f"{self.api_url}/Suppliers({self.supplier_id})/Orders({quote(order_id, safe='')})"
            f"/{operation}"
        )
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        response = self._call(
            "PUT", url, call, accept=JSON, content=content, success=PUT_SUCCESS.__contains__
        )
        return StatusUpdateReceipt(http_status=response.status_code, echo=_json_object(response))

    def _call(
        self,
        method: str,
        url: httpx.URL,
        call: str,
        *,
        accept: str,
        success: Callable[[int], bool],
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send with a token, retrying per the policy; return a response that ``success``
        accepts or raise DropshipApiError describing the refusal."""
        used: list[str] = []

        def build() -> httpx.Request:
            token = self._tokens.token()
            used.append(token)
            headers = {"Accept": accept, "Authorization": f"Bearer {token}"}
            if content is not None:
                headers["Content-Type"] = JSON
            return self._http.build_request(method, url, headers=headers, content=content)

        def on_unauthorized() -> bool:
            refused = used[-1]
            self._tokens.invalidate(refused)
            # A source with nothing fresher to offer (a fixed token) would only be refused again.
            return self._tokens.token() != refused

        def scrub(text: str) -> str:
            # Some servers echo the credentials they rejected; those must never reach a log.
            for token in used:
                text = text.replace(token, "[token]")
            return text

        response = self._sender.send(build, call=call, on_unauthorized=on_unauthorized, scrub=scrub)
        if success(response.status_code):
            return response

        message = scrub(server_message(response))
        if response.status_code == 401:
            raise self._unauthorized(call, message, refreshed=len(set(used)) > 1)
        raise self._refusal(call, response, message)

    def _checked_url(self, url: str, call: str) -> httpx.URL:
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise DropshipApiError(call, f"{call} refused: the URL is malformed ({exc}).") from exc

        path = target.path
        # httpx has already decoded the path, so %2e%2e shows up here as ".." too.
        segments = path.split("/")
        inside = (
            target.scheme in _DEFAULT_PORTS
            and _origin(target) == self._origin
            and not target.userinfo
            and (path == self._base_path or path.startswith(self._base_path + "/"))
            and not any(part in (".", "..") for part in segments)
        )
        if not inside:
            raise DropshipApiError(
                call,
                f"{call} refused: the link leaves the configured Dropship API {self.api_url}, "
                "so it is not fetched and the token is not sent; check the feed's links.",
            )
        return target

    def _refusal(self, call: str, response: httpx.Response, message: str) -> DropshipApiError:
        status = response.status_code
        if 300 <= status < 400:
            where = response.headers.get("location", "nowhere")
            text = (
                f"{call} answered with a redirect (HTTP {status}) to {where}; redirects are not "
                "followed: check DROPSHIP_API_URL."
            )
        else:
            reason = f": {message}" if message else ""
            text = f"{call} was refused with HTTP {status}{reason}."
        return DropshipApiError(call, text, status_code=status, body=message)

    def _unauthorized(self, call: str, message: str, *, refreshed: bool) -> DropshipApiError:
        if refreshed:
            hint = (
                "even with a freshly issued token: check that DROPSHIP_AUTH_URL and "
                "DROPSHIP_API_URL are the same environment and the user may act for supplier "
                f"{self.supplier_id}."
            )
        else:
            hint = (
                "and the token source has no other token (a fixed DROPSHIP_ACCESS_TOKEN was "
                "refused): replace it, or configure the password grant."
            )
        return DropshipApiError(
            call,
            f"{call} was refused with HTTP 401 ({message or 'no message'}) {hint}",
            status_code=401,
            body=message,
        )


def _is_2xx(status: int) -> bool:
    return 200 <= status < 300


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, -1)
    return (url.scheme, url.host, port)


def _json_object(response: httpx.Response) -> dict[str, object]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
