"""Atom pages and entry content, written as strings in the shape of the real feed.

Strings are joined directly rather than built as a tree: a page is rendered in well under a
millisecond, which keeps the simulator off the critical path of the ingest benchmark. Content
children come in alphabetical order, as the service's .NET serializer writes them; nulls are
``i:nil="true"``; every text value and attribute is escaped here and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from dropship_pipeline.simulator.generator import SimAddress, SimCustomer, SimLine, SimOrder

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_NS_HTTPS = "https://www.w3.org/2005/Atom"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSI_NS_HTTPS = "https://www.w3.org/2001/XMLSchema-instance"
DROPSHIP_NS = "urn:iQmetrix:dropship"
FEED_TITLE = "Dropship Order Event Feed"
TITLE_CREATED = "Dropship Order Created"
TITLE_STATUS_UPDATED = "Dropship Order Status Updated"

# Characters XML 1.0 cannot carry at all; a client may send them in a Message.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_text(value: str) -> str:
    """Escape text content. A carriage return is written as a reference so parsers keep it."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    if _NOT_XML.search(value):
        value = _NOT_XML.sub("\ufffd", value)
    return value


def escape_attribute(value: str) -> str:
    return escape_text(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


@dataclass(frozen=True, slots=True)
class ContentStyle:
    """The knobs that change how entry content is spelled (see ``Faults``)."""

    https_xsi_namespace: bool = False
    self_closing_empty: bool = False
    unknown_elements: bool = False


class _Writer:
    """Collects indented lines of one content element."""

    __slots__ = ("empty_tail", "parts")

    def __init__(self, style: ContentStyle) -> None:
        self.parts: list[str] = []
        self.empty_tail = " />" if style.self_closing_empty else None

    def value(self, depth: int, name: str, value: str | int | None) -> None:
        pad = "  " * depth
        if value is None:
            self.parts.append(f'{pad}<{name} i:nil="true" />\n')
        elif value == "" and self.empty_tail:
            self.parts.append(f"{pad}<{name}{self.empty_tail}\n")
        else:
            text = escape_text(value) if isinstance(value, str) else str(value)
            self.parts.append(f"{pad}<{name}>{text}</{name}>\n")

    def open(self, depth: int, name: str) -> None:
        self.parts.append(f"{'  ' * depth}<{name}>\n")

    def close(self, depth: int, name: str) -> None:
        self.parts.append(f"{'  ' * depth}</{name}>\n")


# Depth of the content element inside <feed><entry><content>.
_CONTENT_DEPTH = 3


def _content_open(kind: str, style: ContentStyle) -> str:
    xsi = XSI_NS_HTTPS if style.https_xsi_namespace else XSI_NS
    return f'{"  " * _CONTENT_DEPTH}<{kind} xmlns:i="{xsi}" xmlns="{DROPSHIP_NS}">\n'


class OrderCreatedRenderer:
    """Writes ``<order-created>`` elements, reusing the text of shared parts.

    Generated orders share their customers, store addresses and lines (see ``OrderGenerator``),
    so each part is rendered once per style and found again by identity. The cache holds the
    object itself beside its text, so an id can never be mistaken for a later object's.
    """

    def __init__(self) -> None:
        self._parts: dict[ContentStyle, dict[int, tuple[object, str]]] = {}

    def _part(
        self,
        cache: dict[int, tuple[object, str]],
        obj: object,
        style: ContentStyle,
        write: Callable[[_Writer], None],
    ) -> str:
        hit = cache.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        w = _Writer(style)
        write(w)
        text = "".join(w.parts)
        cache[id(obj)] = (obj, text)
        return text

    def render(self, order: SimOrder, style: ContentStyle) -> str:
        cache = self._parts.setdefault(style, {})
        d = _CONTENT_DEPTH + 1
        pad, pad2 = "  " * d, "  " * (d + 1)
        parts = [_content_open("order-created", style)]
        if style.unknown_elements:
            parts.append(f"{pad}<gift-wrap>false</gift-wrap>\n")
        parts.append(f"{pad}<items>\n")
        for line in order.lines:
            parts.append(
                self._part(cache, line, style, partial(_line, d=d + 1, line=line, style=style))
            )
        address, customer = order.shipping_address, order.shipping_customer
        parts.append(
            f"{pad}</items>\n"
            f"{pad}<order-id>{escape_text(order.order_id)}</order-id>\n"
            f"{pad}<seller>\n"
            f"{pad2}<company-id>{order.company_id}</company-id>\n"
            f"{pad2}<location-id>{order.location_id}</location-id>\n"
            f"{pad2}<po-reference>{escape_text(order.po_reference)}</po-reference>\n"
            f"{pad2}<printable-id>{escape_text(order.printable_id)}</printable-id>\n"
            f"{pad}</seller>\n"
            f"{pad}<ship-to-store>{'true' if order.ship_to_store else 'false'}</ship-to-store>\n"
        )
        parts.append(self._part(cache, address, style, lambda w: _address(w, d, address)))
        parts.append(self._part(cache, customer, style, lambda w: _customer(w, d, customer, style)))
        parts.append(
            f"{pad}<shipping-entity-id>{order.shipping_entity_id}</shipping-entity-id>\n"
            f"{pad}<shipping-method>{escape_text(order.shipping_method)}</shipping-method>\n"
            f"{pad}<supplier-id>{order.supplier_id}</supplier-id>\n"
            f"{'  ' * _CONTENT_DEPTH}</order-created>\n"
        )
        return "".join(parts)


def _line(w: _Writer, d: int, line: SimLine, style: ContentStyle) -> None:
    w.open(d, "order-item")
    w.value(d + 1, "catalog-id", line.catalog_id)
    w.value(d + 1, "description", line.description)
    w.value(d + 1, "quantity", line.quantity)
    w.value(d + 1, "selling-price", format(line.selling_price, "f"))
    if style.unknown_elements:
        w.value(d + 1, "serial-numbers", None)
    w.value(d + 1, "sku", line.sku)
    w.close(d, "order-item")


def _address(w: _Writer, d: int, a: SimAddress) -> None:
    w.open(d, "shipping-address")
    w.value(d + 1, "address-id", a.address_id)
    w.value(d + 1, "attention-to", a.attention_to)
    w.value(d + 1, "business-name", a.business_name)
    w.value(d + 1, "country", a.country)
    w.value(d + 1, "country-code", a.country_code)
    w.value(d + 1, "locality", a.locality)
    w.value(d + 1, "notes", a.notes)
    w.value(d + 1, "phone", a.phone)
    w.value(d + 1, "post-office-box-number", a.post_office_box_number)
    w.value(d + 1, "postal-code", a.postal_code)
    w.value(d + 1, "region", a.region)
    w.value(d + 1, "region-code", a.region_code)
    w.value(d + 1, "street-address-1", a.street_address_1)
    w.value(d + 1, "street-address-2", a.street_address_2)
    w.value(d + 1, "type", a.type)
    w.close(d, "shipping-address")


def _customer(w: _Writer, d: int, c: SimCustomer, style: ContentStyle) -> None:
    w.open(d, "shipping-customer")
    w.value(d + 1, "alternate-name", c.alternate_name)
    w.value(d + 1, "customer-id", c.customer_id)
    w.value(d + 1, "family-name", c.family_name)
    if style.unknown_elements:
        w.value(d + 1, "loyalty-tier", "Gold")
    w.value(d + 1, "middle-name", c.middle_name)
    w.value(d + 1, "notes", c.notes)
    w.value(d + 1, "primary-name", c.primary_name)
    w.value(d + 1, "title", c.title)
    w.value(d + 1, "type", c.type)
    w.close(d, "shipping-customer")


@dataclass(frozen=True, slots=True)
class ItemLine:
    """One ``item-information`` of an ``order-status-updated`` entry."""

    catalog_id: str
    info: str | None
    message: str | None
    quantity: int
    reference_name: str | None
    reference_value: str | None
    shipping_provider: str | None
    sku: str
    status: str
    tracking_info: str | None


def order_status_updated_content(
    *,
    company_id: int,
    order_id: str,
    supplier_id: int,
    items: Sequence[ItemLine],
    style: ContentStyle,
) -> str:
    """The ``<order-status-updated>`` element of an entry: statuses per item, none per order."""
    w = _Writer(style)
    d = _CONTENT_DEPTH + 1
    w.parts.append(_content_open("order-status-updated", style))
    w.value(d, "company-id", company_id)
    w.open(d, "items")
    for item in items:
        w.open(d + 1, "item-information")
        w.value(d + 2, "catalog-id", item.catalog_id)
        if style.unknown_elements:
            w.value(d + 2, "estimated-delivery", None)
        w.value(d + 2, "info", item.info)
        w.value(d + 2, "message", item.message)
        w.value(d + 2, "quantity", item.quantity)
        w.value(d + 2, "reference-name", item.reference_name)
        w.value(d + 2, "reference-value", item.reference_value)
        w.value(d + 2, "shipping-provider", item.shipping_provider)
        w.value(d + 2, "sku", item.sku)
        w.value(d + 2, "status", item.status)
        w.value(d + 2, "tracking-info", item.tracking_info)
        w.close(d + 1, "item-information")
    w.close(d, "items")
    w.value(d, "order-id", order_id)
    w.value(d, "supplier-id", supplier_id)
    w.close(_CONTENT_DEPTH, "order-status-updated")
    return "".join(w.parts)


def entry(*, entry_id: str, title: str, published: str, content: str) -> str:
    """A whole ``<entry>`` around already-rendered content; ``updated`` equals ``published``."""
    return (
        "  <entry>\n"
        f"    <id>{escape_text(entry_id)}</id>\n"
        f'    <title type="text">{title}</title>\n'
        f"    <published>{published}</published>\n"
        f"    <updated>{published}</updated>\n"
        '    <content type="application/xml">\n'
        f"{content}"
        "    </content>\n"
        "  </entry>\n"
    )


def page(
    *,
    page_id: str,
    updated: str,
    links: Iterable[tuple[str, str]],
    entries: Iterable[str],
    https_atom_namespace: bool = False,
) -> bytes:
    """A whole feed page as UTF-8 bytes; ``entries`` are rendered entries, newest first."""
    namespace = ATOM_NS_HTTPS if https_atom_namespace else ATOM_NS
    head = [
        '<?xml version="1.0" encoding="utf-8"?>\n',
        f'<feed xmlns="{namespace}">\n',
        f'  <title type="text">{FEED_TITLE}</title>\n',
        f"  <id>urn:uuid:{page_id}</id>\n",
        f"  <updated>{updated}</updated>\n",
        "  <author>\n    <name>iQmetrix</name>\n  </author>\n",
    ]
    head.extend(f'  <link rel="{rel}" href="{escape_attribute(href)}" />\n' for rel, href in links)
    head.extend(entries)
    head.append("</feed>\n")
    return "".join(head).encode("utf-8")
