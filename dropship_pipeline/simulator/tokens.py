"""The accounts service's OAuth2 token endpoint, as the API reference describes it (section 2).

Each grant mints a new access token and refresh token; earlier access tokens stay valid until
they expire, except the one a refresh token came with, which the refresh revokes. A refresh
token works once. Errors are the three documented codes, as standard OAuth2 JSON:
``invalid_client`` for a client the service does not know (or a wrong secret),
``invalid_grant`` for bad user credentials and for a refresh token that is unknown, expired,
used, or another client's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dropship_pipeline.simulator.config import SimulatorConfig


@dataclass(slots=True)
class _AccessToken:
    expires_at: float
    revoked: bool = False


@dataclass(slots=True)
class _RefreshToken:
    client_id: str
    access_token: str
    expires_at: float


class TokenError(Exception):
    """A grant refused with one of the documented OAuth2 error codes."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class TokenIssuer:
    """Issues, refreshes and checks bearer tokens. Thread-safe."""

    def __init__(self, config: SimulatorConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}

    def grant(self, form: Mapping[str, str]) -> dict[str, object]:
        """Answer a token request; raise TokenError with the OAuth2 error code on refusal."""
        grant_type = form.get("grant_type", "")
        if grant_type not in {"password", "refresh_token"}:
            raise TokenError("unsupported_grant_type")
        client_id = form.get("client_id", "")
        expected_secret = self._config.clients.get(client_id)
        if expected_secret is None or not secrets.compare_digest(
            form.get("client_secret", "").encode(), expected_secret.encode()
        ):
            raise TokenError("invalid_client")

        with self._lock:
            now = self._clock()
            if grant_type == "password":
                expected = self._config.users.get(form.get("username", ""))
                given = form.get("password", "")
                if expected is None or not secrets.compare_digest(
                    given.encode(), expected.encode()
                ):
                    raise TokenError("invalid_grant")
            else:
                # A known client refreshing another client's token is refused as a bad
                # grant (API reference, section 2.3); the token stays usable by its owner.
                token = form.get("refresh_token", "")
                old = self._refresh.get(token)
                if old is None or old.expires_at <= now or old.client_id != client_id:
                    raise TokenError("invalid_grant")
                del self._refresh[token]
                revoked = self._access.get(old.access_token)
                if revoked is not None:
                    revoked.revoked = True
            return self._mint(client_id, now)

    def _mint(self, client_id: str, now: float) -> dict[str, object]:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self._access[access] = _AccessToken(expires_at=now + self._config.expires_in)
        self._refresh[refresh] = _RefreshToken(
            client_id=client_id,
            access_token=access,
            expires_at=now + self._config.refresh_expires_in,
        )
        return {
            "access_token": access,
            "expires_in": self._config.expires_in,
            "refresh_token": refresh,
        }

    def is_valid(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a live bearer token."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        fixed = self._config.access_token
        if fixed is not None and secrets.compare_digest(token.encode(), fixed.encode()):
            return True
        with self._lock:
            record = self._access.get(token)
            return record is not None and not record.revoked and record.expires_at > self._clock()
