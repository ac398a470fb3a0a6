"""Status update bodies: reading them as the service does, and the lifecycle strict mode checks.

The service accepts ``Status`` as a number or a name and any order of fields; it fails a body
with 400 when a field has the wrong type, ``Id`` is missing or names another order, a status is
unknown, or an item names a SKU that the order does not have (API reference, sections 3.3-3.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dropship_pipeline.dropship.models import OrderStatus

S = OrderStatus

# The edges of the flow diagrams (API reference, section 4.2), plus what the newer text and
# the contract add: PartiallyShipped -> Shipped, PartiallyShipped again for each further
# shipment, and BackOrdered after Ordered (CONTRACT.md section 6). A supplier must set every
# order it receives to Ordered first (Managing Orders page), so what the diagrams draw from
# PendingSupplier (NotAvailable, Error, Other) is accepted from Ordered too, and a back-order
# may end in a shipment or a cancellation. Shipped -> Shipped is allowed only when it adds
# tracking numbers; any other repeat of a status is flagged.
LIFECYCLE_EDGES: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    S.PendingSupplier: frozenset(
        {S.Ordered, S.BackOrdered, S.NotAvailable, S.Error, S.Other, S.Cancelled}
    ),
    S.Ordered: frozenset(
        {
            S.Shipped,
            S.PartiallyShipped,
            S.BackOrdered,
            S.Cancelled,
            S.NotAvailable,
            S.Error,
            S.Other,
        }
    ),
    S.BackOrdered: frozenset({S.Ordered, S.Shipped, S.PartiallyShipped, S.Cancelled}),
    S.NotAvailable: frozenset({S.Cancelled}),
    S.PartiallyShipped: frozenset({S.Shipped, S.PartiallyShipped}),
    S.Shipped: frozenset(),
    S.Cancelled: frozenset(),
    S.Error: frozenset(),
    S.Other: frozenset(),
}


def lifecycle_problem(
    subject: str, before: OrderStatus, after: OrderStatus, *, adds_tracking: bool
) -> str | None:
    """Why moving ``subject`` from ``before`` to ``after`` is outside the lifecycle, or None.

    ``adds_tracking`` says whether the update brings tracking numbers not sent before, which
    is what makes a second Shipped legitimate.
    """
    if before == after == S.Shipped:
        if adds_tracking:
            return None
        return f"{subject} Shipped -> Shipped repeats the status without a new tracking number"
    if before == after and after != S.PartiallyShipped:
        return f"{subject} {after.name} -> {after.name} repeats a status already sent"
    if after in LIFECYCLE_EDGES[before]:
        return None
    return f"{subject} {before.name} -> {after.name} leaves the lifecycle"


def tracking_numbers(value: str | None) -> list[str]:
    """The comma-separated numbers of a ``TrackingInfo``, without blanks or repeats."""
    if not value:
        return []
    seen: dict[str, None] = {}
    for part in value.split(","):
        number = part.strip()
        if number:
            seen.setdefault(number, None)
    return list(seen)


def dropped_numbers(before: Iterable[str], sent: str | None) -> list[str]:
    now = set(tracking_numbers(sent))
    return [number for number in before if number not in now]


class InvalidBody(ValueError):
    """A body the service refuses with 400; ``problems`` maps a field path to its reasons."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in problems.items()))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class StatusFields:
    """What an order update and an item update have in common."""

    status: OrderStatus
    tracking_info: str | None
    shipping_provider: str | None
    info: str | None
    message: str | None
    reference_name: str | None
    reference_value: str | None


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    order_id: str
    fields: StatusFields


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    sku: str
    catalog_id: str | None
    quantity: int | None
    fields: StatusFields


@dataclass(frozen=True, slots=True)
class ItemsUpdate:
    order_id: str
    items: tuple[ItemUpdate, ...]


class _Reader:
    """Reads typed fields of a JSON object, collecting every problem before failing."""

    def __init__(self) -> None:
        self.problems: dict[str, list[str]] = {}

    def fail(self, path: str, reason: str) -> None:
        self.problems.setdefault(path, []).append(reason)

    def text(self, body: Mapping[str, Any], key: str, path: str) -> str | None:
        value = body.get(key)
        if value is None or isinstance(value, str):
            return value
        self.fail(path, "must be a string")
        return None

    def status(self, body: Mapping[str, Any], path: str) -> OrderStatus:
        value = body.get("Status")
        if value is None:
            return S.PendingSupplier
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= 8:
                return S(value)
        elif isinstance(value, str):
            for status in S:
                if status.name.lower() == value.strip().lower():
                    return status
            if value.strip().isdigit() and 0 <= int(value) <= 8:
                return S(int(value))
        self.fail(path, f"{value!r} is not a status name or a number from 0 to 8")
        return S.PendingSupplier

    def tracking(self, body: Mapping[str, Any], path: str) -> str | None:
        value = body.get("TrackingInfo")
        # The documentation's example sends a tracking number as a bare JSON number.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.text(body, "TrackingInfo", path)

    def fields(self, body: Mapping[str, Any], prefix: str) -> StatusFields:
        return StatusFields(
            status=self.status(body, f"{prefix}Status"),
            tracking_info=self.tracking(body, f"{prefix}TrackingInfo"),
            shipping_provider=self.text(body, "ShippingProvider", f"{prefix}ShippingProvider"),
            info=self.text(body, "Info", f"{prefix}Info"),
            message=self.text(body, "Message", f"{prefix}Message"),
            reference_name=self.text(body, "ReferenceName", f"{prefix}ReferenceName"),
            reference_value=self.text(body, "ReferenceValue", f"{prefix}ReferenceValue"),
        )

    def order_id(self, body: Mapping[str, Any], url_order_id: str) -> str:
        value = body.get("Id")
        if not isinstance(value, str) or not value.strip():
            self.fail("Id", "is required")
            return ""
        if value.strip().lower() != url_order_id.lower():
            self.fail("Id", "must equal the order id in the URL")
        return value.strip()


def _object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise InvalidBody({"": ["the body must be a JSON object"]})
    return body


def read_order_update(body: object, url_order_id: str) -> OrderUpdate:
    """Read an ``OrderStatusUpdate`` body; raise InvalidBody listing every problem."""
    mapping = _object(body)
    reader = _Reader()
    order_id = reader.order_id(mapping, url_order_id)
    fields = reader.fields(mapping, "")
    if reader.problems:
        raise InvalidBody(reader.problems)
    return OrderUpdate(order_id=order_id, fields=fields)


def read_items_update(body: object, url_order_id: str, skus: Iterable[str]) -> ItemsUpdate:
    """Read an ``ItemStatusUpdate`` body; every item must name one of ``skus``."""
    mapping = _object(body)
    reader = _Reader()
    order_id = reader.order_id(mapping, url_order_id)
    known = set(skus)
    raw_items = mapping.get("ItemInformation")
    items: list[ItemUpdate] = []
    if not isinstance(raw_items, list) or not raw_items:
        reader.fail("ItemInformation", "must be a non-empty list")
        raw_items = []
    for n, raw in enumerate(raw_items):
        prefix = f"ItemInformation[{n}]."
        if not isinstance(raw, dict):
            reader.fail(f"ItemInformation[{n}]", "must be an object")
            continue
        sku = raw.get("Sku")
        if not isinstance(sku, str) or not sku:
            reader.fail(f"{prefix}Sku", "is required")
        elif sku not in known:
            reader.fail(f"{prefix}Sku", f"{sku!r} is not a line of this order")
        quantity = raw.get("Quantity")
        if quantity is not None and (
            isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0
        ):
            reader.fail(f"{prefix}Quantity", "must be a whole number, 0 or more")
            quantity = None
        items.append(
            ItemUpdate(
                sku=sku if isinstance(sku, str) else "",
                catalog_id=reader.text(raw, "CatalogId", f"{prefix}CatalogId"),
                quantity=quantity,
                fields=reader.fields(raw, prefix),
            )
        )
    if reader.problems:
        raise InvalidBody(reader.problems)
    return ItemsUpdate(order_id=order_id, items=tuple(items))
