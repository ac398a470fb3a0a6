"""Settings of the simulated Dropship service and its fault knobs.

Every fault is off by default, so a simulator built from ``SimulatorConfig()`` behaves like a
well-mannered service. Rates are probabilities per request (or per event) between 0 and 1;
``*_every`` knobs fire on every Nth eligible request, which is what tests want when they need a
fault at a known moment. Random choices come from a generator seeded with ``seed``, so the same
sequence of calls meets the same faults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SUPPLIER_ID = 14107
DEFAULT_PAGE_SIZE = 50
# The accounts service answers with about 12 hours (API reference, section 2.1).
DEFAULT_EXPIRES_IN = 43199
DEFAULT_REFRESH_EXPIRES_IN = 7 * 24 * 3600


@dataclass(frozen=True)
class Faults:
    """Misbehaviour the simulator can put in front of its client; each one off by default.

    Delivery faults (decided when an event is appended to the feed):

    - ``duplicate_order_rate``: an ``order-created`` entry is sent a second time, right after
      the first, under a new entry id (at-least-once delivery).
    - ``repeat_entry_rate``: when a page fills and a new one opens, the newest entry of the
      page just archived appears again, same id, at the start of the new page.
    - ``non_guid_entry_id_rate``: the entry id is ``urn:uuid:`` followed by something that is
      not a GUID, as in the documentation's examples.
    - ``unknown_elements``: entries carry elements that this version of the API does not define.
    - ``https_xsi_namespace``: ``xmlns:i`` is spelled with ``https://``.
    - ``self_closing_empty``: an empty string is written ``<x />`` instead of ``<x></x>``.

    Transport faults (decided per request to the Dropship endpoints; the token endpoint only
    when ``token_endpoint_faults`` is on, the ``/_simulator`` API never):

    - ``rate_limit_enforce``: count requests in windows of ``rate_limit_window_seconds``
      and answer 429 ``rate limit exceeded`` to those beyond ``rate_limit_limit``, until the
      window resets, as the real service does (API reference, section 8).
    - ``rate_limit_every`` / ``rate_limit_rate``: a 429 at a chosen moment, standing for other
      traffic of the same account using up the window: the window is spent then, and resets
      ``retry_after_seconds`` later (0: at once); until it does, every request gets 429.
    - While any of these is on, or ``rate_limit_headers`` is, every response carries the
      ``X-RateLimit-*`` headers of the window. They agree with the 429s: a 429 shows
      ``X-RateLimit-Remaining: 0``, and its ``Retry-After`` is the window's
      ``X-RateLimit-ResetSeconds``. The window is short by default, so that a client waiting
      for it costs a test no more than a couple of seconds.
    - ``server_error_every`` / ``server_error_rate``: answer ``server_error_status``.
    - ``slow_rate``: wait ``slow_seconds`` before answering.
    - ``drop_every`` / ``drop_rate``: send the headers and half of the body, then close the
      connection, so the client sees an incomplete response.

    Rendering faults (decided when a page is rendered; archived pages keep the bytes of their
    first rendering):

    - ``https_atom_namespace``: the feed's namespace is ``https://www.w3.org/2005/Atom``.
    - ``json_content_type``: feed pages are labelled ``application/json``.
    """

    seed: int = 0

    duplicate_order_rate: float = 0.0
    repeat_entry_rate: float = 0.0
    non_guid_entry_id_rate: float = 0.0
    unknown_elements: bool = False
    https_xsi_namespace: bool = False
    self_closing_empty: bool = False

    rate_limit_enforce: bool = False
    rate_limit_every: int = 0
    rate_limit_rate: float = 0.0
    rate_limit_headers: bool = False
    rate_limit_limit: int = 1000
    rate_limit_window_seconds: int = 2
    retry_after_seconds: int = 1
    server_error_every: int = 0
    server_error_rate: float = 0.0
    server_error_status: int = 503
    slow_rate: float = 0.0
    slow_seconds: float = 0.5
    drop_every: int = 0
    drop_rate: float = 0.0
    token_endpoint_faults: bool = False

    https_atom_namespace: bool = False
    json_content_type: bool = False

    def __post_init__(self) -> None:
        for knob in dataclasses.fields(self):
            value = getattr(self, knob.name)
            if knob.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"Fault {knob.name} must be between 0 and 1, not {value!r}.")
            if knob.name.endswith("_every") and value < 0:
                raise ValueError(f"Fault {knob.name} must be 0 (off) or a positive count.")
        if not 500 <= self.server_error_status <= 599:
            raise ValueError("Fault server_error_status must be a 5xx status code.")
        if self.rate_limit_limit < 1 or self.rate_limit_window_seconds < 1:
            raise ValueError(
                "Faults rate_limit_limit and rate_limit_window_seconds must be at least 1."
            )
        if self.retry_after_seconds < 0:
            raise ValueError("Fault retry_after_seconds cannot be negative.")

    @property
    def rate_limit_enabled(self) -> bool:
        return bool(
            self.rate_limit_enforce
            or self.rate_limit_every
            or self.rate_limit_rate
            or self.rate_limit_headers
        )

    def changed(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` applied; unknown knob names and wrong types raise ValueError."""
        known = {knob.name: knob for knob in dataclasses.fields(self)}
        coerced: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"{name!r} is not a fault knob; known knobs: {sorted(known)}.")
            coerced[name] = _coerce(name, value, type(getattr(self, name)))
        return dataclasses.replace(self, **coerced)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, kind: type) -> Any:
    """Read a knob value from JSON or a command-line string, strictly."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
    elif kind is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif kind is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"Fault {name} expects a {kind.__name__}, not {value!r}.")


@dataclass(frozen=True)
class SimulatorConfig:
    """How one simulated Dropship service is set up.

    ``client_id``/``client_secret`` and ``users`` are what the password grant accepts;
    ``other_clients`` (client id to secret) are further clients the accounts service knows, so
    that a refresh by a client other than the token's can be told from an unknown client;
    ``access_token``, when set, is a fixed bearer token accepted on every protected endpoint
    (the ``DROPSHIP_ACCESS_TOKEN`` way in). ``strict`` flags updates that leave the documented
    lifecycle (API reference, section 4.2), repeat a status, ship quantities that do not add up
    or drop a tracking number, in the inspection API's ``verdict`` and ``problems``;
    ``strict_reject`` also answers them with 400.
    ``public_url`` overrides the base URL written into feed links (default: the address the
    server listens on). ``repeat_sku_rate`` is the share of generated orders that list a SKU on
    two lines (see ``OrderGenerator``).
    """

    supplier_id: int = DEFAULT_SUPPLIER_ID
    other_supplier_ids: tuple[int, ...] = ()
    page_size: int = DEFAULT_PAGE_SIZE
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    client_id: str = "simulator-client"
    client_secret: str = field(default="simulator-secret", repr=False)
    other_clients: Mapping[str, str] = field(default_factory=dict, repr=False)
    users: Mapping[str, str] = field(
        default_factory=lambda: {"supplier@example.com": "simulator-password"}, repr=False
    )
    access_token: str | None = field(default=None, repr=False)
    expires_in: int = DEFAULT_EXPIRES_IN
    refresh_expires_in: int = DEFAULT_REFRESH_EXPIRES_IN
    strict: bool = False
    strict_reject: bool = False
    initial_orders: int = 0
    order_rate: float = 0.0
    repeat_sku_rate: float = 0.0
    faults: Faults = field(default_factory=Faults)
    public_url: str | None = None

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1.")
        if self.expires_in < 0 or self.refresh_expires_in < 0:
            raise ValueError("Token lifetimes cannot be negative.")
        if self.order_rate < 0:
            raise ValueError("order_rate is orders per second and cannot be negative.")
        if not 0.0 <= self.repeat_sku_rate <= 1.0:
            raise ValueError("repeat_sku_rate must be between 0 and 1.")

    @property
    def clients(self) -> dict[str, str]:
        """Every client the accounts service knows, client id to secret."""
        return {**self.other_clients, self.client_id: self.client_secret}

    @property
    def supplier_ids(self) -> tuple[int, ...]:
        return (self.supplier_id, *(s for s in self.other_supplier_ids if s != self.supplier_id))
