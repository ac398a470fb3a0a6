"""The Dropship Notifications feed, read from bytes into the typed models.

Every page is untrusted input. It is parsed by one prebuilt lxml parser with entities, DTD
loading and network access off, with a resolver that refuses every external resource, and any
document that declares a DTD is rejected outright. Anything that cannot be read into the models
raises :class:`~dropship_pipeline.errors.FeedPageError` naming the page URL, and the entry id when
there is one: the crawl stops at that page rather than skip it.

The variations of the API reference (section 12) are accepted: the Atom and XML Schema instance
namespaces in their ``http`` and ``https`` spellings, Dropship content in the
``urn:iQmetrix:dropship`` namespace or in none, any child order, unknown elements, and content
this version does not know (kept as an entry with ``event_type`` None and its raw XML).

Speed comes from walking children directly (as slices, which lxml builds in C) and mapping
full ``{namespace}local`` tags through dictionaries built for every spelling at import time; the
remaining cost is mostly lxml's own per-element work and building the frozen models.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urljoin

from lxml import etree

from dropship_pipeline.dropship.models import (
    ORDER_CREATED,
    ORDER_STATUS_UPDATED,
    EntryRow,
    EventType,
    FeedEntry,
    FeedLinks,
    FeedPage,
    ItemStatusInfo,
    ItemStatusRow,
    LineRow,
    Order,
    OrderLine,
    OrderStatusUpdated,
    PageRows,
    StatusRow,
)
from dropship_pipeline.errors import FeedPageError

__all__ = ["page_id_from_url", "parse_links", "parse_page", "read_page"]

logger = logging.getLogger(__name__)

ATOM_NAMESPACES: Final = ("http://www.w3.org/2005/Atom", "https://www.w3.org/2005/Atom")
XSI_NAMESPACES: Final = (
    "http://www.w3.org/2001/XMLSchema-instance",
    "https://www.w3.org/2001/XMLSchema-instance",
)
# The empty string stands for content written without any namespace.
DROPSHIP_NAMESPACES: Final = ("urn:iQmetrix:dropship", "")

# parse_links feeds the body in slices this big, so a page's header is read without the rest.
# Every element in a slice becomes an event: slices of 4 KB also read most of the first entry
# (63-98 us a page), slices of 1 KB stop near its start (20 us).
_LINKS_CHUNK: Final = 1024

_V = TypeVar("_V")


def _tag(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}" if namespace else local


def _tags(namespaces: Iterable[str], by_local: Mapping[str, _V]) -> dict[str, _V]:
    """Key ``by_local`` by the full tag of every namespace spelling."""
    return {_tag(ns, local): value for ns in namespaces for local, value in by_local.items()}


def _atom(by_local: Mapping[str, _V]) -> dict[str, _V]:
    return _tags(ATOM_NAMESPACES, by_local)


def _dropship(by_local: Mapping[str, _V]) -> dict[str, _V]:
    return _tags(DROPSHIP_NAMESPACES, by_local)


_FEED_TAGS: Final = frozenset(_atom({"feed": None}))
_ENTRY_TAGS: Final = frozenset(_atom({"entry": None}))
_LINK_TAGS: Final = frozenset(_atom({"link": None}))
_FEED_CHILD: Final = _atom({"id": "id", "updated": "updated", "link": "link", "entry": "entry"})
_ENTRY_CHILD: Final = _atom(
    {
        "id": "id",
        "title": "title",
        "published": "published",
        "updated": "updated",
        "content": "content",
    }
)
# Both spellings of xsi:nil, the one last met first: a page uses one of them throughout, and
# each attribute lookup that misses costs as much as the one that hits. Only the order changes
# (the list is swapped in place), so concurrent parsers always try both.
_NIL_KEYS: Final = [_tag(XSI_NAMESPACES[1], "nil"), _tag(XSI_NAMESPACES[0], "nil")]
_NIL_TRUE: Final = ("true", "1")

_EVENT_TAGS: Final[dict[str, EventType]] = _dropship(
    {"order-created": ORDER_CREATED, "order-status-updated": ORDER_STATUS_UPDATED}
)
_ITEMS_TAGS: Final = frozenset(_dropship({"items": None}))
_ORDER_ITEM_TAGS: Final = frozenset(_dropship({"order-item": None}))
_ITEM_INFORMATION_TAGS: Final = frozenset(_dropship({"item-information": None}))

_ORDER_FIELD: Final = _dropship(
    {
        "order-id": "order_id",
        "supplier-id": "supplier_id",
        "ship-to-store": "ship_to_store",
        "shipping-entity-id": "shipping_entity_id",
        "shipping-method": "shipping_method",
    }
)
_ORDER_GROUP: Final = _dropship(
    {
        "seller": _dropship(
            {
                "company-id": "seller_company_id",
                "location-id": "seller_location_id",
                "po-reference": "po_reference",
                "printable-id": "printable_id",
            }
        ),
        "shipping-customer": _dropship(
            {
                "customer-id": "customer_id",
                "type": "customer_type",
                "title": "title",
                "primary-name": "primary_name",
                "middle-name": "middle_name",
                "family-name": "family_name",
                "alternate-name": "alternate_name",
                "notes": "customer_notes",
            }
        ),
        "shipping-address": _dropship(
            {
                "address-id": "address_id",
                "type": "address_type",
                "attention-to": "attention_to",
                "business-name": "business_name",
                "street-address-1": "street_address_1",
                "street-address-2": "street_address_2",
                "post-office-box-number": "post_office_box_number",
                "locality": "locality",
                "region": "region",
                "region-code": "region_code",
                "postal-code": "postal_code",
                "country": "country",
                "country-code": "country_code",
                "phone": "phone",
                "notes": "address_notes",
            }
        ),
    }
)
# Every Order field but `lines`, in declaration order: _order_row fills a list in this order, so
# that its values can be passed positionally; a field is None (absent) until the page says
# otherwise. (A list indexed by position costs less than a dict copied for every order.)
_ORDER_SLOT: Final = {
    name: slot
    for slot, name in enumerate(f.name for f in dataclasses.fields(Order) if f.name != "lines")
}
_unknown_fields = {
    *_ORDER_FIELD.values(),
    *(name for group in _ORDER_GROUP.values() for name in group.values()),
} - _ORDER_SLOT.keys()
if _unknown_fields:
    raise ImportError(f"the Order model lacks the fields {sorted(_unknown_fields)}")
_FIELD_SLOT: Final = {tag: _ORDER_SLOT[name] for tag, name in _ORDER_FIELD.items()}
_GROUP_SLOT: Final = {
    tag: {leaf: _ORDER_SLOT[name] for leaf, name in group.items()}
    for tag, group in _ORDER_GROUP.items()
}
# Ids are opaque, but padding around them is layout, not identity.
_ORDER_ID_FIELDS: Final = (
    "supplier_id",
    "seller_company_id",
    "seller_location_id",
    "printable_id",
    "shipping_entity_id",
    "shipping_method",
    "customer_id",
    "address_id",
)
_ID_SLOTS: Final = tuple(_ORDER_SLOT[name] for name in _ORDER_ID_FIELDS)
_ORDER_ID_SLOT: Final = _ORDER_SLOT["order_id"]
_SHIP_TO_STORE_SLOT: Final = _ORDER_SLOT["ship_to_store"]
# Positions in the per-line list _line_rows fills.
_LINE_SLOT: Final = _dropship(
    {"sku": 0, "catalog-id": 1, "description": 2, "quantity": 3, "selling-price": 4}
)
_STATUS_FIELD: Final = _dropship(
    {"order-id": "order_id", "supplier-id": "supplier_id", "company-id": "company_id"}
)
_ITEM_STATUS_FIELD: Final = _dropship(
    {
        "sku": "sku",
        "catalog-id": "catalog_id",
        "status": "status",
        "quantity": "quantity",
        "tracking-info": "tracking_info",
        "shipping-provider": "shipping_provider",
        "info": "info",
        "message": "message",
    }
)

_LINK_FIELD: Final = {
    "self": "self_url",
    "current": "current_url",
    "prev-archive": "prev_archive_url",
    "next-archive": "next_archive_url",
}
_PAGE_IN_URL: Final = re.compile(r"/Pages\(([^()/?#]+)\)")
_UUID_URN: Final = re.compile(r"urn:uuid:", re.IGNORECASE)
_GUID: Final = re.compile(
    r"\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?"
)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# order_items.selling_price is DECIMAL(18, 4): at most 14 digits before the point.
_PRICE_INTEGER_DIGITS: Final = 14
# The first "<" not followed by "?" or "!" opens the root element: before it, only the XML
# declaration, comments, processing instructions and a DOCTYPE can stand.
_ELEMENT_START: Final = re.compile(rb"<[^?!]")


class _Unreadable(ValueError):
    """A value or element that cannot be read into the models; becomes a FeedPageError."""


class _ExternalResourceRefused(Exception):
    """Raised by the resolver: a page asked the parser to load something from outside."""


class _RefuseEverything(etree.Resolver):
    """A resolver that refuses every external DTD, entity or document a page asks for.

    With entity resolution and DTD loading off libxml2 should never ask, but an external
    parameter entity is still fetched by some libxml2 versions; refusing here means no local
    file and no URL is ever opened, whatever the library does by default.
    """

    def resolve(self, system_url: str, public_id: str, context: object) -> None:
        raise _ExternalResourceRefused(f"the page refers to an external resource {system_url!r}")


_PARSER_OPTIONS: Final[dict[str, Any]] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
    "collect_ids": False,
    # Whitespace between elements only (the pages' indentation) is not kept: about a third of
    # the nodes of a page, and a quarter of each entry's content_xml. Whitespace that is an
    # element's whole value, or stands beside other text (mixed content), stays, as does any
    # under xml:space="preserve".
    "remove_blank_text": True,
}


def _hardened_parser() -> etree.XMLParser:
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    parser.resolvers.add(_RefuseEverything())
    return parser


# One parser for the process: lxml serialises concurrent use of a parser itself.
_PARSER: Final = _hardened_parser()


def page_id_from_url(url: str) -> str | None:
    """Return the page id inside ``Pages(<id>)`` of a feed page URL, or None if it has none.

    The id is percent-decoded and stripped of surrounding whitespace. It need not be a GUID;
    one that is comes back in lower case without braces, so that a link and the page's own
    ``self`` link that spell it differently still name the same page.
    """
    match = _PAGE_IN_URL.search(url)
    if match is None:
        return None
    return _canonical_page_id(unquote(match.group(1)))


def _canonical_page_id(text: str) -> str | None:
    page_id = text.strip()
    if _GUID.fullmatch(page_id):
        return page_id.strip("{}").lower()
    return page_id or None


def parse_page(body: bytes, url: str) -> FeedPage:
    """Read a whole feed page: its links, id, ``updated`` and every entry, in document order.

    ``url`` is where the page was fetched from; it becomes ``FeedPage.url``, resolves relative
    link targets, and names the page in errors. ``page_id`` is the id in the ``self`` link's
    ``Pages(...)``, else the feed ``<id>`` without its ``urn:uuid:`` prefix.

    Raises FeedPageError when the body is not well-formed XML, declares a DTD, refers to an
    external resource, has a root other than an Atom ``feed``, has no page id, or holds an
    entry that cannot be read: no ``<id>``, an event without ``order-id``, or an integer,
    decimal, boolean or timestamp that does not parse.
    """
    rows = read_page(body, url)
    return FeedPage(
        url=rows.url,
        page_id=rows.page_id,
        updated=rows.updated,
        links=rows.links,
        entries=tuple(_typed_entry(row) for row in rows.entries),
    )


def read_page(body: bytes, url: str) -> PageRows:
    """What :func:`parse_page` reads, as plain rows rather than typed models.

    The crawl loads pages in bulk, and building a model per entry only to take it apart again
    would cost about as much as reading the page. Same checks, same errors.
    """
    root = _parse_document(body, url)

    feed_id: str | None = None
    updated_text: str | None = None
    links: dict[str, str] = {}
    entries: list[EntryRow] = []
    for child in root[:]:
        kind = _FEED_CHILD.get(child.tag)
        if kind == "entry":
            entries.append(_entry_row(child, url, len(entries) + 1))
        elif kind == "link":
            _collect_link(child, url, links)
        elif kind == "id" and feed_id is None:
            feed_id = child.text
        elif kind == "updated" and updated_text is None:
            updated_text = child.text

    page_links = _links(links)
    page_id = _page_id(page_links, feed_id)
    if page_id is None:
        raise FeedPageError(url, "the page has no self link with Pages(...) and no feed <id>")
    try:
        updated = None if updated_text is None else _timestamp(updated_text, "feed updated")
    except _Unreadable as exc:
        raise FeedPageError(url, str(exc)) from None

    logger.debug("Parsed feed page %s: %d entries", url, len(entries))
    return PageRows(url, page_id, updated, page_links, entries)


def _typed_entry(row: EntryRow) -> FeedEntry:
    order = None
    if row.order is not None:
        lines = tuple(
            OrderLine(number, sku, catalog_id, description, quantity, _price(price))
            for number, sku, catalog_id, description, quantity, price in row.lines
        )
        # row.order holds every field but lines, in field order (see _ORDER_SLOT).
        order = Order(*row.order, lines)  # type: ignore[call-arg]
    status_update = None
    if row.status is not None:
        status_update = OrderStatusUpdated(
            order_id=row.status.order_id,
            supplier_id=row.status.supplier_id,
            company_id=row.status.company_id,
            items=tuple(ItemStatusInfo(*item) for item in row.status.items),
        )
    return FeedEntry(
        row.entry_id,
        row.event_type,
        row.title,
        row.published,
        row.updated,
        row.content_xml.decode(),
        order,
        status_update,
    )


def _price(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def parse_links(body: bytes, url: str) -> FeedLinks:
    """Read only the feed-level ``<link>`` elements; return what :func:`parse_page` would.

    The service writes its links before its entries, so reading usually stops at the first
    ``<entry>`` once a ``prev-archive`` link has been seen. Atom allows links after entries,
    though, and taking a page without one for the oldest would skip everything older: when the
    first entry comes before any ``prev-archive`` link, the whole page is read. Hostile or
    malformed input in what is read, a non-feed root, or a body that ends before it proves
    where the links are raise FeedPageError.
    """
    if _declares_dtd(body):
        raise FeedPageError(url, "the page declares a DTD, which feed pages never do")
    parser = etree.XMLPullParser(events=("start",), **_PARSER_OPTIONS)
    parser.resolvers.add(_RefuseEverything())

    links: dict[str, str] = {}
    root: etree._Element | None = None
    stream = BytesIO(body)
    try:
        while chunk := stream.read(_LINKS_CHUNK):
            parser.feed(chunk)
            for _event, element in parser.read_events():
                if root is None:
                    root = element
                    if _has_dtd(root):
                        raise FeedPageError(
                            url, "the page declares a DTD, which feed pages never do"
                        )
                    _check_root(root, url)
                elif element.getparent() is not root:
                    continue
                elif element.tag in _ENTRY_TAGS:
                    if "prev_archive_url" in links:
                        return _links(links)
                    # Read on: only the whole page proves it has no prev-archive link. The
                    # entries read so far are not needed again.
                    previous = element.getprevious()
                    while previous is not None and previous.tag in _ENTRY_TAGS:
                        root.remove(previous)
                        previous = element.getprevious()
                elif element.tag in _LINK_TAGS:
                    _collect_link(element, url, links)
        # Only a complete document proves no link was cut off.
        parser.close()
    except (etree.XMLSyntaxError, _ExternalResourceRefused) as exc:
        raise FeedPageError(url, f"the page is not well-formed XML: {exc}") from None
    if root is None:
        raise FeedPageError(url, "the page has no root element")
    return _links(links)


def _parse_document(body: bytes, url: str) -> etree._Element:
    """Parse ``body`` with the hardened parser and return its Atom ``feed`` root."""
    if _declares_dtd(body):
        raise FeedPageError(url, "the page declares a DTD, which feed pages never do")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise FeedPageError(url, f"the page is not well-formed XML: {exc}") from None
    except _ExternalResourceRefused as exc:
        raise FeedPageError(url, str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise FeedPageError(url, f"the page body cannot be parsed: {exc}") from None
    if _has_dtd(root):
        raise FeedPageError(url, "the page declares a DTD, which feed pages never do")
    _check_root(root, url)
    return root


def _declares_dtd(body: bytes) -> bool:
    """Tell whether an ASCII-compatible body declares a DOCTYPE before its root element.

    Only the prolog is scanned, so the check costs nothing on a real page; bodies it cannot
    see into (UTF-16, a comment holding "<" before the DOCTYPE) are caught after parsing.
    """
    root_start = _ELEMENT_START.search(body)
    end = len(body) if root_start is None else root_start.start()
    return body.find(b"<!DOCTYPE", 0, end) >= 0


def _has_dtd(root: etree._Element) -> bool:
    return root.getroottree().docinfo.internalDTD is not None


def _check_root(root: etree._Element, url: str) -> None:
    if root.tag not in _FEED_TAGS:
        raise FeedPageError(url, f"the root element is {root.tag!r}, not an Atom feed")


def _collect_link(link: etree._Element, url: str, links: dict[str, str]) -> None:
    """Record a feed ``<link>`` whose rel the crawl uses; the first of each rel wins."""
    field = _LINK_FIELD.get((link.get("rel") or "alternate").strip())
    href = link.get("href")
    if field is None or field in links or not href or not href.strip():
        return
    href = href.strip()
    # RFC 4287 allows relative references; the service writes absolute ones.
    links[field] = href if "://" in href else urljoin(url, href)


def _links(links: dict[str, str]) -> FeedLinks:
    return FeedLinks(
        self_url=links.get("self_url"),
        current_url=links.get("current_url"),
        prev_archive_url=links.get("prev_archive_url"),
        next_archive_url=links.get("next_archive_url"),
    )


def _page_id(links: FeedLinks, feed_id: str | None) -> str | None:
    if links.self_url is not None:
        from_self = page_id_from_url(links.self_url)
        if from_self is not None:
            return from_self
    if feed_id is None:
        return None
    return _canonical_page_id(_UUID_URN.sub("", feed_id.strip(), count=1))


def _entry_row(entry: etree._Element, url: str, position: int) -> EntryRow:
    """Read one ``<entry>``; ``position`` (from 1) names it in errors when it has no id."""
    entry_id: str | None = None
    title: str | None = None
    published_text: str | None = None
    updated_text: str | None = None
    content: etree._Element | None = None
    for child in entry[:]:
        kind = _ENTRY_CHILD.get(child.tag)
        if kind is None:
            continue
        text = child.text
        if text is None:
            text = _empty_or_nil(child)
        if kind == "id":
            entry_id = text
        elif kind == "title":
            title = text
        elif kind == "published":
            published_text = text
        elif kind == "updated":
            updated_text = text
        else:
            content = child

    entry_id = entry_id.strip() if entry_id else ""
    if not entry_id:
        raise FeedPageError(url, f"entry {position} of the page has no <id>")

    event_type: EventType | None = None
    order: list[Any] | None = None
    lines: list[LineRow] = []
    status: StatusRow | None = None
    try:
        published = None if published_text is None else _timestamp(published_text, "published")
        if updated_text == published_text:
            updated = published
        else:
            updated = None if updated_text is None else _timestamp(updated_text, "updated")
        if content is not None:
            for event in content:
                event_type = _EVENT_TAGS.get(event.tag)
                if event_type == ORDER_CREATED:
                    order, lines = _order_row(event)
                    break
                if event_type == ORDER_STATUS_UPDATED:
                    status = _status_row(event)
                    break
    except _Unreadable as exc:
        raise FeedPageError(url, f"entry {entry_id}: {exc}") from None
    if event_type is None:
        logger.debug("Feed entry %s holds content this version does not read", entry_id)

    # UTF-8 bytes: the database takes them as they are, where a str would be encoded again.
    content_xml = etree.tostring(entry, encoding="UTF-8", xml_declaration=False, with_tail=False)
    return EntryRow(
        entry_id, event_type, title, published, updated, content_xml, order, lines, status
    )


def _order_row(event: etree._Element) -> tuple[list[Any], list[LineRow]]:
    """An order-created event's Order values but lines (in field order), and its lines."""
    values: list[Any] = [None] * len(_ORDER_SLOT)
    lines: list[LineRow] = []
    for child in event[:]:
        tag = child.tag
        group = _GROUP_SLOT.get(tag)
        if group is not None:
            for leaf in child[:]:
                slot = group.get(leaf.tag)
                if slot is not None:
                    text = leaf.text
                    values[slot] = _empty_or_nil(leaf) if text is None else text
            continue
        slot = _FIELD_SLOT.get(tag)
        if slot is not None:
            text = child.text
            values[slot] = _empty_or_nil(child) if text is None else text
        elif tag in _ITEMS_TAGS:
            lines = _line_rows(child)

    order_id = values[_ORDER_ID_SLOT]
    if not order_id or not order_id.strip():
        raise _Unreadable("order-created has no order-id")
    values[_ORDER_ID_SLOT] = order_id.strip()
    for slot in _ID_SLOTS:
        value = values[slot]
        if value:
            values[slot] = value.strip()
    ship_to_store = values[_SHIP_TO_STORE_SLOT]
    if ship_to_store is not None:
        values[_SHIP_TO_STORE_SLOT] = _boolean(ship_to_store, "ship-to-store")
    return values, lines


def _line_rows(items: etree._Element) -> list[LineRow]:
    lines: list[LineRow] = []
    for item in items[:]:
        if item.tag not in _ORDER_ITEM_TAGS:
            continue
        # sku, catalog-id, description, quantity, selling-price, as in _LINE_SLOT
        fields: list[str | None] = [None, None, None, None, None]
        for leaf in item[:]:
            slot = _LINE_SLOT.get(leaf.tag)
            if slot is not None:
                text = leaf.text
                fields[slot] = _empty_or_nil(leaf) if text is None else text
        sku, catalog_id, description, quantity, price = fields
        number = len(lines) + 1
        lines.append(
            (
                number,
                sku,
                catalog_id.strip() if catalog_id else catalog_id,
                description,
                None if quantity is None else _integer(quantity, "order-item", number),
                None if price is None else _decimal(price, "order-item", number),
            )
        )
    return lines


def _status_row(event: etree._Element) -> StatusRow:
    values: dict[str, str | None] = {}
    items: list[ItemStatusRow] = []
    for child in event[:]:
        tag = child.tag
        name = _STATUS_FIELD.get(tag)
        if name is not None:
            text = child.text
            values[name] = _empty_or_nil(child) if text is None else text.strip()
        elif tag in _ITEMS_TAGS:
            for info in child[:]:
                if info.tag in _ITEM_INFORMATION_TAGS:
                    items.append(_item_status_row(info, len(items) + 1))

    order_id = values.get("order_id")
    if not order_id:
        raise _Unreadable("order-status-updated has no order-id")
    return StatusRow(order_id, values.get("supplier_id"), values.get("company_id"), items)


def _item_status_row(info: etree._Element, position: int) -> ItemStatusRow:
    fields: dict[str, str | None] = {}
    for leaf in info[:]:
        name = _ITEM_STATUS_FIELD.get(leaf.tag)
        if name is not None:
            text = leaf.text
            fields[name] = _empty_or_nil(leaf) if text is None else text
    quantity = fields.get("quantity")
    catalog_id = fields.get("catalog_id")
    # In ItemStatusInfo's field order.
    return (
        fields.get("sku"),
        catalog_id.strip() if catalog_id else catalog_id,
        fields.get("status"),
        None if quantity is None else _integer(quantity, "item-information", position),
        fields.get("tracking_info"),
        fields.get("shipping_provider"),
        fields.get("info"),
        fields.get("message"),
    )


def _empty_or_nil(element: etree._Element) -> str | None:
    """The value of an element without text: None when it is nil in either XSI spelling."""
    first, second = _NIL_KEYS
    value = element.get(first)
    if value is not None and (value in _NIL_TRUE or value.strip() in _NIL_TRUE):
        return None
    other = element.get(second)
    if other is None:
        return ""
    if value is None:
        _NIL_KEYS.reverse()
    return None if other.strip() in _NIL_TRUE else ""


def _integer(text: str, element: str, position: int) -> int:
    if text.isdigit() and text.isascii():
        return int(text)
    stripped = text.strip()
    # int() alone would also take "1_000" and digits of other scripts.
    if _INTEGER.fullmatch(stripped) is None:
        raise _Unreadable(f"{element} {position}: quantity {text!r} is not an integer")
    return int(stripped)


def _decimal(text: str, element: str, position: int) -> str:
    """Check a price and return its text without surrounding whitespace."""
    if not (text.isascii() and text.replace(".", "", 1).isdigit()):
        text = text.strip()
        # Decimal() alone would also take "NaN", "Infinity", exponents and underscores.
        if _DECIMAL.fullmatch(text) is None:
            raise _Unreadable(
                f"{element} {position}: selling-price {text!r} is not a decimal number"
            )
    if (
        len(text) > _PRICE_INTEGER_DIGITS
        and len(text.partition(".")[0].lstrip("+-").lstrip("0")) > _PRICE_INTEGER_DIGITS
    ):
        raise _Unreadable(
            f"{element} {position}: selling-price {text!r} is out of range "
            f"(more than {_PRICE_INTEGER_DIGITS} digits before the point)"
        )
    return text


def _boolean(text: str, what: str) -> bool:
    folded = text.strip().lower()
    if folded in ("true", "1"):
        return True
    if folded in ("false", "0"):
        return False
    raise _Unreadable(f"{what} {text!r} is not true or false")


def _timestamp(text: str, what: str) -> datetime:
    """Read an RFC 3339 timestamp as an aware UTC datetime; one without offset is taken as UTC.

    Fractions longer than microseconds (.NET writes seven digits) are cut to microseconds.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Unreadable(f"{what} {text!r} is not a timestamp") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value.tzinfo is UTC:  # a "Z" or "+00:00" suffix
        return value
    return value.astimezone(UTC)
