"""Typed models of what the Dropship service sends and accepts.

Names follow the feed's own vocabulary (``order-id`` becomes ``order_id``). Every id is an opaque
string: entry ids in the wild are not always GUIDs. ``None`` means the element was nil
(``i:nil="true"``) or absent; an empty element is the empty string.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple


class OrderStatus(enum.IntEnum):
    """Order and item status: the same ids and names for both (API reference, section 4.1)."""

    PendingSupplier = 0
    Ordered = 1
    Shipped = 2
    BackOrdered = 3
    Error = 4
    NotAvailable = 5
    PartiallyShipped = 6
    Cancelled = 7
    Other = 8

    @classmethod
    def parse(cls, value: str | int) -> OrderStatus:
        """Read a status given as its name (any case) or its number; raise ValueError if neither."""
        if isinstance(value, int):
            return cls(value)
        text = value.strip()
        if text.isdigit():
            return cls(int(text))
        folded = text.replace(" ", "").replace("_", "").lower()
        for status in cls:
            if status.name.lower() == folded:
                return status
        raise ValueError(f"{value!r} is not an iQmetrix order status name or number")


EventType = Literal["order-created", "order-status-updated"]
ORDER_CREATED: EventType = "order-created"
ORDER_STATUS_UPDATED: EventType = "order-status-updated"


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One ``order-item`` of an ``order-created`` event; ``line_number`` counts from 1."""

    line_number: int
    sku: str | None
    catalog_id: str | None
    description: str | None
    quantity: int | None
    selling_price: Decimal | None


@dataclass(frozen=True, slots=True)
class Order:
    """An ``order-created`` event, flattened: seller, customer and address fields side by side."""

    order_id: str
    supplier_id: str | None
    seller_company_id: str | None
    seller_location_id: str | None
    po_reference: str | None
    printable_id: str | None
    ship_to_store: bool | None
    shipping_method: str | None
    shipping_entity_id: str | None
    customer_id: str | None
    customer_type: str | None
    title: str | None
    primary_name: str | None
    middle_name: str | None
    family_name: str | None
    alternate_name: str | None
    customer_notes: str | None
    address_id: str | None
    address_type: str | None
    attention_to: str | None
    business_name: str | None
    street_address_1: str | None
    street_address_2: str | None
    post_office_box_number: str | None
    locality: str | None
    region: str | None
    region_code: str | None
    postal_code: str | None
    country: str | None
    country_code: str | None
    phone: str | None
    address_notes: str | None
    lines: tuple[OrderLine, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemStatusInfo:
    """One ``item-information`` of an ``order-status-updated`` event."""

    sku: str | None
    catalog_id: str | None
    status: str | None
    quantity: int | None
    tracking_info: str | None
    shipping_provider: str | None
    info: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class OrderStatusUpdated:
    """An ``order-status-updated`` event: per-item statuses; there is no order-level status."""

    order_id: str
    supplier_id: str | None
    company_id: str | None
    items: tuple[ItemStatusInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One Atom ``<entry>``. ``event_type`` is None for content this version does not know;
    such an entry is still stored (with its raw XML) but changes no order."""

    entry_id: str
    event_type: EventType | None
    title: str | None
    published: datetime | None
    updated: datetime | None
    content_xml: str
    order: Order | None = None
    status_update: OrderStatusUpdated | None = None

    @property
    def order_id(self) -> str | None:
        if self.order is not None:
            return self.order.order_id
        if self.status_update is not None:
            return self.status_update.order_id
        return None


@dataclass(frozen=True, slots=True)
class FeedLinks:
    """The RFC 5005 links of a page. ``self_url`` carries the page's stable GUID."""

    self_url: str | None
    current_url: str | None
    prev_archive_url: str | None
    next_archive_url: str | None


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One parsed feed page. ``page_id`` is the GUID of the ``self`` link (else the feed id)."""

    url: str
    page_id: str
    updated: datetime | None
    links: FeedLinks
    entries: tuple[FeedEntry, ...] = ()


# ---- the same content as rows, for loading in bulk ------------------------------------------

#: An order line: line_number, sku, catalog_id, description, quantity, and selling_price as the
#: feed's decimal text (checked, whitespace removed; the database converts it).
LineRow = tuple[int, str | None, str | None, str | None, int | None, str | None]
#: An item of a status update: the fields of ItemStatusInfo, in their order.
ItemStatusRow = tuple[
    str | None, str | None, str | None, int | None, str | None, str | None, str | None, str | None
]


class StatusRow(NamedTuple):
    order_id: str
    supplier_id: str | None
    company_id: str | None
    items: list[ItemStatusRow]


class EntryRow(NamedTuple):
    """A FeedEntry as plain values. ``order`` holds Order's fields but ``lines``, in their
    declaration order; ``content_xml`` is UTF-8 bytes."""

    entry_id: str
    event_type: EventType | None
    title: str | None
    published: datetime | None
    updated: datetime | None
    content_xml: bytes
    order: list[Any] | None
    lines: list[LineRow]
    status: StatusRow | None

    @property
    def order_id(self) -> str | None:
        if self.order is not None:
            return self.order[0]
        if self.status is not None:
            return self.status.order_id
        return None


class PageRows(NamedTuple):
    """A FeedPage whose entries are EntryRows (document order: newest first)."""

    url: str
    page_id: str
    updated: datetime | None
    links: FeedLinks
    entries: list[EntryRow]


# ---- status PUTs -------------------------------------------------------------------------


def _without_nones(**fields: object) -> dict[str, object]:
    """A PUT body: fields not given are left out rather than sent as null."""
    return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True, slots=True)
class OrderStatusUpdate:
    """Body of ``PUT .../Orders(id)/OrderStatusUpdate``. ``Status`` is sent as its number."""

    order_id: str
    status: OrderStatus
    tracking_info: str | None = None
    shipping_provider: str | None = None
    info: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, object]:
        return _without_nones(
            Id=self.order_id,
            Status=int(self.status),
            TrackingInfo=self.tracking_info,
            ShippingProvider=self.shipping_provider,
            Info=self.info,
            Message=self.message,
        )


@dataclass(frozen=True, slots=True)
class ItemInformation:
    """One item of an ``ItemStatusUpdate``; ``quantity`` is the units in this shipment."""

    sku: str
    status: OrderStatus
    catalog_id: str | None = None
    quantity: int | None = None
    tracking_info: str | None = None
    shipping_provider: str | None = None
    info: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, object]:
        return _without_nones(
            Sku=self.sku,
            Status=int(self.status),
            CatalogId=self.catalog_id,
            Quantity=self.quantity,
            TrackingInfo=self.tracking_info,
            ShippingProvider=self.shipping_provider,
            Info=self.info,
            Message=self.message,
        )


@dataclass(frozen=True, slots=True)
class ItemStatusUpdate:
    """Body of ``PUT .../Orders(id)/ItemStatusUpdate``."""

    order_id: str
    items: tuple[ItemInformation, ...]

    def to_json(self) -> dict[str, object]:
        return {"Id": self.order_id, "ItemInformation": [item.to_json() for item in self.items]}


@dataclass(frozen=True, slots=True)
class EchoedItem:
    """One item of an ``ItemStatusUpdate`` echo; the service fills in CatalogId and Quantity."""

    sku: str | None
    status: OrderStatus | None
    catalog_id: str | None
    quantity: int | None
    tracking_info: str | None


@dataclass(frozen=True, slots=True)
class StatusUpdateReceipt:
    """What the service answered to a status PUT: the HTTP status and its echo of the body.

    ``echo`` is the JSON object as received (empty when there was none); the properties read
    it into typed values, None where a field is missing or not of the documented kind. The echo
    writes ``Status`` as a name, older answers as a number: both are read.
    """

    http_status: int
    echo: dict[str, object] = field(default_factory=dict)

    @property
    def order_id(self) -> str | None:
        return _echoed_text(self.echo.get("Id"))

    @property
    def status(self) -> OrderStatus | None:
        return _echoed_status(self.echo.get("Status"))

    @property
    def tracking_info(self) -> str | None:
        return _echoed_text(self.echo.get("TrackingInfo"))

    @property
    def items(self) -> tuple[EchoedItem, ...]:
        items = self.echo.get("ItemInformation")
        if not isinstance(items, list):
            return ()
        return tuple(
            EchoedItem(
                sku=_echoed_text(item.get("Sku")),
                status=_echoed_status(item.get("Status")),
                catalog_id=_echoed_text(item.get("CatalogId")),
                quantity=item["Quantity"] if type(item.get("Quantity")) is int else None,
                tracking_info=_echoed_text(item.get("TrackingInfo")),
            )
            for item in items
            if isinstance(item, dict)
        )


def _echoed_text(value: object) -> str | None:
    # The documented example sends a tracking number as a bare number; it comes back as text.
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, str | int) else None


def _echoed_status(value: object) -> OrderStatus | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        return OrderStatus.parse(value)
    except ValueError:
        return None
