"""Access tokens for the Dropship service: a fixed token, or the OAuth2 password grant.

No object here lets a secret out: tokens, refresh tokens, the client secret and the password
appear in no log line, exception message, ``repr`` or ``str``. Text the token endpoint sends back
is scrubbed of them before it is quoted, in case the server echoes what it refused.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from dropship_pipeline.dropship.client import (
    DEFAULT_RETRY,
    RetryingSender,
    RetryPolicy,
    require_secure_url,
    server_message,
)
from dropship_pipeline.errors import DropshipApiError, DropshipAuthError

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_MARGIN = 300.0
# A token answer without expires_in is trusted for this long; a 401 still renews it early.
ASSUMED_LIFETIME = 3600.0
SHORT_LIFETIME_SHARE = 0.1
_KNOWN_ERRORS = (
    "invalid_client",
    "invalid_grant",
    "unsupported_grant_type",
    "invalid_request",
    "unauthorized_client",
    "invalid_scope",
)
_HINTS = {
    "invalid_client": "check DROPSHIP_CLIENT_ID and DROPSHIP_CLIENT_SECRET",
    "invalid_grant": "check DROPSHIP_USERNAME and DROPSHIP_PASSWORD",
    "unsupported_grant_type": "check that DROPSHIP_AUTH_URL is the iQmetrix accounts service",
    "unauthorized_client": "ask iQmetrix whether this client may use the password grant",
}
_DEFAULT_HINT = "check the DROPSHIP_CLIENT_* and DROPSHIP_USERNAME/PASSWORD settings"


@runtime_checkable
class TokenSource(Protocol):
    """Where the client gets its bearer token."""

    def token(self) -> str:
        """A token that is valid now, as far as the source knows.

        May call the token endpoint; raises DropshipAuthError when the credentials are refused
        and DropshipUnavailableError when the endpoint stays unreachable.
        """
        ...

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the API answered 401 to it) so the next ``token()`` renews it."""
        ...


class StaticToken:
    """The fixed ``DROPSHIP_ACCESS_TOKEN``. It cannot be renewed, so a 401 is final."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        if not token or not token.strip():
            raise ValueError("StaticToken needs a non-empty token")
        self._token = token.strip()

    def token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        # Nothing fresher exists; the client sees the same token again and reports the 401.
        return None

    def __repr__(self) -> str:
        return "StaticToken(<hidden>)"


@dataclass(frozen=True, slots=True)
class _Grant:
    access_token: str
    refresh_token: str | None
    lifetime: float

    def __repr__(self) -> str:
        return f"_Grant(<hidden>, lifetime={self.lifetime})"


class PasswordGrant:
    """Tokens from ``POST {auth_url}/oauth2/token`` (OAuth2 resource-owner password grant).

    ``token()`` returns the cached token until less than ``refresh_margin`` seconds (or a tenth
    of the token's lifetime, whichever is smaller) is left, then renews it with the refresh
    token; a refused refresh falls back to one fresh password grant. Calls are serialised by a
    lock, so threads share one token and never race two grants. The token endpoint is retried
    with the same :class:`RetryPolicy` as the API.

    ``auth_url`` must be ``https://`` (plain ``http://`` only on a loopback host), else the
    constructor raises ValueError. ``token()`` raises DropshipAuthError when the endpoint
    refuses the credentials (400 or 401), DropshipApiError for any other unexpected answer, and
    DropshipUnavailableError when transient failures outlast the policy.
    """

    def __init__(
        self,
        auth_url: str,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        *,
        http: httpx.Client,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.token_url = f"{require_secure_url('auth_url', auth_url)}/oauth2/token"
        self.client_id = client_id
        self._client_secret = client_secret
        self._username = username
        self._password = password
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._http = http
        self._sender = RetryingSender(http, policy=retry, sleep=sleep, clock=clock)
        self._lock = threading.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._renew_at = 0.0
        # Every token ever issued, so that an echo of an old one is scrubbed too.
        self._issued: list[str] = []

    def token(self) -> str:
        with self._lock:
            if self._access is not None and self._clock() < self._renew_at:
                return self._access
            return self._renew()

    def invalidate(self, token: str) -> None:
        with self._lock:
            if token == self._access:
                self._access = None

    def __repr__(self) -> str:
        return f"PasswordGrant(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def _renew(self) -> str:
        if self._refresh is not None:
            refresh_form = {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "refresh_token": self._refresh,
            }
            try:
                return self._keep(self._request(refresh_form, "refresh_token"))
            except DropshipAuthError as exc:
                # Refresh tokens lapse after seven days and die with a revoked session; the
                # password grant still works then, so one try with it is worth it.
                logger.warning("token refresh refused (%s); using the password grant", exc.body)
                self._refresh = None

        password_form = {
            "grant_type": "password",
            "username": self._username,
            "password": self._password,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        return self._keep(self._request(password_form, "password"))

    def _keep(self, grant: tuple[_Grant, float]) -> str:
        issued, started = grant
        self._access = issued.access_token
        self._refresh = issued.refresh_token or self._refresh
        self._issued.append(issued.access_token)
        if issued.refresh_token:
            self._issued.append(issued.refresh_token)

        # Counted from when the request left, so network time only ever makes us renew early.
        margin = min(self._refresh_margin, issued.lifetime * SHORT_LIFETIME_SHARE)
        self._renew_at = started + issued.lifetime - margin
        return issued.access_token

    def _request(self, form: dict[str, str], grant_type: str) -> tuple[_Grant, float]:
        call = f"POST {self.token_url} ({grant_type} grant)"
        started = self._clock()

        def build() -> httpx.Request:
            return self._http.build_request(
                "POST", self.token_url, data=form, headers={"Accept": "application/json"}
            )

        response = self._sender.send(build, call=call, scrub=self._scrub)

        if response.status_code in (400, 401):
            raise self._refused(call, grant_type, response)
        if response.status_code != 200:
            text = self._scrub(server_message(response))
            raise DropshipApiError(
                call,
                f"The token endpoint {self.token_url} answered HTTP {response.status_code}"
                f"{f' ({text})' if text else ''}: check DROPSHIP_AUTH_URL.",
                status_code=response.status_code,
                body=text,
            )
        return self._parse(call, response), started

    def _parse(self, call: str, response: httpx.Response) -> _Grant:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        access = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(access, str) or not access:
            # The body is not quoted: it may hold a token in a shape we did not expect.
            raise DropshipApiError(
                call,
                f"The token endpoint {self.token_url} answered 200 without an access_token: "
                "check that DROPSHIP_AUTH_URL is the iQmetrix accounts service.",
                status_code=response.status_code,
            )

        refresh = data.get("refresh_token")
        lifetime = data.get("expires_in")
        try:
            seconds = float(lifetime) if lifetime is not None else ASSUMED_LIFETIME
        except (TypeError, ValueError):
            seconds = ASSUMED_LIFETIME
        return _Grant(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            lifetime=max(seconds, 0.0),
        )

    def _refused(self, call: str, grant_type: str, response: httpx.Response) -> DropshipAuthError:
        code = _error_code(response)
        if code is None:
            detail = self._scrub(server_message(response, limit=200)) or "no explanation"
            described = f"an unrecognised error ({detail})"
        else:
            described = code
        hint = _HINTS.get(code or "", _DEFAULT_HINT)
        if code == "invalid_grant" and grant_type == "refresh_token":
            hint = "the refresh token has expired or was revoked"
        return DropshipAuthError(
            call,
            f"The token endpoint {self.token_url} refused the {grant_type} grant with "
            f"HTTP {response.status_code} {described}: {hint}.",
            status_code=response.status_code,
            body=code or "",
        )

    def _scrub(self, text: str) -> str:
        secrets = [self._client_secret, self._password, self._username, *self._issued]
        if self._refresh:
            secrets.append(self._refresh)
        for secret in secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text


def _error_code(response: httpx.Response) -> str | None:
    """The OAuth2 error code of a refusal: JSON ``error``, else a known code in the text."""
    text = response.content.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        code = data["error"].strip()
        # Only codes from the OAuth2 list are quoted: anything else could be arbitrary text.
        return code if code in _KNOWN_ERRORS else None

    lowered = text.lower()
    for code in _KNOWN_ERRORS:
        if code in lowered:
            return code
    if "grant type" in lowered and "not supported" in lowered:
        return "unsupported_grant_type"
    return None
