"""Transport faults in front of the simulated API: 429s, 5xx, slow answers, dropped connections.

A pure ASGI middleware, so that it can cut a response body in half, which no response class
can. It reads the knobs from the state on every request, so the control API can turn them on
and off while the server runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dropship_pipeline.simulator.config import Faults
from dropship_pipeline.simulator.state import SimulatorState

RATE_LIMITED_BODY = b"rate limit exceeded"
SERVER_ERROR_BODY = json.dumps({"Message": "An error has occurred."}).encode()
# What uvicorn logs when an app stops sending mid-body; here that is the point of the fault.
_DROP_LOG_MESSAGE = "ASGI callable returned without completing response."


class _DeliberateDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_LOG_MESSAGE


def quiet_deliberate_drops() -> None:
    """Keep the drop fault from filling uvicorn's error log; other errors still get through."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DeliberateDropFilter) for f in logger.filters):
        logger.addFilter(_DeliberateDropFilter())


class _Window:
    """The rate-limit window that the ``X-RateLimit-*`` headers describe and the 429s obey.

    A window opens with the first request after the previous one reset and lasts
    ``rate_limit_window_seconds``. Every request counts against it. With
    ``rate_limit_enforce`` the requests beyond ``rate_limit_limit`` get 429 until it resets; an
    injected 429 spends it at once and moves its reset to ``retry_after_seconds`` from then.
    """

    def __init__(self) -> None:
        self.reset_at = 0.0
        self.used = 0
        self.spent = False

    def admit(
        self, faults: Faults, now: float, *, injected: bool
    ) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """Count one request; return whether it is refused, and the headers of its answer."""
        if now >= self.reset_at:
            self.reset_at = now + faults.rate_limit_window_seconds
            self.used = 0
            self.spent = False
        self.used += 1
        if injected and not self.spent:
            self.spent = True
            self.reset_at = now + faults.retry_after_seconds
        refused = self.spent or (faults.rate_limit_enforce and self.used > faults.rate_limit_limit)

        remaining = 0 if refused else max(0, faults.rate_limit_limit - self.used)
        # Rounded up, so that a client waiting this long always finds the window reset.
        reset_seconds = str(max(0, math.ceil(self.reset_at - now))).encode()
        reset = datetime.fromtimestamp(self.reset_at, UTC)
        stamp = f"{reset:%Y-%m-%dT%H:%M:%S}.{reset.microsecond:06d}0Z"
        headers = [
            (b"x-ratelimit-limit", str(faults.rate_limit_limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", stamp.encode()),
            (b"x-ratelimit-resetseconds", reset_seconds),
        ]
        if refused:
            headers.insert(0, (b"retry-after", reset_seconds))
        return refused, headers


class FaultInjector:
    """Wraps the simulator's app; only ``/v1/`` requests are eligible (see ``Faults``)."""

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state
        self._lock = threading.Lock()
        self._rng = random.Random(state.config.faults.seed * 104_729 + 3)
        self._eligible = 0
        self._window = _Window()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.state.faults
        if scope["type"] != "http" or not self._eligible_path(scope["path"], faults):
            await self.app(scope, receive, send)
            return

        plan = self._plan(faults)
        if plan["slow"]:
            self.state.count("slowed")
            await asyncio.sleep(faults.slow_seconds)
        extra = plan["headers"]
        if plan["rate_limited"]:
            self.state.count("rate_limited")
            await _respond(send, 429, b"text/plain; charset=utf-8", RATE_LIMITED_BODY, extra)
            return
        if plan["server_error"]:
            self.state.count("server_errors")
            await _respond(
                send,
                faults.server_error_status,
                b"application/json; charset=utf-8",
                SERVER_ERROR_BODY,
                extra,
            )
            return
        if plan["drop"]:
            self.state.count("dropped")
            await self.app(scope, receive, _cutting(send, extra))
            return
        await self.app(scope, receive, _adding(send, extra))

    @staticmethod
    def _eligible_path(path: str, faults: Faults) -> bool:
        if not path.startswith("/v1/"):
            return False
        return faults.token_endpoint_faults or not path.startswith("/v1/oauth2/")

    def _plan(self, faults: Faults) -> dict[str, Any]:
        """Decide every fault of one request at once, under one lock, in a fixed order."""
        with self._lock:
            self._eligible += 1
            n, roll = self._eligible, self._rng.random

            def fires(every: int, rate: float) -> bool:
                # Draw only for knobs that are on, so turning one on does not reshuffle others.
                by_count = bool(every) and n % every == 0
                by_rate = bool(rate) and roll() < rate
                return by_count or by_rate

            plan: dict[str, Any] = {
                "slow": bool(faults.slow_rate) and roll() < faults.slow_rate,
                "rate_limited": fires(faults.rate_limit_every, faults.rate_limit_rate),
                "server_error": fires(faults.server_error_every, faults.server_error_rate),
                "drop": fires(faults.drop_every, faults.drop_rate),
                "headers": [],
            }
            if faults.rate_limit_enabled:
                plan["rate_limited"], plan["headers"] = self._window.admit(
                    faults, time.time(), injected=plan["rate_limited"]
                )
            return plan


async def _respond(
    send: Send, status: int, content_type: bytes, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _adding(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    if not headers:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
        await send(message)

    return wrapped


def _cutting(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """Pass the headers (with the full Content-Length), then half the body, then nothing."""
    cut = False
    with_headers = _adding(send, headers)

    async def wrapped(message: Message) -> None:
        nonlocal cut
        if message["type"] != "http.response.body":
            await with_headers(message)
            return
        if cut:
            return
        cut = True
        body = message.get("body", b"")
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )

    return wrapped
