"""Everything the simulated service knows: suppliers, their feeds, orders and updates received.

The feed of each supplier is a list of pages (stable GUID buckets), oldest first. The newest
page holds 1 to ``page_size`` events and is served at ``/Notifications``; when it is full the
next event opens a new page and the full one becomes an archive, whose bytes never change once
rendered. Every entry is rendered to text once, when it is appended, so serving a page is a
join, and serving an archive a dictionary lookup.

One re-entrant lock guards all of it: the HTTP server's event loop and the test or demo thread
both call in.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from dropship_pipeline.dropship.models import OrderStatus
from dropship_pipeline.simulator import render
from dropship_pipeline.simulator.config import Faults, SimulatorConfig
from dropship_pipeline.simulator.generator import OrderGenerator, SimLine, SimOrder
from dropship_pipeline.simulator.updates import (
    InvalidBody,
    ItemsUpdate,
    OrderUpdate,
    StatusFields,
    dropped_numbers,
    lifecycle_problem,
    read_items_update,
    read_order_update,
    tracking_numbers,
)

EventKind = Literal["order-created", "order-status-updated"]
UpdateKind = Literal["order", "item"]
Verdict = Literal["accepted", "flagged", "rejected", "invalid", "not-found"]

NOT_FOUND = {"Message": "Not found"}
INVALID_REQUEST = "The request is invalid"


@dataclass(slots=True)
class FeedEvent:
    """One entry of a feed, already rendered as its ``<entry>`` element."""

    entry_id: str
    kind: EventKind
    order_id: str
    published: str
    xml: str


@dataclass(slots=True)
class FeedPage:
    page_id: str
    events: list[FeedEvent] = field(default_factory=list)
    archived: bytes | None = None


@dataclass(slots=True)
class ItemState:
    line: SimLine
    status: OrderStatus = OrderStatus.PendingSupplier
    tracking_info: str | None = None
    tracking_numbers: list[str] = field(default_factory=list)
    shipping_provider: str | None = None
    shipped_quantity: int = 0


@dataclass(slots=True)
class OrderState:
    order: SimOrder
    items: list[ItemState]
    status: OrderStatus = OrderStatus.PendingSupplier
    tracking_info: str | None = None
    tracking_numbers: list[str] = field(default_factory=list)
    created_entry_ids: list[str] = field(default_factory=list)
    update_count: int = 0

    def lines_of(self, sku: str) -> list[ItemState]:
        """The order's lines with this SKU: one, or several when the order repeats a SKU.

        An ItemStatusUpdate names a SKU, so the lines that share one move together: they share
        a status and tracking numbers, and their quantities count as one item's.
        """
        return [item for item in self.items if item.line.sku == sku]


@dataclass(slots=True)
class _ItemView:
    """One SKU's standing while the strict checks walk through an update."""

    status: OrderStatus
    ordered: int
    shipped: int
    tracking: list[str]

    @classmethod
    def of(cls, lines: list[ItemState]) -> _ItemView:
        return cls(
            status=lines[0].status,
            ordered=sum(item.line.quantity for item in lines),
            shipped=sum(item.shipped_quantity for item in lines),
            tracking=list(lines[0].tracking_numbers),
        )


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    """A status PUT as the service received it, with what it answered and why."""

    sequence: int
    received_at: str
    supplier_id: int
    order_id: str
    kind: UpdateKind
    body: object
    http_status: int
    verdict: Verdict
    problems: tuple[str, ...] = ()
    entry_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "received_at": self.received_at,
            "supplier_id": self.supplier_id,
            "order_id": self.order_id,
            "kind": self.kind,
            "body": self.body,
            "http_status": self.http_status,
            "verdict": self.verdict,
            "problems": list(self.problems),
            "entry_id": self.entry_id,
        }


@dataclass(slots=True)
class SupplierFeed:
    supplier_id: int
    pages: list[FeedPage]
    page_index: dict[str, int] = field(default_factory=dict)
    orders: dict[str, OrderState] = field(default_factory=dict)
    event_count: int = 0
    current_cache: tuple[tuple[object, ...], bytes] | None = None


def _merge(into: list[str], numbers: list[str]) -> None:
    for number in numbers:
        if number not in into:
            into.append(number)


class SimulatorState:
    """The simulated service's data. Every public method is thread-safe."""

    def __init__(self, config: SimulatorConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._clock = clock
        self._faults = config.faults
        # Events get their own generator, apart from the orders', so that turning a delivery
        # fault on does not change which orders are generated.
        self._rng = random.Random(config.seed * 7919 + 17)
        self._generator = OrderGenerator(config.seed, repeat_sku_rate=config.repeat_sku_rate)
        self._renderer = render.OrderCreatedRenderer()
        self._stamp_cache: tuple[int, str] = (-1, "")
        self._last_stamp = ""
        self._started = self._stamp()
        self._base_url = config.public_url or f"http://{config.host}/v1"
        self._updates: list[UpdateRecord] = []
        self.stats: Counter[str] = Counter()
        self._suppliers = {sid: self._new_supplier(sid) for sid in config.supplier_ids}

    # ---- settings ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url

    def set_base_url(self, url: str) -> None:
        """Where feed links point. Pages rendered before this call keep their links."""
        with self.lock:
            self._base_url = self.config.public_url or url.rstrip("/")
            for feed in self._suppliers.values():
                feed.current_cache = None

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, changes: Mapping[str, Any] | Faults) -> Faults:
        """Replace the fault knobs (a whole ``Faults``) or change some (a mapping of names)."""
        with self.lock:
            if isinstance(changes, Faults):
                self._faults = changes
            else:
                self._faults = self._faults.changed(changes)
            for feed in self._suppliers.values():
                feed.current_cache = None
            return self._faults

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] += n

    @property
    def supplier_ids(self) -> tuple[int, ...]:
        return tuple(self._suppliers)

    def has_supplier(self, supplier_id: int) -> bool:
        return supplier_id in self._suppliers

    # ---- orders and events -----------------------------------------------------------------

    def add_orders(self, count: int, supplier_id: int | None = None) -> list[SimOrder]:
        """Generate ``count`` new orders and put their ``order-created`` entries in the feed."""
        with self.lock:
            sid = self._supplier_id(supplier_id)
            orders = [self._generator.order(sid) for _ in range(count)]
            for order in orders:
                self._add_order(order)
            return orders

    def add_order(self, order: SimOrder) -> SimOrder:
        """Put a given order in its supplier's feed (its ``supplier_id`` must be served)."""
        with self.lock:
            self._supplier_id(order.supplier_id)
            self._add_order(order)
            return order

    def resend_order(self, order_id: str) -> str:
        """Deliver an order's ``order-created`` entry again under a new entry id; return the id."""
        with self.lock:
            for feed in self._suppliers.values():
                state = feed.orders.get(order_id.lower())
                if state is not None:
                    return self._created_event(feed, state)
            raise KeyError(f"No order {order_id} in the simulator.")

    def _supplier_id(self, supplier_id: int | None) -> int:
        sid = self.config.supplier_id if supplier_id is None else supplier_id
        if sid not in self._suppliers:
            raise KeyError(f"Supplier {sid} is not served by this simulator.")
        return sid

    def _add_order(self, order: SimOrder) -> None:
        feed = self._suppliers[order.supplier_id]
        if order.order_id.lower() in feed.orders:
            raise ValueError(f"Order {order.order_id} is already in the feed.")
        state = OrderState(order=order, items=[ItemState(line=line) for line in order.lines])
        feed.orders[order.order_id.lower()] = state
        self._created_event(feed, state)
        if self._faults.duplicate_order_rate and self._rng.random() < (
            self._faults.duplicate_order_rate
        ):
            self._created_event(feed, state)
            self.stats["duplicate_orders"] += 1

    def _created_event(self, feed: SupplierFeed, state: OrderState) -> str:
        content = self._renderer.render(state.order, self._content_style())
        event = self._append(feed, "order-created", state.order.order_id, content)
        state.created_entry_ids.append(event.entry_id)
        return event.entry_id

    def _content_style(self) -> render.ContentStyle:
        f = self._faults
        return render.ContentStyle(
            https_xsi_namespace=f.https_xsi_namespace,
            self_closing_empty=f.self_closing_empty,
            unknown_elements=f.unknown_elements,
        )

    def _guid(self) -> str:
        bits = self._rng.getrandbits
        return (
            f"{bits(32):08x}-{bits(16):04x}-4{bits(12):03x}-{bits(14) | 0x8000:04x}-{bits(48):012x}"
        )

    def _entry_id(self) -> str:
        rate = self._faults.non_guid_entry_id_rate
        if rate and self._rng.random() < rate:
            # Shaped like the documentation's invented ids: GUID-ish groups, letters past 'f'.
            alphabet = "0123456789abcdefghjkmnpqrstuvwxyz"
            groups = (self._rng.choices(alphabet, k=k) for k in (10, 7, 5, 9))
            return "urn:uuid:" + "-".join("".join(g) for g in groups)
        return f"urn:uuid:{self._guid()}"

    def _stamp(self) -> str:
        """The current time as the feed writes it, never earlier than the previous stamp."""
        second = int(self._clock())
        if second != self._stamp_cache[0]:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._stamp_cache = (second, text)
        self._last_stamp = max(self._last_stamp, self._stamp_cache[1])
        return self._last_stamp

    def _new_page(self, feed: SupplierFeed) -> FeedPage:
        page = FeedPage(page_id=self._guid())
        feed.page_index[page.page_id] = len(feed.pages)
        feed.pages.append(page)
        return page

    def _new_supplier(self, supplier_id: int) -> SupplierFeed:
        feed = SupplierFeed(supplier_id=supplier_id, pages=[])
        self._new_page(feed)
        return feed

    def _append(
        self, feed: SupplierFeed, kind: EventKind, order_id: str, content: str
    ) -> FeedEvent:
        current = feed.pages[-1]
        if len(current.events) >= self.config.page_size:
            closed, current = current, self._new_page(feed)
            rate = self._faults.repeat_entry_rate
            if rate and self.config.page_size > 1 and self._rng.random() < rate:
                current.events.append(closed.events[-1])
                self.stats["repeated_entries"] += 1
        entry_id = self._entry_id()
        published = self._stamp()
        title = render.TITLE_CREATED if kind == "order-created" else render.TITLE_STATUS_UPDATED
        xml = render.entry(entry_id=entry_id, title=title, published=published, content=content)
        event = FeedEvent(entry_id, kind, order_id, published, xml)
        current.events.append(event)
        feed.event_count += 1
        feed.current_cache = None
        return event

    # ---- feed pages ----------------------------------------------------------------------

    def page_ids(self, supplier_id: int | None = None) -> list[str]:
        """Page GUIDs of a supplier's feed, oldest first; the last one is the current page."""
        with self.lock:
            return [page.page_id for page in self._suppliers[self._supplier_id(supplier_id)].pages]

    def event_count(self, supplier_id: int | None = None) -> int:
        with self.lock:
            return self._suppliers[self._supplier_id(supplier_id)].event_count

    def current_page(self, supplier_id: int) -> bytes:
        """The bytes of ``/Notifications`` for a served supplier."""
        with self.lock:
            feed = self._suppliers[supplier_id]
            key = (len(feed.pages), len(feed.pages[-1].events), self._base_url, self._faults)
            if feed.current_cache is None or feed.current_cache[0] != key:
                feed.current_cache = (key, self._render(feed, len(feed.pages) - 1))
            return feed.current_cache[1]

    def page(self, supplier_id: int, page_id: str) -> bytes | None:
        """The bytes of ``/Notifications/Pages(page_id)``; None for a page that does not exist."""
        with self.lock:
            feed = self._suppliers[supplier_id]
            index = feed.page_index.get(page_id.lower())
            if index is None:
                return None
            if index == len(feed.pages) - 1:
                return self.current_page(supplier_id)
            page = feed.pages[index]
            if page.archived is None:
                page.archived = self._render(feed, index)
            return page.archived

    def warm_archives(self) -> int:
        """Render every archive page not yet rendered, so that first reads are as quick as
        later ones; return how many were rendered. Call it once the base URL is final."""
        with self.lock:
            rendered = 0
            for feed in self._suppliers.values():
                for index, page in enumerate(feed.pages[:-1]):
                    if page.archived is None:
                        page.archived = self._render(feed, index)
                        rendered += 1
            return rendered

    def _render(self, feed: SupplierFeed, index: int) -> bytes:
        base = f"{self._base_url}/Suppliers({feed.supplier_id})/Notifications"
        page = feed.pages[index]
        links = [("current", base), ("self", f"{base}/Pages({page.page_id})")]
        if index < len(feed.pages) - 1:
            links.append(("next-archive", f"{base}/Pages({feed.pages[index + 1].page_id})"))
        if index > 0:
            links.append(("prev-archive", f"{base}/Pages({feed.pages[index - 1].page_id})"))
        events = page.events
        return render.page(
            page_id=page.page_id,
            updated=events[-1].published if events else self._started,
            links=links,
            entries=[event.xml for event in reversed(events)],
            https_atom_namespace=self._faults.https_atom_namespace,
        )

    # ---- status updates ------------------------------------------------------------------

    def receive_update(
        self, kind: UpdateKind, supplier_id: int, order_id: str, raw_body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Handle a status PUT: validate, apply, append the feed entry, record it all.

        Returns the HTTP status and the JSON answer: 202 and the echo, 400 with the problems,
        or 404 for an order this supplier does not have.
        """
        with self.lock:
            try:
                body: object = json.loads(raw_body)
            except (ValueError, UnicodeDecodeError):
                text = raw_body.decode("utf-8", "replace")
                not_json = {"": ["the body is not JSON"]}
                return self._refuse(kind, supplier_id, order_id, text, "invalid", not_json)

            feed = self._suppliers[supplier_id]
            state = feed.orders.get(order_id.lower())
            if state is None:
                self._record(kind, supplier_id, order_id, body, 404, "not-found")
                return 404, dict(NOT_FOUND)

            try:
                if kind == "order":
                    update: OrderUpdate | ItemsUpdate = read_order_update(body, order_id)
                else:
                    skus = [item.line.sku for item in state.items]
                    update = read_items_update(body, order_id, skus)
            except InvalidBody as error:
                return self._refuse(kind, supplier_id, order_id, body, "invalid", error.problems)

            problems: list[str] = []
            if self.config.strict or self.config.strict_reject:
                problems = self._lifecycle_problems(state, update)
            if problems and self.config.strict_reject:
                return self._refuse(
                    kind, supplier_id, order_id, body, "rejected", {"lifecycle": problems}
                )

            if isinstance(update, OrderUpdate):
                echo, items = self._apply_order(state, update)
            else:
                echo, items = self._apply_items(state, update)
            content = render.order_status_updated_content(
                company_id=state.order.company_id,
                order_id=state.order.order_id,
                supplier_id=supplier_id,
                items=items,
                style=self._content_style(),
            )
            event = self._append(feed, "order-status-updated", state.order.order_id, content)
            state.update_count += 1
            verdict: Verdict = "flagged" if problems else "accepted"
            self._record(
                kind, supplier_id, order_id, body, 202, verdict, tuple(problems), event.entry_id
            )
            return 202, echo

    def _refuse(
        self,
        kind: UpdateKind,
        supplier_id: int,
        order_id: str,
        body: object,
        verdict: Verdict,
        problems: Mapping[str, list[str]],
    ) -> tuple[int, dict[str, Any]]:
        flat = tuple(
            f"{key}: {reason}" if key else reason for key, v in problems.items() for reason in v
        )
        self._record(kind, supplier_id, order_id, body, 400, verdict, flat)
        return 400, {"Message": INVALID_REQUEST, "ModelState": dict(problems)}

    def _record(
        self,
        kind: UpdateKind,
        supplier_id: int,
        order_id: str,
        body: object,
        http_status: int,
        verdict: Verdict,
        problems: tuple[str, ...] = (),
        entry_id: str | None = None,
    ) -> None:
        self._updates.append(
            UpdateRecord(
                sequence=len(self._updates) + 1,
                received_at=self._stamp(),
                supplier_id=supplier_id,
                order_id=order_id,
                kind=kind,
                body=body,
                http_status=http_status,
                verdict=verdict,
                problems=problems,
                entry_id=entry_id,
            )
        )

    def _lifecycle_problems(
        self, state: OrderState, update: OrderUpdate | ItemsUpdate
    ) -> list[str]:
        """What strict mode holds against an update; empty when it follows the lifecycle."""
        if isinstance(update, OrderUpdate):
            return self._order_problems(state, update)
        return self._items_problems(state, update)

    @staticmethod
    def _order_problems(state: OrderState, update: OrderUpdate) -> list[str]:
        f = update.fields
        new = f.status
        earlier = list(state.tracking_numbers)
        for item in state.items:
            _merge(earlier, item.tracking_numbers)
        sent = tracking_numbers(f.tracking_info)
        adds = any(number not in earlier for number in sent)

        problems: list[str] = []
        problem = lifecycle_problem("order", state.status, new, adds_tracking=adds)
        if problem:
            problems.append(problem)
        for item in state.items:
            # Lines already where the order is are covered by the order's own check; lines
            # already at the new status are merely restated by the cascade.
            if item.status in (state.status, new):
                continue
            problem = lifecycle_problem(
                f"item {item.line.sku}", item.status, new, adds_tracking=adds
            )
            if problem and problem not in problems:
                problems.append(problem)
        if new == OrderStatus.PartiallyShipped:
            problems.append(
                "order PartiallyShipped cannot say which units shipped: send an "
                "ItemStatusUpdate with each item's Quantity"
            )
        lost = dropped_numbers(earlier, f.tracking_info)
        if lost:
            problems.append(f"order TrackingInfo drops {', '.join(lost)} sent before")
        return problems

    @staticmethod
    def _items_problems(state: OrderState, update: ItemsUpdate) -> list[str]:
        # Each item is checked against the standing the earlier items of the same body left.
        views: dict[str, _ItemView] = {}
        problems: list[str] = []
        for change in update.items:
            sku, f = change.sku, change.fields
            if sku not in views:
                views[sku] = _ItemView.of(state.lines_of(sku))
            view = views[sku]
            subject = f"item {sku}"
            sent = tracking_numbers(f.tracking_info)
            adds = any(number not in view.tracking for number in sent)

            problem = lifecycle_problem(subject, view.status, f.status, adds_tracking=adds)
            if problem:
                problems.append(problem)
            lost = dropped_numbers(view.tracking, f.tracking_info)
            if lost:
                problems.append(f"{subject} TrackingInfo drops {', '.join(lost)} sent before")

            shipped = view.shipped
            if f.status == OrderStatus.PartiallyShipped:
                if not change.quantity:
                    problems.append(
                        f"{subject} PartiallyShipped without a Quantity: say how many units "
                        "this shipment carries"
                    )
                else:
                    shipped += change.quantity
                    if shipped >= view.ordered:
                        problems.append(
                            f"{subject} PartiallyShipped brings {shipped} of {view.ordered} "
                            "units shipped: the full quantity is sent as Shipped"
                        )
            elif f.status == OrderStatus.Shipped:
                # Without a Quantity, Shipped means the rest of the line.
                units = view.ordered - shipped if change.quantity is None else change.quantity
                shipped += units
                if shipped < view.ordered:
                    problems.append(
                        f"{subject} sent as Shipped with {shipped} of {view.ordered} units "
                        "shipped: send PartiallyShipped until every unit has shipped"
                    )
            if shipped > view.ordered:
                problems.append(
                    f"{subject} ships {shipped - view.shipped} more units than the "
                    f"{view.ordered} ordered ({view.shipped} shipped before)"
                )

            view.status = f.status
            view.shipped = shipped
            _merge(view.tracking, sent)
        return problems

    def _apply_order(
        self, state: OrderState, update: OrderUpdate
    ) -> tuple[dict[str, Any], list[render.ItemLine]]:
        f = update.fields
        numbers = tracking_numbers(f.tracking_info)
        state.status = f.status
        state.tracking_info = f.tracking_info
        _merge(state.tracking_numbers, numbers)
        lines: list[render.ItemLine] = []
        for item in state.items:
            # Setting an order's status sets every item's (Managing Orders guide).
            self._set_item(item, f, numbers)
            if f.status == OrderStatus.Shipped:
                item.shipped_quantity = item.line.quantity
            lines.append(_item_line(item.line, f, item.line.quantity))
        echo = {
            "Id": update.order_id,
            "Status": f.status.name,
            "TrackingInfo": f.tracking_info,
            "ShippingProvider": f.shipping_provider,
            "Info": f.info,
            "Message": f.message,
        }
        return echo, lines

    def _apply_items(
        self, state: OrderState, update: ItemsUpdate
    ) -> tuple[dict[str, Any], list[render.ItemLine]]:
        lines: list[render.ItemLine] = []
        echoed: list[dict[str, Any]] = []
        for change in update.items:
            group = state.lines_of(change.sku)
            f = change.fields
            numbers = tracking_numbers(f.tracking_info)
            for item in group:
                self._set_item(item, f, numbers)
            ordered = sum(item.line.quantity for item in group)
            quantity = ordered if change.quantity is None else change.quantity
            if f.status == OrderStatus.Shipped and change.quantity is None:
                for item in group:
                    item.shipped_quantity = item.line.quantity
            elif f.status in (OrderStatus.Shipped, OrderStatus.PartiallyShipped):
                _ship_units(group, change.quantity or 0)
            lines.append(_item_line(group[0].line, f, quantity))
            echoed.append(
                {
                    "Sku": change.sku,
                    "CatalogId": change.catalog_id or group[0].line.catalog_id,
                    "Quantity": quantity,
                    "Status": f.status.name,
                    "TrackingInfo": f.tracking_info,
                    "ShippingProvider": f.shipping_provider,
                    "Info": f.info,
                    "Message": f.message,
                }
            )
        state.status = _order_status_from_items(state)
        return {"Id": update.order_id, "ItemInformation": echoed}, lines

    @staticmethod
    def _set_item(item: ItemState, f: StatusFields, numbers: list[str]) -> None:
        item.status = f.status
        item.tracking_info = f.tracking_info
        _merge(item.tracking_numbers, numbers)
        if f.shipping_provider is not None:
            item.shipping_provider = f.shipping_provider

    # ---- inspection ----------------------------------------------------------------------

    def updates(self, order_id: str | None = None) -> list[UpdateRecord]:
        """Every status PUT received so far (optionally for one order), oldest first."""
        with self.lock:
            if order_id is None:
                return list(self._updates)
            return [u for u in self._updates if u.order_id.lower() == order_id.lower()]

    def order_ids(self, supplier_id: int | None = None) -> list[str]:
        with self.lock:
            feed = self._suppliers[self._supplier_id(supplier_id)]
            return [state.order.order_id for state in feed.orders.values()]

    def order(self, order_id: str) -> dict[str, Any] | None:
        """One order's status, items and tracking as plain data; None if unknown."""
        with self.lock:
            for feed in self._suppliers.values():
                state = feed.orders.get(order_id.lower())
                if state is not None:
                    return _order_view(state)
            return None

    def orders(self, supplier_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            feeds = (
                self._suppliers.values()
                if supplier_id is None
                else [self._suppliers[self._supplier_id(supplier_id)]]
            )
            return [_order_view(state) for feed in feeds for state in feed.orders.values()]

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "suppliers": {
                    str(feed.supplier_id): {
                        "orders": len(feed.orders),
                        "events": feed.event_count,
                        "pages": len(feed.pages),
                        "current_page": feed.pages[-1].page_id,
                    }
                    for feed in self._suppliers.values()
                },
                "updates": len(self._updates),
                "stats": dict(self.stats),
                "faults": self._faults.as_dict(),
                "strict": self.config.strict,
                "strict_reject": self.config.strict_reject,
            }


def _item_line(line: SimLine, f: StatusFields, quantity: int) -> render.ItemLine:
    return render.ItemLine(
        catalog_id=line.catalog_id,
        info=f.info,
        message=f.message,
        quantity=quantity,
        reference_name=f.reference_name,
        reference_value=f.reference_value,
        shipping_provider=f.shipping_provider,
        sku=line.sku,
        status=f.status.name,
        tracking_info=f.tracking_info,
    )


def _ship_units(group: list[ItemState], units: int) -> None:
    """Count ``units`` against the lines of one SKU in order; any excess goes on the last."""
    for item in group:
        room = max(0, item.line.quantity - item.shipped_quantity)
        taken = min(room, units)
        item.shipped_quantity += taken
        units -= taken
    group[-1].shipped_quantity += units


def _order_status_from_items(state: OrderState) -> OrderStatus:
    """An order's status after item updates: the items' common status, else a fair summary.

    Shipped lines beside cancelled ones make a shipped order; some shipped among others
    waiting make a partly shipped one; otherwise the order keeps the status it had.
    """
    statuses = {item.status for item in state.items}
    if len(statuses) == 1:
        return next(iter(statuses))
    if statuses == {OrderStatus.Shipped, OrderStatus.Cancelled}:
        return OrderStatus.Shipped
    if statuses & {OrderStatus.Shipped, OrderStatus.PartiallyShipped}:
        return OrderStatus.PartiallyShipped
    return state.status


def _order_view(state: OrderState) -> dict[str, Any]:
    order = state.order
    return {
        "order_id": order.order_id,
        "supplier_id": order.supplier_id,
        "printable_id": order.printable_id,
        "ship_to_store": order.ship_to_store,
        "status": state.status.name,
        "status_code": int(state.status),
        "tracking_info": state.tracking_info,
        "tracking_numbers": list(state.tracking_numbers),
        "created_entry_ids": list(state.created_entry_ids),
        "update_count": state.update_count,
        "items": [
            {
                "sku": item.line.sku,
                "catalog_id": item.line.catalog_id,
                "quantity": item.line.quantity,
                "selling_price": str(item.line.selling_price),
                "status": item.status.name,
                "status_code": int(item.status),
                "shipped_quantity": item.shipped_quantity,
                "tracking_info": item.tracking_info,
                "tracking_numbers": list(item.tracking_numbers),
                "shipping_provider": item.shipping_provider,
            }
            for item in state.items
        ],
    }
