"""The order-file writers, read back with the csv module and openpyxl."""

from __future__ import annotations

import csv
import io
import time
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from openpyxl.utils.escape import unescape
from openpyxl.worksheet.worksheet import Worksheet

from dropship_pipeline.erp.layout import ColumnLayout
from dropship_pipeline.erp.writers import ORDER_FILE_COLUMNS, render_csv, render_xlsx
from dropship_pipeline.errors import SettingsError

INJECTIONS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=x", "\r=x"]
EXCEL_ERROR_CODES = ["#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!"]
UNICODE = "Amélie Groß 中文 📦"
ALL_COLUMNS = "A1:AL"


def order_line(**values: object) -> dict[str, object]:
    """One order line with every column set to something ordinary, then ``values`` applied."""
    line: dict[str, object] = {name: f"{name}-value" for name in ORDER_FILE_COLUMNS}
    line |= {
        "created_at": datetime(2026, 12, 3, 10, 15, tzinfo=UTC),
        "ship_to_store": False,
        "line_number": 1,
        "quantity": 2,
        "selling_price": Decimal("39.99"),
    }
    return line | values


def frame(*lines: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(lines), columns=list(ORDER_FILE_COLUMNS))


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def read_sheet(data: bytes) -> Worksheet:
    return openpyxl.load_workbook(io.BytesIO(data))["Orders"]


def cell(sheet: Worksheet, column: str, row: int = 2) -> openpyxl.cell.Cell:
    headers = [c.value for c in sheet[1]]
    return sheet.cell(row=row, column=headers.index(column) + 1)


def as_excel_shows(value: object) -> object:
    """A cell's text as Excel shows it: Excel decodes ``_xHHHH_`` escapes, openpyxl does not.

    XML cannot carry most control characters, and parsers turn a bare carriage return into a
    line feed, so writers store them as ``_x000D_`` and the like (xlsxwriter always does).
    """
    return unescape(value) if isinstance(value, str) else value


@pytest.fixture(params=["xlsxwriter", "openpyxl"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


# ---- CSV ---------------------------------------------------------------------------------


def test_csv_header_is_the_contract_columns_in_order() -> None:
    data = render_csv(frame(order_line()))

    assert next(csv.reader(io.StringIO(data.decode("utf-8")))) == list(ORDER_FILE_COLUMNS)


def test_csv_is_utf8_without_bom_with_crlf_line_ends() -> None:
    data = render_csv(frame(order_line(description="two\nlines"), order_line()))

    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 3
    assert b'"two\nlines"' in data
    assert data.endswith(b"\r\n")


def test_csv_writes_nil_as_empty_and_types_as_text_the_erp_can_read() -> None:
    nils = {name: None for name in ORDER_FILE_COLUMNS}
    data = render_csv(
        frame(
            order_line(ship_to_store=True, created_at=datetime(2026, 12, 3, 10, 15, 7, 900)),
            nils,
            order_line(title=float("nan"), quantity=float("nan"), selling_price=float("nan")),
        )
    )

    first, empty, nan = read_csv(data)
    assert first["ship_to_store"] == "true"
    assert first["created_at"] == "2026-12-03T10:15:07Z"
    assert first["quantity"] == "2"
    assert set(empty.values()) == {""}
    assert (nan["title"], nan["quantity"], nan["selling_price"]) == ("", "", "")


def test_csv_prices_are_plain_decimal_text_without_float_noise() -> None:
    prices = [Decimal("39.99"), 39.99, "100", Decimal("1E+2"), 0.1 + 0.2, Decimal("-5.00"), 0]
    data = render_csv(frame(*(order_line(selling_price=price) for price in prices)))

    written = [row["selling_price"] for row in read_csv(data)]
    assert written == ["39.99", "39.99", "100", "100", "0.30000000000000004", "-5", "0"]


def test_csv_keeps_leading_zeros_and_unicode_exactly() -> None:
    line = order_line(sku="00123", phone="0306555", postal_code="01234", primary_name=UNICODE)

    row = read_csv(render_csv(frame(line)))[0]

    assert (row["sku"], row["phone"], row["postal_code"]) == ("00123", "0306555", "01234")
    assert row["primary_name"] == UNICODE


@pytest.mark.parametrize("value", INJECTIONS)
def test_csv_neutralises_values_that_would_start_a_formula(value: str) -> None:
    row = read_csv(render_csv(frame(order_line(customer_notes=value, sku=value))))[0]

    assert row["customer_notes"] == "'" + value
    assert row["sku"] == "'" + value


def test_csv_leaves_negative_prices_as_numbers() -> None:
    row = read_csv(render_csv(frame(order_line(selling_price=Decimal("-12.50")))))[0]

    assert row["selling_price"] == "-12.5"


def test_csv_accepts_pyarrow_string_and_nullable_dtypes() -> None:
    rows = frame(order_line(sku="007"), order_line(sku=None, quantity=None))
    text_columns = [c for c in ORDER_FILE_COLUMNS if c not in {"created_at", "ship_to_store"}]
    text_columns = [c for c in text_columns if c not in {"line_number", "quantity"}]
    rows = rows.astype({c: "string[pyarrow]" for c in text_columns})
    rows = rows.astype({"quantity": "Int64", "ship_to_store": "boolean"})

    first, second = read_csv(render_csv(rows))

    assert (first["sku"], first["selling_price"], first["quantity"]) == ("007", "39.99", "2")
    assert (second["sku"], second["quantity"]) == ("", "")


def test_rows_without_a_needed_column_are_refused() -> None:
    rows = frame(order_line()).drop(columns=["sku"])

    with pytest.raises(ValueError, match="'sku'"):
        render_csv(rows)


def test_a_price_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="selling_price"):
        render_csv(frame(order_line(selling_price="cheap")))


# ---- XLSX --------------------------------------------------------------------------------


def test_xlsx_has_an_orders_sheet_with_a_bold_frozen_header_and_an_autofilter(
    engine: str,
) -> None:
    sheet = read_sheet(render_xlsx(frame(order_line(), order_line()), engine=engine))

    assert sheet.parent.sheetnames == ["Orders"]
    assert [c.value for c in sheet[1]] == list(ORDER_FILE_COLUMNS)
    assert all(c.font.bold for c in sheet[1])
    assert not sheet["A2"].font.bold
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"{ALL_COLUMNS}3"


def test_xlsx_of_no_rows_is_a_header_with_its_filter(engine: str) -> None:
    sheet = read_sheet(render_xlsx(frame(), engine=engine))

    assert sheet.max_row == 1
    assert sheet.auto_filter.ref == f"{ALL_COLUMNS}1"


@pytest.mark.parametrize("value", INJECTIONS)
def test_xlsx_neutralises_formula_values_and_writes_no_formula_cell(
    engine: str, value: str
) -> None:
    line = order_line(customer_notes=value, sku=value, phone=value, description=value)

    sheet = read_sheet(render_xlsx(frame(line), engine=engine))

    for column in ("customer_notes", "sku", "phone", "description"):
        assert as_excel_shows(cell(sheet, column).value) == "'" + value
        assert cell(sheet, column).data_type == "s"
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


@pytest.mark.parametrize("code", EXCEL_ERROR_CODES)
def test_xlsx_keeps_text_that_spells_an_excel_error_code_as_text(
    engine: str, code: str, tmp_path: Path
) -> None:
    line = order_line(sku=code, description=code, customer_notes=f"{code} and more")
    path = tmp_path / "orders.xlsx"
    path.write_bytes(render_xlsx(frame(line), engine=engine))

    sheet = openpyxl.load_workbook(path)["Orders"]

    for column in ("sku", "description", "customer_notes"):
        assert cell(sheet, column).data_type == "s"
    assert cell(sheet, "sku").value == cell(sheet, "description").value == code
    assert all(c.data_type != "e" for row in sheet.iter_rows() for c in row)


def test_xlsx_written_at_the_same_time_is_the_same_bytes() -> None:
    rows = frame(order_line(), order_line(sku="00123", quantity=5))
    moment = datetime(2026, 12, 3, 10, 15, 7, tzinfo=UTC)
    engines = ("openpyxl", "xlsxwriter")

    first = {engine: render_xlsx(rows, engine=engine, written_at=moment) for engine in engines}
    time.sleep(2.1)  # past the two-second grain of zip entry times, and a second of docProps
    again = {engine: render_xlsx(rows, engine=engine, written_at=moment) for engine in engines}

    assert first == again
    for data in first.values():
        workbook = openpyxl.load_workbook(io.BytesIO(data))
        assert workbook.properties.created == datetime(2026, 12, 3, 10, 15, 7)
        assert workbook.properties.modified == datetime(2026, 12, 3, 10, 15, 7)
    with zipfile.ZipFile(io.BytesIO(first["openpyxl"])) as archive:
        # Zip times count in steps of two seconds.
        assert {info.date_time for info in archive.infolist()} == {(2026, 12, 3, 10, 15, 6)}


def test_xlsx_stores_ids_skus_phones_and_postal_codes_as_text_with_leading_zeros(
    engine: str,
) -> None:
    line = order_line(
        order_id="0042", sku="00123", phone="0306555", postal_code="01234", supplier_id="007"
    )

    sheet = read_sheet(render_xlsx(frame(line), engine=engine))

    for column, value in [
        ("order_id", "0042"),
        ("sku", "00123"),
        ("phone", "0306555"),
        ("postal_code", "01234"),
        ("supplier_id", "007"),
    ]:
        assert cell(sheet, column).value == value
        assert cell(sheet, column).data_type == "s"


def test_xlsx_stores_quantities_prices_flags_and_times_as_typed_cells(engine: str) -> None:
    line = order_line(quantity=3, selling_price=Decimal("-12.50"), ship_to_store=True)

    sheet = read_sheet(render_xlsx(frame(line), engine=engine))

    assert cell(sheet, "quantity").value == 3
    assert cell(sheet, "selling_price").value == -12.5
    assert cell(sheet, "selling_price").data_type == "n"
    assert cell(sheet, "ship_to_store").value is True
    assert cell(sheet, "created_at").value == datetime(2026, 12, 3, 10, 15)
    assert cell(sheet, "created_at").number_format == 'yyyy-mm-dd"T"hh:mm:ss"Z"'


def test_xlsx_keeps_unicode_intact(engine: str) -> None:
    line = order_line(primary_name=UNICODE, description="Straße 中文 🎧", locality="Montréal")

    sheet = read_sheet(render_xlsx(frame(line), engine=engine))

    assert cell(sheet, "primary_name").value == UNICODE
    assert cell(sheet, "description").value == "Straße 中文 🎧"
    assert cell(sheet, "locality").value == "Montréal"


def test_xlsx_writes_nil_and_empty_text_as_empty_cells(engine: str) -> None:
    nils = {name: None for name in ORDER_FILE_COLUMNS}
    line = order_line(title="", middle_name=float("nan"), quantity=None)

    sheet = read_sheet(render_xlsx(frame(nils, line), engine=engine))

    assert all(c.value is None for c in sheet[2])
    for column in ("title", "middle_name", "quantity"):
        assert cell(sheet, column, row=3).value is None


def test_xlsx_writes_text_that_looks_like_its_own_xml_as_plain_text(engine: str) -> None:
    hostile = "<r><t>x</t></r></si><si><t>injected</t></r>"

    sheet = read_sheet(render_xlsx(frame(order_line(customer_notes=hostile)), engine=engine))

    assert cell(sheet, "customer_notes").value == hostile


def test_xlsx_keeps_control_characters_and_literal_escapes_as_excel_reads_them(
    engine: str,
) -> None:
    notes = "bell\x07, nul\x00, crlf\r\n, tab\t and a literal _x0041_"
    line = order_line(customer_notes=notes)

    sheet = read_sheet(render_xlsx(frame(line), engine=engine))

    assert as_excel_shows(cell(sheet, "customer_notes").value) == notes


# ---- column layout -----------------------------------------------------------------------


def write_layout(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "erp-layout.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_layout_renames_drops_and_reorders_columns_in_both_formats(
    tmp_path: Path, engine: str
) -> None:
    layout = ColumnLayout.load(
        write_layout(
            tmp_path,
            "# our ERP's import layout\ncolumn,header\n"
            "sku,ItemCode\n\norder_id,OrderNo\nquantity,\n",
        )
    )
    rows = frame(order_line(sku="00123", order_id="A-1", quantity=4))

    csv_rows = list(csv.reader(io.StringIO(render_csv(rows, layout).decode("utf-8"))))
    sheet = read_sheet(render_xlsx(rows, layout, engine=engine))

    assert csv_rows == [["ItemCode", "OrderNo", "quantity"], ["00123", "A-1", "4"]]
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["ItemCode", "OrderNo", "quantity"],
        ["00123", "A-1", 4],
    ]
    assert sheet.auto_filter.ref == "A1:C2"


def test_layout_apply_pairs_source_columns_with_headers() -> None:
    layout = ColumnLayout.default()

    pairs = layout.apply(ORDER_FILE_COLUMNS)

    assert pairs[0] == ("order_id", "order_id")
    assert [source for source, _ in pairs] == list(ORDER_FILE_COLUMNS)


def test_layout_with_an_unknown_column_names_the_file_the_line_and_the_name(
    tmp_path: Path,
) -> None:
    path = write_layout(tmp_path, "column,header\norder_id,OrderNo\nsku_code,Item\n")

    with pytest.raises(SettingsError) as raised:
        ColumnLayout.load(path)

    message = str(raised.value)
    assert str(path) in message
    assert "line 3" in message
    assert "'sku_code'" in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("order_id,OrderNo\n", "first row must be 'column,header'"),
        ("column,header\norder_id,=HYPERLINK()\n", "formula"),
        ("column,header\norder_id,Id\nsku,Id\n", "already used on line 2"),
        ("column,header\n", "lists no column"),
        ("column,header\norder_id,Id,extra\n", "got 3 cells"),
    ],
)
def test_a_malformed_layout_file_is_a_settings_error(
    tmp_path: Path, text: str, reason: str
) -> None:
    with pytest.raises(SettingsError, match=reason):
        ColumnLayout.load(write_layout(tmp_path, text))


def test_a_missing_layout_file_is_a_settings_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nowhere\.csv"):
        ColumnLayout.load(tmp_path / "nowhere.csv")
