"""The warehouse robot against a local drop and the embedded SFTP server."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from dropship_pipeline.dropship.models import OrderStatus
from dropship_pipeline.erp.drop import Drop, LocalDrop, open_drop
from dropship_pipeline.erp.writers import ORDER_FILE_COLUMNS, render_csv, render_xlsx
from dropship_pipeline.settings import Settings
from dropship_pipeline.simulator.generator import OrderGenerator, SimOrder
from dropship_pipeline.simulator.robot import (
    BAD_KINDS,
    CONFIRMATION_COLUMNS,
    MALFORMED_TRACKING_NUMBERS,
    TRACKING_PATTERNS,
    RobotMix,
    RobotReport,
    WarehouseRobot,
)
from dropship_pipeline.simulator.sftp import EmbeddedSftpServer

PASSWORD = "robot test password"
CLOCK = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
PHONE = "306-555-0142"
STREET = "1 Evergreen Terrace"


# ---- order files ---------------------------------------------------------------------------


def _orders(count: int, seed: int = 11) -> list[SimOrder]:
    generator = OrderGenerator(seed)
    return [generator.order(supplier_id=14146) for _ in range(count)]


def _order_frame(orders: Sequence[SimOrder], *, awkward: bool = True) -> pd.DataFrame:
    """One row per order line, as the export writes them; plus an order with awkward SKUs."""
    records = []
    for order in orders:
        for number, line in enumerate(order.lines, start=1):
            records.append(
                {
                    "order_id": order.order_id,
                    "printable_id": order.printable_id,
                    "created_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
                    "supplier_id": str(order.supplier_id),
                    "ship_to_store": order.ship_to_store,
                    "street_address_1": STREET,
                    "phone": PHONE,
                    "line_number": number,
                    "sku": line.sku,
                    "description": line.description,
                    "quantity": line.quantity,
                    "selling_price": line.selling_price,
                }
            )
    if awkward:
        for number, (sku, quantity) in enumerate((("000123", 3), ("-77", 2)), start=1):
            records.append(
                {
                    "order_id": "0c0ffee0-0000-4000-8000-000000000001",
                    "created_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
                    "line_number": number,
                    "sku": sku,
                    "quantity": quantity,
                    "selling_price": Decimal("9.99"),
                }
            )
    return pd.DataFrame(records, columns=list(ORDER_FILE_COLUMNS))


def _deliver(drop: Drop, frame: pd.DataFrame, export_id: int, *, formats=("csv", "xlsx")) -> None:
    drop.make_folder("orders")
    for extension in formats:
        data = render_csv(frame) if extension == "csv" else render_xlsx(frame)
        drop.write_atomic(f"orders/orders_20260301T120000Z_{export_id}.{extension}", data)


def _ordered(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    ordered: dict[str, dict[str, int]] = defaultdict(dict)
    for row in frame.itertuples():
        ordered[row.order_id][row.sku] = ordered[row.order_id].get(row.sku, 0) + row.quantity
    return ordered


# ---- reading confirmation files back, independently of the robot ---------------------------

_ALIASES = {"trackinginfo": "tracking_number", "carrier": "shipping_provider"}
_CANONICAL = {column.replace("_", ""): column for column in CONFIRMATION_COLUMNS}


@dataclass(frozen=True)
class Row:
    file_name: str
    row: int
    values: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.values.get(column, "")


def _canonical(header: str) -> str:
    key = re.sub(r"[\s_-]", "", header).lower()
    return _ALIASES.get(key) or _CANONICAL[key]


def _read_confirmation(name: str, data: bytes) -> list[Row]:
    if name.endswith(".xlsx"):
        workbook = load_workbook(io.BytesIO(data), read_only=True)
        try:
            table = [
                ["" if value is None else str(value) for value in values]
                for values in workbook.worksheets[0].iter_rows(values_only=True)
            ]
        finally:
            workbook.close()
    else:
        text = data.decode("utf-8-sig")
        delimiter = ";" if ";" in text.splitlines()[0] else ","
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    headers = [_canonical(header) for header in table[0]]
    return [
        Row(
            name,
            number,
            dict(zip(headers, cells + [""] * (len(headers) - len(cells)), strict=True)),
        )
        for number, cells in enumerate(table[1:], start=2)
    ]


def _confirmations(drop: Drop, names: Sequence[str]) -> list[Row]:
    return [
        row
        for name in names
        for row in _read_confirmation(name, drop.read(f"confirmations/{name}"))
    ]


def _numbers(row: Row) -> list[str]:
    """The tracking numbers of a row: one, or several comma-separated."""
    return [number for number in row["tracking_number"].split(",") if number]


def _status(row: Row) -> OrderStatus:
    """A good row's status, written as its name or its number."""
    status = OrderStatus.parse(row["status"])
    assert row["status"] in (status.name, str(int(status))), row
    return status


def _run_until_settled(robot: WarehouseRobot, *, limit: int = 8) -> list[RobotReport]:
    reports = [robot.run_once()]
    while reports[-1].pending:
        assert len(reports) < limit, "the robot never finished its orders"
        reports.append(robot.run_once())
    return reports


def _assert_valid_rows(rows: Sequence[Row], ordered: dict[str, dict[str, int]]) -> None:
    """Good rows name known orders and SKUs, valid statuses and tracking numbers, and never
    ship more units than were ordered."""
    shipped: Counter[tuple[str, str]] = Counter()
    for row in rows:
        assert row["order_id"] in ordered
        assert row["sku"] == "" or row["sku"] in ordered[row["order_id"]]
        status = _status(row)
        for number in _numbers(row):
            assert TRACKING_PATTERNS[row["shipping_provider"]].fullmatch(number), row
        if status in (OrderStatus.Other, OrderStatus.NotAvailable, OrderStatus.Error):
            assert row["message"], "these statuses carry their reason"
        if status in (OrderStatus.Shipped, OrderStatus.PartiallyShipped) and row["sku"]:
            key = (row["order_id"], row["sku"])
            left = ordered[key[0]][key[1]] - shipped[key]
            shipped[key] += int(row["quantity"]) if row["quantity"] else left
    for (order_id, sku), units in shipped.items():
        assert units <= ordered[order_id][sku]


# ---- drops ---------------------------------------------------------------------------------


@pytest.fixture
def local_drop(tmp_path: Path) -> LocalDrop:
    return LocalDrop(tmp_path / "drop")


@pytest.fixture
def sftp_drop(tmp_path: Path) -> Iterator[Drop]:
    with EmbeddedSftpServer(tmp_path / "drop", username="erp", password=PASSWORD) as server:
        settings = Settings(
            supplier_id=14146,
            drop_url=server.url,
            sftp_password=PASSWORD,
            sftp_known_hosts=server.known_hosts_path,
        )
        with open_drop(settings, timeout=10) as drop:
            yield drop


@pytest.fixture(params=["local", "sftp"])
def drop(request: pytest.FixtureRequest) -> Drop:
    return request.getfixturevalue(f"{request.param}_drop")


# ---- tests ---------------------------------------------------------------------------------


def test_the_robot_reads_both_files_of_a_batch_and_handles_each_order_once(drop: Drop) -> None:
    frame = _order_frame(_orders(12))
    _deliver(drop, frame, export_id=7)

    report = WarehouseRobot(drop, seed=3, clock=lambda: CLOCK).run_once()

    assert report.files_read == ("orders_20260301T120000Z_7.csv", "orders_20260301T120000Z_7.xlsx")
    assert report.new_orders == 13
    assert set(report.expected) == set(frame["order_id"])
    rows = _confirmations(drop, report.files_written)
    first_file_of = {}
    for row in rows:
        assert first_file_of.setdefault(row["order_id"], row.file_name) == row.file_name
    assert set(first_file_of) == set(frame["order_id"])


def test_leading_zeros_and_formula_guarded_skus_come_back_as_ordered(drop: Drop) -> None:
    frame = _order_frame([])
    _deliver(drop, frame, export_id=1)

    robot = WarehouseRobot(drop, mix=RobotMix(full=1, whole_order_rate=0), clock=lambda: CLOCK)
    report = robot.run_once()

    rows = _confirmations(drop, report.files_written)
    assert sorted(row["sku"] for row in rows) == ["-77", "000123"]
    order = report.expected["0c0ffee0-0000-4000-8000-000000000001"]
    assert {item.sku: item.ordered for item in order.items} == {"000123": 3, "-77": 2}


def test_confirmation_files_follow_the_contract(local_drop: LocalDrop, tmp_path: Path) -> None:
    frame = _order_frame(_orders(80))
    _deliver(local_drop, frame, export_id=2)
    mix = RobotMix(
        xlsx_rate=0.4, header_variant_rate=0.6, semicolon_rate=0.4, bom_rate=0.4, rows_per_file=10
    )

    reports = _run_until_settled(WarehouseRobot(local_drop, mix=mix, seed=5, clock=lambda: CLOCK))

    names = [name for report in reports for name in report.files_written]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"confirm_20260314T092653Z_\d+\.(csv|xlsx)", name) for name in names)
    assert {name.rsplit(".", 1)[1] for name in names} == {"csv", "xlsx"}
    raw = [(tmp_path / "drop/confirmations" / name).read_bytes() for name in names]
    assert any(data.startswith(b"\xef\xbb\xbf") for data in raw)
    assert any(data.split(b"\r\n", 1)[0].count(b";") == 7 for data in raw)
    assert any(b"Order ID" in data or b"order-id" in data or b"OrderId" in data for data in raw)

    rows = _confirmations(local_drop, names)
    assert all(set(row.values) == set(CONFIRMATION_COLUMNS) for row in rows)
    assert sum(report.rows.total for report in reports) == len(rows)
    _assert_valid_rows(rows, _ordered(frame))
    statuses = {_status(row).name for row in rows}
    assert statuses == {"Shipped", "PartiallyShipped", "BackOrdered", "Cancelled"}


def test_every_order_ends_where_the_ground_truth_says(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(60))
    _deliver(local_drop, frame, export_id=3)

    reports = _run_until_settled(WarehouseRobot(local_drop, seed=9, clock=lambda: CLOCK))

    expected = reports[-1].expected
    ordered = _ordered(frame)
    assert all(order.complete for order in expected.values())
    for order_id, order in expected.items():
        assert order.status in (OrderStatus.Shipped, OrderStatus.Cancelled)
        for item in order.items:
            assert item.ordered == ordered[order_id][item.sku]
            if item.status is OrderStatus.Shipped:
                assert item.shipped == item.ordered
            else:
                assert item.status is OrderStatus.Cancelled
        if order.status is OrderStatus.Shipped:
            assert order.tracking_numbers


def test_partial_shipments_complete_over_successive_runs_with_distinct_tracking_numbers(
    local_drop: LocalDrop, tmp_path: Path
) -> None:
    frame = _order_frame(_orders(30))
    _deliver(local_drop, frame, export_id=4)
    state = tmp_path / "robot-state.json"
    mix = RobotMix(full=0, partial=1, backorder=0, cancel=0, max_partial_shipments=3)

    reports = []
    for _ in range(4):  # a new robot each time: the state file carries the promises
        robot = WarehouseRobot(local_drop, mix=mix, seed=1, state_path=state, clock=lambda: CLOCK)
        reports.append(robot.run_once())

    assert reports[0].files_read and not any(report.files_read for report in reports[1:])
    assert reports[0].rows.partial > 0 and reports[1].rows.partial + reports[1].rows.shipped > 0
    assert reports[-1].pending == ()
    rows_by_order: dict[str, list[Row]] = defaultdict(list)
    for report in reports:
        for row in _confirmations(local_drop, report.files_written):
            rows_by_order[row["order_id"]].append(row)
    split = 0
    for order_id, order in reports[-1].expected.items():
        rows = rows_by_order[order_id]
        files = [row.file_name for row in rows]
        shipments = list(dict.fromkeys(row["tracking_number"] for row in rows))
        numbers = [number for shipment in shipments for number in shipment.split(",")]
        assert order.status is OrderStatus.Shipped
        assert all(item.shipped == item.ordered for item in order.items)
        assert len(set(files)) == len(shipments), "one shipment, one set of parcels, per file"
        assert list(order.tracking_numbers) == numbers
        assert len(set(numbers)) == len(numbers)
        if sum(item.ordered for item in order.items) == 1:
            continue  # a single unit cannot be split; the robot ships it in full
        split += 1
        assert len(shipments) >= 2
        first = [row for row in rows if row.file_name == files[0]]
        units = sum(int(row["quantity"] or order.item(row["sku"]).ordered) for row in first)
        assert units < sum(item.ordered for item in order.items), "the first shipment is a part"
    assert split >= 20
    _assert_valid_rows([row for rows in rows_by_order.values() for row in rows], _ordered(frame))


def test_back_orders_ship_in_a_later_run(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(20))
    _deliver(local_drop, frame, export_id=5)
    robot = WarehouseRobot(
        local_drop, mix=RobotMix(full=0, backorder=1, partial=0, cancel=0), clock=lambda: CLOCK
    )

    first = robot.run_once()
    second = robot.run_once()

    assert first.rows.backordered > 0 and set(first.pending) == set(frame["order_id"])
    assert all(
        order.status in (OrderStatus.BackOrdered, OrderStatus.PartiallyShipped)
        for order in first.expected.values()
    )
    assert second.rows.shipped > 0 and second.rows.backordered == 0 and second.pending == ()
    assert all(order.status is OrderStatus.Shipped for order in second.expected.values())


def test_cancellations_drop_a_whole_order_or_one_line(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(40))
    _deliver(local_drop, frame, export_id=6)
    mix = RobotMix(full=0, partial=0, backorder=0, cancel=1, line_cancel_rate=0.5)

    report = WarehouseRobot(local_drop, mix=mix, seed=2, clock=lambda: CLOCK).run_once()

    rows = _confirmations(local_drop, report.files_written)
    whole = {row["order_id"] for row in rows if row["status"] == "Cancelled" and not row["sku"]}
    lines = {row["order_id"] for row in rows if row["status"] == "Cancelled" and row["sku"]}
    assert whole and lines and not whole & lines
    for order_id in whole:
        assert report.expected[order_id].status is OrderStatus.Cancelled
    for order_id in lines:
        items = report.expected[order_id].items
        assert [item.status for item in items].count(OrderStatus.Cancelled) == 1
        assert report.expected[order_id].status is OrderStatus.Shipped


def test_no_bad_rows_are_written_when_the_rate_is_zero(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(60))
    _deliver(local_drop, frame, export_id=8)

    reports = _run_until_settled(WarehouseRobot(local_drop, seed=4, clock=lambda: CLOCK))

    assert all(report.rows.bad == 0 and report.bad_rows == () for report in reports)
    rows = _confirmations(local_drop, [n for report in reports for n in report.files_written])
    _assert_valid_rows(rows, _ordered(frame))


def test_bad_rows_appear_at_the_configured_rate(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(150))
    _deliver(local_drop, frame, export_id=9)
    mix = RobotMix(bad_row_rate=0.25, xlsx_rate=0.3)

    reports = _run_until_settled(WarehouseRobot(local_drop, mix=mix, seed=6, clock=lambda: CLOCK))

    bad = {(b.file_name, b.row): b for report in reports for b in report.bad_rows}
    assert sum(report.rows.bad for report in reports) == len(bad)
    rows = _confirmations(local_drop, [n for report in reports for n in report.files_written])
    good = [row for row in rows if (row.file_name, row.row) not in bad]
    assert 0.18 < len(bad) / len(good) < 0.32
    assert {b.kind for b in bad.values()} == set(BAD_KINDS)
    _assert_valid_rows(good, _ordered(frame))

    ordered = _ordered(frame)
    by_place = {(row.file_name, row.row): row for row in rows}
    for place, flaw in bad.items():
        row = by_place[place]
        assert (row["order_id"], row["sku"]) == (flaw.order_id, flaw.sku)
        if flaw.kind == "unknown_order":
            assert row["order_id"] not in ordered
        elif flaw.kind == "unknown_sku":
            assert row["sku"] not in ordered[row["order_id"]]
        elif flaw.kind == "excess_quantity":
            assert int(row["quantity"]) > ordered[row["order_id"]][row["sku"]]
        elif flaw.kind == "other_without_message":
            assert row["status"] == "Other" and row["message"] == ""
        elif flaw.kind == "malformed_tracking":
            assert row["tracking_number"] in MALFORMED_TRACKING_NUMBERS
        elif flaw.kind == "backwards_status":
            assert OrderStatus.parse(row["status"]) in (
                OrderStatus.Ordered,
                OrderStatus.BackOrdered,
            )
        else:
            with pytest.raises(ValueError):
                OrderStatus.parse(row["status"])


def test_bad_rows_leave_the_ground_truth_alone(tmp_path: Path) -> None:
    frame = _order_frame(_orders(40))
    truths = []
    for rate in (0.0, 0.5):
        drop = LocalDrop(tmp_path / f"drop-{rate}")
        _deliver(drop, frame, export_id=10)
        robot = WarehouseRobot(drop, mix=RobotMix(bad_row_rate=rate), seed=8, clock=lambda: CLOCK)
        truths.append(_run_until_settled(robot)[-1].expected)

    assert truths[0] == truths[1]


def test_the_same_seed_gives_the_same_files(tmp_path: Path) -> None:
    frame = _order_frame(_orders(40))
    mix = RobotMix(bad_row_rate=0.1, xlsx_rate=0.5, rows_per_file=15)
    outputs = []
    for folder, seed in (("a", 12), ("b", 12), ("c", 13)):
        drop = LocalDrop(tmp_path / folder)
        _deliver(drop, frame, export_id=11)
        robot = WarehouseRobot(drop, mix=mix, seed=seed, clock=lambda: CLOCK)
        _run_until_settled(robot)
        confirmations = sorted((tmp_path / folder / "confirmations").iterdir())
        outputs.append({path.name: path.read_bytes() for path in confirmations})

    assert any(name.endswith(".xlsx") for name in outputs[0])
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_temporary_names_are_ignored_and_none_are_left_behind(drop: Drop, tmp_path: Path) -> None:
    frame = _order_frame(_orders(20))
    _deliver(drop, frame, export_id=12, formats=("csv",))
    drop.write_atomic("orders/.orders_20260301T120000Z_13.csv.0123456789ab.part", b"order_id\r\n")
    drop.write_atomic("orders/notes.txt", b"not an order file")

    reports = _run_until_settled(
        WarehouseRobot(drop, mix=RobotMix(xlsx_rate=0.5), clock=lambda: CLOCK)
    )

    assert reports[0].files_read == ("orders_20260301T120000Z_12.csv",)
    on_disk = [path.name for path in (tmp_path / "drop" / "confirmations").iterdir()]
    assert sorted(on_disk) == sorted(n for report in reports for n in report.files_written)
    assert not any(name.startswith(".") for name in on_disk)


def test_an_unreadable_order_file_is_reported_and_skipped(local_drop: LocalDrop) -> None:
    local_drop.make_folder("orders")
    local_drop.write_atomic("orders/orders_20260301T120000Z_14.xlsx", b"not a workbook")
    local_drop.write_atomic("orders/orders_20260301T120000Z_15.csv", b"name,city\r\nBob,Regina\r\n")
    robot = WarehouseRobot(local_drop, clock=lambda: CLOCK)

    first = robot.run_once()
    second = robot.run_once()

    assert first.files_unreadable == (
        "orders_20260301T120000Z_14.xlsx",
        "orders_20260301T120000Z_15.csv",
    )
    assert first.files_written == () and second.files_unreadable == ()


def test_the_state_file_refuses_another_seed(local_drop: LocalDrop, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    WarehouseRobot(local_drop, seed=1, state_path=state).run_once()

    with pytest.raises(ValueError, match="seed 1"):
        WarehouseRobot(local_drop, seed=2, state_path=state)


def test_logs_name_files_but_never_addresses_or_phone_numbers(
    drop: Drop, caplog: pytest.LogCaptureFixture
) -> None:
    _deliver(drop, _order_frame(_orders(10)), export_id=16)

    with caplog.at_level(logging.DEBUG, logger="dropship_pipeline.simulator.robot"):
        report = WarehouseRobot(drop, clock=lambda: CLOCK).run_once()

    robot_lines = [r.getMessage() for r in caplog.records if r.name.endswith(".robot")]
    assert len(robot_lines) == len(report.files_read) + len(report.files_written)
    assert not any(PHONE in line or STREET in line for line in caplog.messages)


@pytest.mark.parametrize(
    "changes",
    [
        {"bad_row_rate": 1.5},
        {"full": 0, "partial": 0, "backorder": 0, "cancel": 0},
        {"carriers": ()},
        {"max_partial_shipments": 1},
        {"bad_kinds": ("typo",)},
        {"error": -0.1},
        {"multi_tracking_rate": 1.5},
        {"numeric_status_rate": -1},
    ],
)
def test_a_mix_out_of_range_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="RobotMix"):
        RobotMix(**changes)  # type: ignore[arg-type]


def test_backwards_rows_name_what_was_already_shipped_or_cancelled(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(80))
    _deliver(local_drop, frame, export_id=17)
    mix = RobotMix(bad_row_rate=0.3, bad_kinds=("backwards_status",))

    reports = _run_until_settled(WarehouseRobot(local_drop, mix=mix, seed=7, clock=lambda: CLOCK))

    final = (OrderStatus.Shipped, OrderStatus.Cancelled)
    origins: Counter[str] = Counter()
    for run, report in enumerate(reports):
        rows = {(r.file_name, r.row): r for r in _confirmations(local_drop, report.files_written)}
        before = reports[run - 1].expected if run else {}
        for flaw in report.bad_rows:
            assert flaw.kind == "backwards_status"
            row = rows[flaw.file_name, flaw.row]
            assert OrderStatus.parse(row["status"]) in (
                OrderStatus.Ordered,
                OrderStatus.BackOrdered,
            )
            assert (row["order_id"], row["sku"]) == (flaw.order_id, flaw.sku)
            earlier = before.get(flaw.order_id)
            if earlier is not None:
                status = earlier.status if not flaw.sku else earlier.item(flaw.sku).status
                assert status in final, "an earlier file shipped or cancelled it"
                origins["earlier file"] += 1
                continue
            assert any(
                other.file_name == flaw.file_name
                and other.row < flaw.row
                and (other["order_id"], other["sku"]) == (flaw.order_id, flaw.sku)
                and OrderStatus.parse(other["status"]) in final
                for other in rows.values()
            ), "a row above it in the same file shipped or cancelled it"
            origins["same file"] += 1
    assert origins["earlier file"] and origins["same file"]


def test_a_shipment_in_several_parcels_lists_every_tracking_number(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(30), awkward=False)
    _deliver(local_drop, frame, export_id=18)
    mix = RobotMix(multi_tracking_rate=1.0)

    reports = _run_until_settled(WarehouseRobot(local_drop, mix=mix, seed=3, clock=lambda: CLOCK))

    rows = _confirmations(local_drop, [n for report in reports for n in report.files_written])
    _assert_valid_rows(rows, _ordered(frame))
    shipping = [row for row in rows if row["tracking_number"]]
    assert shipping and all(2 <= len(_numbers(row)) <= 3 for row in shipping)
    for order_id, order in reports[-1].expected.items():
        numbers = [n for row in rows if row["order_id"] == order_id for n in _numbers(row)]
        assert list(order.tracking_numbers) == list(dict.fromkeys(numbers))
        assert len(set(order.tracking_numbers)) == len(order.tracking_numbers)


def test_statuses_can_be_written_as_numbers(tmp_path: Path) -> None:
    frame = _order_frame(_orders(40))
    truths, statuses = [], []
    for rate in (0.0, 1.0):
        drop = LocalDrop(tmp_path / f"drop-{rate}")
        _deliver(drop, frame, export_id=19)
        mix = RobotMix(numeric_status_rate=rate, xlsx_rate=0.5, rows_per_file=10)
        reports = _run_until_settled(WarehouseRobot(drop, mix=mix, seed=4, clock=lambda: CLOCK))
        truths.append(reports[-1].expected)
        names = [name for report in reports for name in report.files_written]
        statuses.append([row["status"] for row in _confirmations(drop, names)])
        _assert_valid_rows(_confirmations(drop, names), _ordered(frame))

    assert truths[0] == truths[1]
    assert not any(status.isdigit() for status in statuses[0])
    assert all(status.isdigit() for status in statuses[1])
    assert {int(status) for status in statuses[1]} >= {2, 3, 6, 7}
    workbooks = sorted((tmp_path / "drop-1.0" / "confirmations").glob("*.xlsx"))
    assert workbooks
    sheet = load_workbook(workbooks[0], read_only=True).worksheets[0]
    assert all(isinstance(row[2], int) for row in sheet.iter_rows(min_row=2, values_only=True))


def test_not_available_error_and_other_fates_carry_their_reasons(local_drop: LocalDrop) -> None:
    frame = _order_frame(_orders(90), awkward=False)
    _deliver(local_drop, frame, export_id=20)
    mix = RobotMix(full=0, partial=0, backorder=0, cancel=0, not_available=1, error=1, other=1)

    reports = _run_until_settled(WarehouseRobot(local_drop, mix=mix, seed=5, clock=lambda: CLOCK))

    counts = [report.rows for report in reports]
    assert sum(c.not_available for c in counts) and sum(c.error for c in counts)
    assert sum(c.other for c in counts)
    names = [name for report in reports for name in report.files_written]
    written = {name: position for position, name in enumerate(names)}
    rows = _confirmations(local_drop, names)
    _assert_valid_rows(rows, _ordered(frame))
    expected = reports[-1].expected
    assert all(order.complete for order in expected.values())
    for row in rows:
        status = _status(row)
        order = expected[row["order_id"]]
        final = order.status if not row["sku"] else order.item(row["sku"]).status
        if status is OrderStatus.NotAvailable:
            later = [
                other
                for other in rows
                if (other["order_id"], other["sku"]) == (row["order_id"], row["sku"])
                and written[other.file_name] > written[row.file_name]
            ]
            assert [_status(other) for other in later] == [OrderStatus.Cancelled]
            assert final is OrderStatus.Cancelled
        elif status is OrderStatus.Error:
            assert row["message"].startswith("Error") and final is OrderStatus.Error
        elif status is OrderStatus.Other:
            assert row["sku"] == "" and final is OrderStatus.Other
    lines = [row for row in rows if row["sku"] and _status(row) is not OrderStatus.Shipped]
    assert lines, "some fates single out one line and ship the rest"
