"""The warehouse robot: a stand-in warehouse that answers order files with confirmation files.

It works the ERP drop through the same :class:`~dropship_pipeline.erp.drop.Drop` interface the
pipeline uses, so it runs against a local folder and an SFTP server alike::

    with open_drop(settings) as drop:
        robot = WarehouseRobot(drop, mix=RobotMix(bad_row_rate=0.05), seed=7)
        report = robot.run_once()

Each :meth:`WarehouseRobot.run_once` reads the order files it has not handled yet (CONTRACT.md
section 4), decides a fate for every new order, and writes the confirmation rows that are due
now (section 5): full shipments, partial shipments spread over several runs, back-orders that
ship in a later run, cancellations, and, when the mix asks for them, items no longer available,
errors and statuses of the warehouse's own (Other, with a message); at
:attr:`RobotMix.bad_row_rate` it adds rows the pipeline must reject. The CSV and the XLSX file
of one batch carry the same orders; each order is handled once.

Everything is decided from the seed: an order's fate and tracking numbers from the seed and its
order id, the bad rows and file formats of a run from the seed and the run number. With a fixed
``clock`` the same seed and the same order files give the same confirmation files, byte for byte.

The robot keeps what it has promised (orders still owed shipments, files already read) in a
small JSON state file, and knows what the pipeline should end up with: :attr:`RobotReport.expected`
is the ground truth the tests compare the pipeline's tables with.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import random
import re
import string
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args

from openpyxl.utils.exceptions import InvalidFileException

from dropship_pipeline.dropship.models import OrderStatus
from dropship_pipeline.erp.drop import Drop
from dropship_pipeline.erp.layout import FORMULA_TRIGGERS

__all__ = [
    "BAD_KINDS",
    "CARRIERS",
    "CONFIRMATION_COLUMNS",
    "MALFORMED_TRACKING_NUMBERS",
    "MISSPELLED_STATUSES",
    "TRACKING_PATTERNS",
    "BadKind",
    "BadRow",
    "ExpectedItem",
    "ExpectedOrder",
    "RobotMix",
    "RobotReport",
    "RowCounts",
    "WarehouseRobot",
    "tracking_number",
]

log = logging.getLogger(__name__)

CONFIRMATION_COLUMNS: tuple[str, ...] = (
    "order_id",
    "sku",
    "status",
    "quantity",
    "tracking_number",
    "shipping_provider",
    "info",
    "message",
)
"""The columns of a confirmation file as the robot writes them (CONTRACT.md section 5)."""

# Spellings a warehouse's export tool might use; all of them match the contract's names once
# case, spaces, hyphens and underscores are ignored, or are the contract's aliases.
_HEADER_SPELLINGS: dict[str, tuple[str, ...]] = {
    "order_id": ("order_id", "Order ID", "OrderId", "order-id", "ORDER_ID"),
    "sku": ("sku", "SKU", "Sku"),
    "status": ("status", "Status", "STATUS"),
    "quantity": ("quantity", "Quantity", "QUANTITY"),
    "tracking_number": (
        "tracking_number",
        "Tracking-Number",
        "Tracking Number",
        "tracking_info",
        "TrackingInfo",
    ),
    "shipping_provider": ("shipping_provider", "Shipping Provider", "carrier", "Carrier"),
    "info": ("info", "Info"),
    "message": ("message", "Message", "MESSAGE"),
}

CARRIERS: tuple[str, ...] = ("UPS", "FedEx", "Canada Post", "Purolator")

TRACKING_PATTERNS: dict[str, re.Pattern[str]] = {
    "UPS": re.compile(r"1Z[0-9A-Z]{16}"),
    "FedEx": re.compile(r"[0-9]{12}"),
    "Canada Post": re.compile(r"[0-9]{16}"),
    "Purolator": re.compile(r"[0-9]{12}"),
}
"""The shape of the tracking numbers :func:`tracking_number` makes, per known carrier."""

_OTHER_CARRIER_PATTERN = re.compile(r"[0-9A-Z]{14}")

_TRACKING_SITES: dict[str, str] = {
    "UPS": "https://www.ups.com/track?tracknum=",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr=",
    "Canada Post": "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor=",
    "Purolator": "https://www.purolator.com/en/shipping/tracker?pin=",
}

MALFORMED_TRACKING_NUMBERS: tuple[str, ...] = ("1Z 99;DROP", "1Z-99 ;DROP", "TRK 12;34")
"""Tracking numbers no carrier issues: spaces and semicolons where only letters and digits go."""

MISSPELLED_STATUSES: tuple[str, ...] = (
    "Shiped",
    "Canceled",
    "Back Orderd",
    "PartialyShipped",
    "Shippped",
)
"""Status names a hurried warehouse clerk types; none is a valid name."""

BadKind = Literal[
    "unknown_order",
    "unknown_sku",
    "excess_quantity",
    "other_without_message",
    "malformed_tracking",
    "misspelled_status",
    "backwards_status",
]
BAD_KINDS: tuple[BadKind, ...] = get_args(BadKind)
"""Every kind of bad row the robot can write; each one the pipeline must reject alone.

``backwards_status`` is an Ordered or BackOrdered row for an order or line that has already
shipped or been cancelled: in an earlier confirmation file when there is one, else earlier in
the same file.
"""

_CANCEL_MESSAGES = (
    "Customer cancelled",
    "Discontinued by the manufacturer",
    "Out of stock, no restock date",
)
_BACKORDER_MESSAGES = ("Awaiting stock", "Expected in about two weeks", "")
_NOT_AVAILABLE_MESSAGES = (
    "Discontinued by the manufacturer",
    "No longer available from our supplier",
    "Recalled, no replacement",
)
_OTHER_MESSAGES = (
    "Held for address verification",
    "Waiting for the customer at the carrier's depot",
    "Handed to a local courier",
)
# Statuses that end an order or line: a row moving it back to Ordered is backwards.
_FINAL_STATUSES = (OrderStatus.Shipped.name, OrderStatus.Cancelled.name)
_BACKWARDS_STATUSES = (OrderStatus.Ordered, OrderStatus.BackOrdered)

_STATE_VERSION = 1
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_ORDER_FILE = re.compile(r"orders_.+\.(csv|xlsx)", re.IGNORECASE)
_CORE_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

Fate = Literal["full", "partial", "backorder", "cancel", "not_available", "error", "other"]
_FATES: tuple[Fate, ...] = get_args(Fate)


# ---- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class RobotMix:
    """How the robot treats orders, and how its files look. Rates are between 0 and 1.

    An order's fate is drawn from ``full``, ``partial``, ``backorder``, ``cancel``,
    ``not_available``, ``error`` and ``other`` as relative weights. An order that cannot be
    shipped in part (a single unit, or lines without SKU or quantity) is shipped in full
    instead; one that cannot lose a single line (only one SKU) is cancelled whole.

    - ``not_available``: a line (at ``line_cancel_rate``, the rest shipping) or the whole order
      is NotAvailable with a reason, and cancelled ``backorder_delay`` runs later.
    - ``error``: a line (at ``line_cancel_rate``, the rest shipping) or the whole order is set
      to Error, with a message naming the problem.
    - ``other``: the whole order gets Other with the warehouse's own label as its message.

    The last three are off by default: the pipeline acknowledges every order as Ordered first,
    and the documented lifecycle has no edge from Ordered to any of them (API reference,
    section 4.2), so a strict simulator flags them. Turn them on to see how the pipeline
    handles such confirmations.
    """

    full: float = 0.55
    partial: float = 0.2
    backorder: float = 0.1
    cancel: float = 0.15
    not_available: float = 0.0
    error: float = 0.0
    other: float = 0.0
    bad_row_rate: float = 0.0
    """Chance that a deliberately bad row follows each good row; off by default."""
    bad_kinds: tuple[BadKind, ...] = BAD_KINDS
    xlsx_rate: float = 0.2
    """Chance that a confirmation file is XLSX rather than CSV."""
    whole_order_rate: float = 0.5
    """Chance that a full shipment is one whole-order row rather than a row per SKU."""
    multi_tracking_rate: float = 0.1
    """Chance that a shipment leaves in two or three parcels, its rows listing every parcel's
    tracking number, comma-separated."""
    numeric_status_rate: float = 0.1
    """Chance that a file writes statuses as their numbers (``2``) rather than names."""
    line_cancel_rate: float = 0.4
    """Chance that a cancellation drops one line (and ships the rest) rather than the order."""
    header_variant_rate: float = 0.3
    """Chance that a file spells its headers differently (``Order ID``, ``Tracking-Number``)."""
    semicolon_rate: float = 0.15
    bom_rate: float = 0.2
    carriers: tuple[str, ...] = CARRIERS
    max_partial_shipments: int = 3
    backorder_delay: int = 1
    """Runs between a back-order and its shipment."""
    rows_per_file: int = 40
    """Rows per confirmation file before the next file is started; an order is never split."""

    def __post_init__(self) -> None:
        rates = {
            "full": self.full,
            "partial": self.partial,
            "backorder": self.backorder,
            "cancel": self.cancel,
            "not_available": self.not_available,
            "error": self.error,
            "other": self.other,
            "bad_row_rate": self.bad_row_rate,
            "xlsx_rate": self.xlsx_rate,
            "whole_order_rate": self.whole_order_rate,
            "multi_tracking_rate": self.multi_tracking_rate,
            "numeric_status_rate": self.numeric_status_rate,
            "line_cancel_rate": self.line_cancel_rate,
            "header_variant_rate": self.header_variant_rate,
            "semicolon_rate": self.semicolon_rate,
            "bom_rate": self.bom_rate,
        }
        for name, rate in rates.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"RobotMix.{name} must be between 0 and 1, got {rate!r}.")
        if sum(self.fate_weights) <= 0:
            raise ValueError("RobotMix needs a positive rate for at least one fate.")
        if not self.carriers or any(not carrier for carrier in self.carriers):
            raise ValueError("RobotMix.carriers must name at least one carrier.")
        unknown = set(self.bad_kinds) - set(BAD_KINDS)
        if unknown or (self.bad_row_rate > 0 and not self.bad_kinds):
            raise ValueError(f"RobotMix.bad_kinds must be a non-empty choice of {BAD_KINDS}.")
        if self.max_partial_shipments < 2:
            raise ValueError("RobotMix.max_partial_shipments must be at least 2.")
        if self.backorder_delay < 1 or self.rows_per_file < 1:
            raise ValueError("RobotMix.backorder_delay and rows_per_file must be at least 1.")

    @property
    def fate_weights(self) -> tuple[float, ...]:
        """The weights of the fates, in the order of ``Fate``."""
        return (
            self.full,
            self.partial,
            self.backorder,
            self.cancel,
            self.not_available,
            self.error,
            self.other,
        )


def tracking_number(carrier: str, rng: random.Random) -> str:
    """A tracking number in the carrier's usual shape (see :data:`TRACKING_PATTERNS`).

    UPS: ``1Z``, six letters or digits for the shipper, ten digits. FedEx and Purolator: twelve
    digits. Canada Post: sixteen digits. Any other carrier: fourteen letters or digits.
    """
    if carrier == "UPS":
        shipper = "".join(rng.choices(_UPPER_ALNUM, k=6))
        return "1Z" + shipper + "".join(rng.choices(string.digits, k=10))
    if carrier == "Canada Post":
        return "".join(rng.choices(string.digits, k=16))
    if carrier in ("FedEx", "Purolator"):
        return "".join(rng.choices(string.digits, k=12))
    return "".join(rng.choices(_UPPER_ALNUM, k=14))


def _is_valid_tracking(carrier: str, number: str) -> bool:
    pattern = TRACKING_PATTERNS.get(carrier, _OTHER_CARRIER_PATTERN)
    return pattern.fullmatch(number) is not None


# ---- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowCounts:
    """Rows written, by kind: the status of a good row, or ``bad``."""

    shipped: int = 0
    partial: int = 0
    backordered: int = 0
    cancelled: int = 0
    not_available: int = 0
    error: int = 0
    other: int = 0
    bad: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, column.name) for column in dataclasses.fields(self))


@dataclass(frozen=True)
class BadRow:
    """A deliberately bad row; ``row`` is the row number a spreadsheet shows (header is 1)."""

    file_name: str
    row: int
    kind: BadKind
    order_id: str
    sku: str


@dataclass(frozen=True)
class ExpectedItem:
    """Where one SKU of an order should stand once the pipeline applied the good rows."""

    sku: str
    ordered: int
    shipped: int
    status: OrderStatus
    tracking_numbers: tuple[str, ...]
    """Tracking numbers of the item rows for this SKU, first issued first; a row listing
    several counts each of them."""


@dataclass(frozen=True)
class ExpectedOrder:
    """Where an order should stand once the pipeline applied every good row written so far.

    ``status`` is the robot's reading of its items: their status when they all share one,
    Shipped when every item is shipped or cancelled, PartiallyShipped when some units shipped,
    BackOrdered when an item waits for stock, else Ordered; a whole-order row sets it directly.
    ``tracking_numbers`` holds every number issued for the order, item rows and whole-order rows
    alike.
    """

    order_id: str
    status: OrderStatus
    items: tuple[ExpectedItem, ...]
    tracking_numbers: tuple[str, ...]
    complete: bool
    """Whether the robot owes this order nothing more."""

    def item(self, sku: str) -> ExpectedItem:
        for item in self.items:
            if item.sku == sku:
                return item
        raise KeyError(f"Order {self.order_id} has no SKU {sku!r}.")


@dataclass(frozen=True)
class RobotReport:
    """What one :meth:`WarehouseRobot.run_once` did, and the ground truth after it."""

    run: int
    files_read: tuple[str, ...]
    files_unreadable: tuple[str, ...]
    files_written: tuple[str, ...]
    new_orders: int
    rows: RowCounts
    bad_rows: tuple[BadRow, ...]
    expected: Mapping[str, ExpectedOrder] = field(repr=False)
    """Every order the robot has seen, by order id."""
    pending: tuple[str, ...] = ()
    """Orders that still have shipments or back-orders to come, by order id."""


# ---- the robot -----------------------------------------------------------------------------

_Row = dict[str, Any]
"""A confirmation row: the keys of CONFIRMATION_COLUMNS; quantity is an int or None."""


class WarehouseRobot:
    """Reads order files from ``orders_dir`` and writes confirmation files to ``confirmations_dir``.

    ``state_path`` is a local JSON file that carries the robot's memory from one process to the
    next; None keeps it in memory, for one robot object's lifetime. A state file written with
    another seed is refused with ValueError. ``clock`` gives the time stamped into file names.
    """

    def __init__(
        self,
        drop: Drop,
        *,
        orders_dir: str = "orders",
        confirmations_dir: str = "confirmations",
        mix: RobotMix | None = None,
        seed: int = 0,
        state_path: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.drop = drop
        self.orders_dir = orders_dir
        self.confirmations_dir = confirmations_dir
        self.mix = mix if mix is not None else RobotMix()
        self.seed = seed
        self.state_path = state_path
        self._clock = clock or (lambda: datetime.now(UTC))
        self._state = self._load_state()

    # -- the run --------------------------------------------------------------------------

    def run_once(self) -> RobotReport:
        """Read new order files, write the confirmations due now, and report.

        Drop failures propagate as :class:`~dropship_pipeline.errors.DropError`; what was
        written before the failure is remembered, so the next run does not repeat it.
        """
        state = self._state
        run = state["runs"] + 1
        state["runs"] = run

        files_read, unreadable, new_orders = self._read_new_order_files(run)

        blocks = self._due_blocks(run)
        rng = random.Random(f"{self.seed}:run:{run}")
        # Before this run's rows are settled: what earlier files shipped or cancelled.
        settled = self._settled_targets()
        with_bad = [
            (order_id, self._add_bad_rows(order_id, rows, rng, settled))
            for order_id, rows in blocks
        ]

        when = self._clock()
        written: list[str] = []
        bad_rows: list[BadRow] = []
        counts = {knob.name: 0 for knob in dataclasses.fields(RowCounts)}
        if with_bad:
            self.drop.make_folder(self.confirmations_dir)
        for file_blocks in _pack(with_bad, self.mix.rows_per_file):
            name, bad = self._write_file(file_blocks, when, rng)
            written.append(name)
            bad_rows.extend(bad)
            for order_id, rows in file_blocks:
                self._settle_step(order_id, rows, counts)
            counts["bad"] += len(bad)
            self._save_state()
        self._save_state()

        return RobotReport(
            run=run,
            files_read=tuple(files_read),
            files_unreadable=tuple(unreadable),
            files_written=tuple(written),
            new_orders=new_orders,
            rows=RowCounts(**counts),
            bad_rows=tuple(bad_rows),
            expected=self.expected(),
            pending=tuple(
                order_id
                for order_id, order in state["orders"].items()
                if order["next"] < len(order["steps"])
            ),
        )

    def expected(self) -> dict[str, ExpectedOrder]:
        """The ground truth after every file written so far, by order id."""
        return {
            order_id: _expected_order(order_id, order)
            for order_id, order in self._state["orders"].items()
        }

    # -- reading order files --------------------------------------------------------------

    def _read_new_order_files(self, run: int) -> tuple[list[str], list[str], int]:
        state = self._state
        handled = set(state["files_handled"])
        read: list[str] = []
        unreadable: list[str] = []
        new_orders = 0
        if not self.drop.exists(self.orders_dir):
            return read, unreadable, new_orders

        for entry in self.drop.list(self.orders_dir):
            name = entry.name
            if name in handled or not _is_order_file_name(name):
                continue
            data = self.drop.read(f"{self.orders_dir}/{name}")
            state["files_handled"].append(name)
            try:
                orders = _parse_order_file(name, data)
            except (ValueError, KeyError, csv.Error, zipfile.BadZipFile, InvalidFileException):
                log.warning("Could not read order file %s; the robot skips it", name)
                unreadable.append(name)
                continue
            read.append(name)

            fresh = 0
            for order_id, lines in orders.items():
                if order_id in state["orders"]:
                    continue  # the batch's other file, or an order exported twice by mistake
                state["orders"][order_id] = self._plan(order_id, lines, run)
                fresh += 1
            new_orders += fresh
            line_count = sum(len(lines) for lines in orders.values())
            log.info(
                "Robot read order file %s: %d lines, %d orders, %d new",
                name,
                line_count,
                len(orders),
                fresh,
            )
        return read, unreadable, new_orders

    # -- deciding what happens to an order ------------------------------------------------

    def _plan(self, order_id: str, lines: list[tuple[str, int | None]], run: int) -> dict[str, Any]:
        """Decide the order's fate and every row it will get, and in which run."""
        planner = _OrderPlanner(
            order_id, lines, self.mix, random.Random(f"{self.seed}:order:{order_id}")
        )
        fate, steps = planner.plan()
        return {
            "fate": fate,
            "steps": [{"due": run + offset, "rows": rows} for offset, rows in steps],
            "next": 0,
            "truth": {
                "status": OrderStatus.Ordered.name,
                "tracking": [],
                "items": {
                    sku: {
                        "ordered": quantity,
                        "shipped": 0,
                        "status": OrderStatus.Ordered.name,
                        "tracking": [],
                    }
                    for sku, quantity in planner.ordered.items()
                },
            },
        }

    def _due_blocks(self, run: int) -> list[tuple[str, list[_Row]]]:
        """The next step of every order that is due, one step per order and run."""
        blocks = []
        for order_id, order in self._state["orders"].items():
            if order["next"] < len(order["steps"]):
                step = order["steps"][order["next"]]
                if step["due"] <= run:
                    blocks.append((order_id, [dict(row) for row in step["rows"]]))
        return blocks

    def _settle_step(self, order_id: str, rows: list[_Row], counts: dict[str, int]) -> None:
        """Record a written step: the order moves on, the ground truth follows its good rows."""
        order = self._state["orders"][order_id]
        order["next"] += 1
        for row in rows:
            if row.get("bad"):
                continue
            _apply(order["truth"], row)
            counts[_KIND_OF_STATUS[row["status"]]] += 1

    # -- bad rows -------------------------------------------------------------------------

    def _settled_targets(self) -> list[tuple[str, str]]:
        """Orders (SKU ``""``) and lines whose ground truth is shipped or cancelled."""
        targets: list[tuple[str, str]] = []
        for order_id, order in self._state["orders"].items():
            truth = order["truth"]
            if truth["status"] in _FINAL_STATUSES:
                targets.append((order_id, ""))
            targets.extend(
                (order_id, sku)
                for sku, item in truth["items"].items()
                if item["status"] in _FINAL_STATUSES
            )
        return targets

    def _add_bad_rows(
        self,
        order_id: str,
        rows: list[_Row],
        rng: random.Random,
        settled: Sequence[tuple[str, str]],
    ) -> list[_Row]:
        if self.mix.bad_row_rate <= 0:
            return rows
        items = self._state["orders"][order_id]["truth"]["items"]
        kinds = [
            kind
            for kind in self.mix.bad_kinds
            if kind != "excess_quantity" or any(item["ordered"] for item in items.values())
        ]
        mixed: list[_Row] = []
        for row in rows:
            mixed.append(row)
            # A backwards row needs something already final: in an earlier file, or this row.
            target = rng.choice(settled) if settled else None
            if target is None and row["status"] in _FINAL_STATUSES:
                target = (row["order_id"], row["sku"])
            eligible = [k for k in kinds if k != "backwards_status" or target is not None]
            if eligible and rng.random() < self.mix.bad_row_rate:
                kind = rng.choice(eligible)
                if kind == "backwards_status":
                    assert target is not None
                    mixed.append(self._backwards_row(*target, rng))
                else:
                    mixed.append(self._bad_row(kind, order_id, items, rng))
        return mixed

    @staticmethod
    def _backwards_row(order_id: str, sku: str, rng: random.Random) -> _Row:
        status = rng.choice(_BACKWARDS_STATUSES)
        return {
            "order_id": order_id,
            "sku": sku,
            "status": status.name,
            "quantity": None,
            "tracking_number": "",
            "shipping_provider": "",
            "info": "",
            "message": "Awaiting stock" if status is OrderStatus.BackOrdered else "",
            "bad": "backwards_status",
        }

    def _bad_row(
        self, kind: BadKind, order_id: str, items: Mapping[str, Any], rng: random.Random
    ) -> _Row:
        carrier = rng.choice(self.mix.carriers)
        row: _Row = {
            "order_id": order_id,
            "sku": "",
            "status": OrderStatus.Shipped.name,
            "quantity": None,
            "tracking_number": tracking_number(carrier, rng),
            "shipping_provider": carrier,
            "info": "",
            "message": "",
            "bad": kind,
        }
        if kind == "unknown_order":
            row["order_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        elif kind == "unknown_sku":
            sku = f"NOSUCH-{rng.randint(10_000, 99_999)}"
            while sku in items:
                sku += "X"
            row["sku"], row["quantity"] = sku, 1
        elif kind == "excess_quantity":
            sku = rng.choice([sku for sku, item in items.items() if item["ordered"]])
            row["sku"], row["quantity"] = sku, items[sku]["ordered"] + rng.randint(1, 3)
        elif kind == "other_without_message":
            row.update(status=OrderStatus.Other.name, tracking_number="", shipping_provider="")
            row["info"] = "see the warehouse note"
        elif kind == "malformed_tracking":
            row["tracking_number"] = rng.choice(MALFORMED_TRACKING_NUMBERS)
        else:
            row["status"] = rng.choice(MISSPELLED_STATUSES)
        return row

    # -- writing confirmation files -------------------------------------------------------

    def _write_file(
        self, blocks: list[tuple[str, list[_Row]]], when: datetime, rng: random.Random
    ) -> tuple[str, list[BadRow]]:
        rows = [row for _, block in blocks for row in block]
        xlsx = rng.random() < self.mix.xlsx_rate
        if self.mix.numeric_status_rate and rng.random() < self.mix.numeric_status_rate:
            rows = [{**row, "status": _status_number(row["status"])} for row in rows]
        if rng.random() < self.mix.header_variant_rate:
            headers = [rng.choice(_HEADER_SPELLINGS[column]) for column in CONFIRMATION_COLUMNS]
        else:
            headers = list(CONFIRMATION_COLUMNS)
        data = _render_xlsx(headers, rows, when) if xlsx else self._render_csv(headers, rows, rng)

        extension = "xlsx" if xlsx else "csv"
        stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        while True:
            self._state["files_written"] += 1
            name = f"confirm_{stamp}_{self._state['files_written']}.{extension}"
            if not self.drop.exists(f"{self.confirmations_dir}/{name}"):
                break
        self.drop.write_atomic(f"{self.confirmations_dir}/{name}", data)

        bad = [
            BadRow(name, number, row["bad"], row["order_id"], row["sku"])
            for number, row in enumerate(rows, start=2)
            if row.get("bad")
        ]
        log.info(
            "Robot wrote confirmation file %s: %d rows, %d deliberately bad",
            name,
            len(rows),
            len(bad),
        )
        return name, bad

    def _render_csv(
        self, headers: Sequence[str], rows: Sequence[_Row], rng: random.Random
    ) -> bytes:
        mix = self.mix
        delimiter = ";" if rng.random() < mix.semicolon_rate else ","
        bom = "\ufeff" if rng.random() < mix.bom_rate else ""

        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(headers)
        writer.writerows(_cells(row) for row in rows)
        return (bom + buffer.getvalue()).encode("utf-8")

    # -- state ----------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        fresh = {
            "version": _STATE_VERSION,
            "seed": self.seed,
            "runs": 0,
            "files_written": 0,
            "files_handled": [],
            "orders": {},
        }
        if self.state_path is None or not self.state_path.exists():
            return fresh
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"Robot state file {self.state_path} has version {state.get('version')!r}, "
                f"this robot reads version {_STATE_VERSION}: remove the file to start afresh."
            )
        if state.get("seed") != self.seed:
            raise ValueError(
                f"Robot state file {self.state_path} was written with seed {state.get('seed')!r}, "
                f"not {self.seed}: pass that seed, or remove the file to start afresh."
            )
        return state

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_name(f".{self.state_path.name}.tmp")
        temporary.write_text(json.dumps(self._state, indent=1), encoding="utf-8")
        os.replace(temporary, self.state_path)


# ---- deciding what happens to an order -----------------------------------------------------

_Step = tuple[int, list[_Row]]
"""Rows to write together, and how many runs after the order was read."""


class _OrderPlanner:
    """Draws one order's fate and writes out its steps, all from the order's own generator.

    An order is *itemisable* when every line has a SKU and a quantity; only such orders get
    item rows. Lines that share a SKU are one item, their quantities added up.
    """

    def __init__(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int | None]],
        mix: RobotMix,
        rng: random.Random,
    ) -> None:
        self.order_id = order_id
        self.mix = mix
        self.rng = rng
        self.ordered: dict[str, int] = {}
        for sku, quantity in lines:
            if sku:
                self.ordered[sku] = self.ordered.get(sku, 0) + (quantity or 0)
        self.itemisable = bool(lines) and all(sku and quantity for sku, quantity in lines)
        self.units = sum(self.ordered.values())
        self.carrier = ""
        self._issued: set[str] = set()

    def plan(self) -> tuple[Fate, list[_Step]]:
        mix, rng = self.mix, self.rng
        fate: Fate = rng.choices(_FATES, weights=mix.fate_weights)[0]
        if fate == "partial" and (not self.itemisable or self.units < 2):
            fate = "full"
        self.carrier = rng.choice(mix.carriers)

        if fate == "full":
            return fate, self._full()
        if fate == "partial":
            return fate, self._partial()
        if fate == "backorder":
            return fate, self._backorder()
        if fate == "not_available":
            return fate, self._not_available()
        if fate == "error":
            return fate, self._error()
        if fate == "other":
            message = rng.choice(_OTHER_MESSAGES)
            return fate, [(0, [self._row("", OrderStatus.Other, message=message)])]
        return fate, self._cancel()

    def _full(self) -> list[_Step]:
        if not self.itemisable or self.rng.random() < self.mix.whole_order_rate:
            return [(0, [self._shipped_whole()])]
        return [(0, self._shipped_items(self.ordered))]

    def _partial(self) -> list[_Step]:
        """Cut the order's units, in line order, into two or more shipments, one per run."""
        rng, ordered = self.rng, self.ordered
        count = rng.randint(2, min(self.mix.max_partial_shipments, self.units))
        flat = [sku for sku, quantity in ordered.items() for _ in range(quantity)]
        cuts = [0, *sorted(rng.sample(range(1, self.units), count - 1)), self.units]

        sent = dict.fromkeys(ordered, 0)
        steps: list[_Step] = []
        for index in range(count):
            number, info = self._shipment()
            rows = []
            for sku, quantity in Counter(flat[cuts[index] : cuts[index + 1]]).items():
                sent[sku] += quantity
                written: int | None = quantity
                if sent[sku] < ordered[sku]:
                    status = OrderStatus.PartiallyShipped
                else:
                    # The last units of a line: sometimes left to the contract's default.
                    status = OrderStatus.Shipped
                    written = None if rng.random() < 0.3 else quantity
                rows.append(self._row(sku, status, written, tracking=(number, info)))
            steps.append((index, rows))
        return steps

    def _backorder(self) -> list[_Step]:
        later = self.mix.backorder_delay
        message = self.rng.choice(_BACKORDER_MESSAGES)
        if not self.itemisable or self.rng.random() < 0.5:
            waiting = self._row("", OrderStatus.BackOrdered, message=message)
            return [(0, [waiting]), (later, [self._shipped_whole()])]

        skus = list(self.ordered)
        waiting_skus = self.rng.sample(skus, self.rng.randint(1, len(skus)))
        first = [self._row(sku, OrderStatus.BackOrdered, message=message) for sku in waiting_skus]
        in_stock = [sku for sku in skus if sku not in waiting_skus]
        if in_stock:
            first += self._shipped_items(in_stock)
        return [(0, first), (later, self._shipped_items(waiting_skus))]

    def _one_line(self) -> str | None:
        """A line to single out (the rest ship), or None to treat the whole order alike."""
        if (
            not self.itemisable
            or len(self.ordered) < 2
            or self.rng.random() >= self.mix.line_cancel_rate
        ):
            return None
        return self.rng.choice(list(self.ordered))

    def _not_available(self) -> list[_Step]:
        """NotAvailable now, cancelled later: the diagram's "Items not available" path."""
        message = self.rng.choice(_NOT_AVAILABLE_MESSAGES)
        later = self.mix.backorder_delay
        line = self._one_line()
        if line is None:
            gone = self._row("", OrderStatus.NotAvailable, message=message)
            return [(0, [gone]), (later, [self._row("", OrderStatus.Cancelled, message=message)])]
        rows = [self._row(line, OrderStatus.NotAvailable, message=message)]
        rows += self._shipped_items(sku for sku in self.ordered if sku != line)
        return [(0, rows), (later, [self._row(line, OrderStatus.Cancelled, message=message)])]

    def _error(self) -> list[_Step]:
        line = self._one_line()
        if line is None:
            message = "Error: the order could not be processed by the warehouse"
            return [(0, [self._row("", OrderStatus.Error, message=message)])]
        rows = [self._row(line, OrderStatus.Error, message=f"Error: product {line} not found")]
        rows += self._shipped_items(sku for sku in self.ordered if sku != line)
        return [(0, rows)]

    def _cancel(self) -> list[_Step]:
        message = self.rng.choice(_CANCEL_MESSAGES)
        if (
            not self.itemisable
            or len(self.ordered) < 2
            or self.rng.random() >= self.mix.line_cancel_rate
        ):
            return [(0, [self._row("", OrderStatus.Cancelled, message=message)])]

        dropped = self.rng.choice(list(self.ordered))
        rows = [self._row(dropped, OrderStatus.Cancelled, message=message)]
        rows += self._shipped_items(sku for sku in self.ordered if sku != dropped)
        return [(0, rows)]

    def _shipment(self) -> tuple[str, str]:
        """Fresh tracking numbers for one shipment (several, comma-separated, when it leaves
        in several parcels), and sometimes the carrier's tracking link for the first."""
        rng = self.rng
        parcels = 1
        if self.mix.multi_tracking_rate and rng.random() < self.mix.multi_tracking_rate:
            parcels = rng.randint(2, 3)
        numbers = []
        for _ in range(parcels):
            number = tracking_number(self.carrier, rng)
            while number in self._issued:
                number = tracking_number(self.carrier, rng)
            self._issued.add(number)
            numbers.append(number)
        site = _TRACKING_SITES.get(self.carrier)
        info = site + numbers[0] if site and rng.random() < 0.5 else ""
        return ",".join(numbers), info

    def _shipped_whole(self) -> _Row:
        return self._row("", OrderStatus.Shipped, tracking=self._shipment())

    def _shipped_items(self, skus: Iterable[str]) -> list[_Row]:
        """Ship whole lines in one parcel; the quantity is sometimes left to the default."""
        shipment = self._shipment()
        return [
            self._row(
                sku,
                OrderStatus.Shipped,
                None if self.rng.random() < 0.25 else self.ordered[sku],
                tracking=shipment,
            )
            for sku in skus
        ]

    def _row(
        self,
        sku: str,
        status: OrderStatus,
        quantity: int | None = None,
        *,
        tracking: tuple[str, str] | None = None,
        message: str = "",
    ) -> _Row:
        number, info = tracking or ("", "")
        return {
            "order_id": self.order_id,
            "sku": sku,
            "status": status.name,
            "quantity": quantity,
            "tracking_number": number,
            "shipping_provider": self.carrier if number else "",
            "info": info,
            "message": message,
        }


# ---- ground truth --------------------------------------------------------------------------

_KIND_OF_STATUS = {
    OrderStatus.Shipped.name: "shipped",
    OrderStatus.PartiallyShipped.name: "partial",
    OrderStatus.BackOrdered.name: "backordered",
    OrderStatus.Cancelled.name: "cancelled",
    OrderStatus.NotAvailable.name: "not_available",
    OrderStatus.Error.name: "error",
    OrderStatus.Other.name: "other",
}


def _status_number(status: str) -> str:
    """A status name as its number; a name that is no status (a bad row's typo) stays."""
    member = OrderStatus.__members__.get(status)
    return status if member is None else str(int(member))


def _apply(truth: dict[str, Any], row: _Row) -> None:
    """Move the ground truth on by one good row, as the pipeline should."""
    status = row["status"]
    numbers = [number for number in row["tracking_number"].split(",") if number]
    for number in numbers:
        if number not in truth["tracking"]:
            truth["tracking"].append(number)

    items = truth["items"]
    if not row["sku"]:
        for item in items.values():
            item["status"] = status
            if status == OrderStatus.Shipped.name:
                item["shipped"] = item["ordered"]
        truth["status"] = status
        return

    item = items[row["sku"]]
    for number in numbers:
        if number not in item["tracking"]:
            item["tracking"].append(number)
    if status in (OrderStatus.Shipped.name, OrderStatus.PartiallyShipped.name):
        quantity = row["quantity"]
        item["shipped"] += item["ordered"] - item["shipped"] if quantity is None else quantity
        done = item["shipped"] >= item["ordered"]
        item["status"] = (OrderStatus.Shipped if done else OrderStatus.PartiallyShipped).name
    else:
        item["status"] = status
    truth["status"] = _order_status([item["status"] for item in items.values()], items).name


def _order_status(statuses: list[str], items: Mapping[str, Any]) -> OrderStatus:
    if len(set(statuses)) == 1:
        return OrderStatus[statuses[0]]
    if all(status in (OrderStatus.Shipped.name, OrderStatus.Cancelled.name) for status in statuses):
        return OrderStatus.Shipped
    if any(item["shipped"] for item in items.values()):
        return OrderStatus.PartiallyShipped
    if OrderStatus.BackOrdered.name in statuses:
        return OrderStatus.BackOrdered
    return OrderStatus.Ordered


def _expected_order(order_id: str, order: Mapping[str, Any]) -> ExpectedOrder:
    truth = order["truth"]
    return ExpectedOrder(
        order_id=order_id,
        status=OrderStatus[truth["status"]],
        items=tuple(
            ExpectedItem(
                sku=sku,
                ordered=item["ordered"],
                shipped=item["shipped"],
                status=OrderStatus[item["status"]],
                tracking_numbers=tuple(item["tracking"]),
            )
            for sku, item in truth["items"].items()
        ),
        tracking_numbers=tuple(truth["tracking"]),
        complete=order["next"] >= len(order["steps"]),
    )


# ---- file formats --------------------------------------------------------------------------


def _is_order_file_name(name: str) -> bool:
    if name.startswith(".") or name.endswith((".part", ".tmp")):
        return False
    return _ORDER_FILE.fullmatch(name) is not None


def _header_key(header: str) -> str:
    return re.sub(r"[\s_-]", "", header).lower()


def _unneutralise(value: str) -> str:
    """Undo the order file's formula guard: a ``'`` put in front of ``=``, ``+``, ``-``, ``@``."""
    if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_TRIGGERS):
        return value[1:]
    return value


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _quantity(text: str) -> int | None:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount != amount.to_integral_value() or amount <= 0:
        return None
    return int(amount)


def _parse_order_file(name: str, data: bytes) -> dict[str, list[tuple[str, int | None]]]:
    """Order lines by order id, in file order: (sku, quantity); ValueError when unusable."""
    if name.lower().endswith(".xlsx"):
        table = _xlsx_rows(data)
    else:
        text = data.decode("utf-8-sig")
        table = [list(row) for row in csv.reader(io.StringIO(text, newline=""))]
    if not table:
        raise ValueError(f"Order file {name} is empty.")

    columns = {_header_key(header): index for index, header in enumerate(table[0])}
    if "orderid" not in columns or "sku" not in columns:
        raise ValueError(f"Order file {name} has no order_id or sku column.")
    id_at, sku_at = columns["orderid"], columns["sku"]
    quantity_at = columns.get("quantity")

    orders: dict[str, list[tuple[str, int | None]]] = {}
    for cells in table[1:]:
        cells = cells + [""] * (len(table[0]) - len(cells))
        order_id = _unneutralise(cells[id_at].strip())
        if not order_id:
            continue
        sku = _unneutralise(cells[sku_at])
        quantity = _quantity(cells[quantity_at]) if quantity_at is not None else None
        orders.setdefault(order_id, []).append((sku, quantity))
    return orders


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheet = workbook["Orders"] if "Orders" in workbook.sheetnames else workbook.worksheets[0]
        return [[_cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _cells(row: _Row) -> list[str]:
    quantity = row["quantity"]
    return [
        row["order_id"],
        row["sku"],
        row["status"],
        "" if quantity is None else str(quantity),
        row["tracking_number"],
        row["shipping_provider"],
        row["info"],
        row["message"],
    ]


def _render_xlsx(headers: Sequence[str], rows: Sequence[_Row], when: datetime) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Confirmations")

    def cell(value: str | int | None) -> object:
        if isinstance(value, str) and value.startswith("="):
            text = WriteOnlyCell(sheet, value)
            text.data_type = "s"  # a string cell, never a formula
            return text
        return value

    sheet.append(list(headers))
    for row in rows:
        values: list[str | int | None] = [value if value != "" else None for value in _cells(row)]
        if row["status"].isdigit():
            values[2] = int(row["status"])  # a number cell, as a spreadsheet would keep it
        values[3] = row["quantity"]
        sheet.append([cell(value) for value in values])

    workbook.properties.created = when.astimezone(UTC).replace(tzinfo=None)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _pin_zip_times(buffer.getvalue(), when)


def _pin_zip_times(data: bytes, when: datetime) -> bytes:
    """Stamp every member and the workbook's modified time with ``when``.

    openpyxl stamps both with the wall clock; pinning them makes a run's files depend on the
    seed and the clock only, so a repeated run writes the same bytes and the drop keeps the file.
    """
    moment = when.astimezone(UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ").encode("ascii")
    date_time = max(moment.timetuple()[:6], _ZIP_EPOCH)

    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "docProps/core.xml":
                content = _CORE_MODIFIED.sub(rb"\g<1>" + stamp + rb"\g<2>", content)
            member = zipfile.ZipInfo(info.filename, date_time)
            member.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(member, content)
    return out.getvalue()


def _pack(
    blocks: Sequence[tuple[str, list[_Row]]], rows_per_file: int
) -> Iterable[list[tuple[str, list[_Row]]]]:
    """Group order blocks into files of about ``rows_per_file`` rows, never splitting a block."""
    current: list[tuple[str, list[_Row]]] = []
    size = 0
    for block in blocks:
        if current and size + len(block[1]) > rows_per_file:
            yield current
            current, size = [], 0
        current.append(block)
        size += len(block[1])
    if current:
        yield current
