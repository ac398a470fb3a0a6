"""Order files for the ERP: the bytes of one CSV or XLSX file, one row per order line.

The input is a DataFrame with the columns of :data:`ORDER_FILE_COLUMNS` (extra columns are
ignored), one row per order line, in the order the rows are to be written. Every cell may be nil
(None, NaN, NA, NaT). Columns are typed by name:

- ``quantity`` and ``line_number`` are whole numbers,
- ``selling_price`` is a decimal amount (Decimal, float or numeric text),
- ``ship_to_store`` is a boolean,
- ``created_at`` is a moment in time (tz-aware; a naive value is taken as UTC),
- every other column is text, written exactly as given: ids, SKUs, phone numbers and postal codes
  keep their leading zeros and are never turned into numbers.

**Formula injection.** A text value that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is written with a single quote ``'`` in front of it, the convention OWASP recommends for
CSV injection: spreadsheets then show it as text, and a reader can tell the value was neutralised
and strip the quote. This holds for both formats. In XLSX every text value is additionally
written as a string cell, never a formula cell, whatever it starts with, and never an error
cell either: a SKU ``#N/A`` stays the text ``#N/A``. Numeric columns are numbers, not text: a
negative price stays a number and gets no quote.

**CSV**: UTF-8 without byte-order mark, comma separated, ``"`` quoting where needed,
``\\r\\n`` line ends, header row first. Nil is the empty string, booleans are ``true`` and
``false``, ``created_at`` is ``2026-12-03T10:15:00Z`` (UTC, whole seconds), prices are the
shortest plain decimal text of their exact value (``39.99``, ``100``, never ``1E+2`` or
``39.990000000000002``).

**XLSX**: one sheet ``Orders``, a bold header row frozen above the data, an autofilter over header
and data. Text columns are string cells, ``quantity``, ``line_number`` and ``selling_price`` are
number cells, ``ship_to_store`` is a boolean cell, ``created_at`` is a date cell in UTC shown as
``yyyy-mm-ddThh:mm:ssZ`` (Excel has no time zones). Nil is a cell that is not written. Text longer
than Excel's limit of 32,767 characters is cut to it, with a warning in the log. The workbook's
created and modified times, and the times of the entries in its zip archive, are ``written_at``
(default: now), so the same rows written with the same ``written_at`` give the same bytes.

Two XLSX engines write the same cells: ``xlsxwriter`` (the default: the faster one, see
``benchmarks/export.py``) and ``openpyxl`` in write-only mode. Control characters, which XML
cannot carry, are stored as Excel's ``_xHHHH_`` escapes by both (xlsxwriter escapes carriage
returns too). Excel decodes them; openpyxl-based readers show them as written, as they do for
files Excel itself saves.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import numpy as np
import pandas as pd

from dropship_pipeline.erp.layout import FORMULA_TRIGGERS, ORDER_FILE_COLUMNS, ColumnLayout

__all__ = [
    "DEFAULT_XLSX_ENGINE",
    "ORDER_FILE_COLUMNS",
    "XLSX_SHEET_NAME",
    "ColumnLayout",
    "XlsxEngine",
    "neutralise_formula",
    "render_csv",
    "render_xlsx",
]

logger = logging.getLogger(__name__)

XlsxEngine = Literal["xlsxwriter", "openpyxl"]
# openpyxl, a core dependency, is within 1.1x of the plain write-only baseline
# (benchmarks/export.py); xlsxwriter is faster still but would be one more runtime package with
# quirks of its own to guard against, so it stays an option of the benchmark extra.
DEFAULT_XLSX_ENGINE: XlsxEngine = "openpyxl"
XLSX_SHEET_NAME = "Orders"
XLSX_TIMESTAMP_FORMAT = 'yyyy-mm-dd"T"hh:mm:ss"Z"'
EXCEL_MAX_TEXT = 32_767
COPY_CHUNK = 1 << 20
"""Bytes per read when a worksheet's temporary file is copied into the archive."""

INTEGER_COLUMNS = frozenset({"line_number", "quantity"})
DECIMAL_COLUMNS = frozenset({"selling_price"})
BOOLEAN_COLUMNS = frozenset({"ship_to_store"})
TIMESTAMP_COLUMNS = frozenset({"created_at"})

_STRING = pd.StringDtype("pyarrow")
# Excel reads _xHHHH_ in a string as an escaped character: control characters (not allowed in
# XML) are written that way, and a literal _xHHHH_ gets its underscore escaped as _x005F_.
_EXCEL_ESCAPE_LITERAL = re.compile(r"_(x[0-9A-Fa-f]{4}_)")
_EXCEL_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EXCEL_NEEDS_ESCAPE = r"_x[0-9A-Fa-f]{4}_|[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"

Kind = Literal["text", "integer", "decimal", "boolean", "timestamp"]


def neutralise_formula(text: str) -> str:
    """Return ``text`` with a ``'`` in front when it starts with a formula trigger."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def render_csv(rows: pd.DataFrame, layout: ColumnLayout | None = None) -> bytes:
    """Render order lines as an order-file CSV (format in the module docstring).

    Raises ValueError when ``rows`` lack a column the layout needs, or a number, boolean or time
    column holds a value that is none of these.
    """
    pairs = (layout or ColumnLayout.default()).apply(rows.columns)

    columns = [_csv_values(rows[source], source) for source, _ in pairs]

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([header for _, header in pairs])
    writer.writerows(zip(*columns, strict=True))
    data = buffer.getvalue().encode("utf-8")

    logger.debug("Rendered %d order lines as CSV (%d bytes).", len(rows), len(data))
    return data


def render_xlsx(
    rows: pd.DataFrame,
    layout: ColumnLayout | None = None,
    *,
    engine: XlsxEngine = DEFAULT_XLSX_ENGINE,
    written_at: datetime | None = None,
) -> bytes:
    """Render order lines as an order-file XLSX workbook (format in the module docstring).

    ``written_at`` (tz-aware; naive is taken as UTC) is the time the workbook says it was
    written. Raises ValueError as :func:`render_csv` does, and for an unknown ``engine``.
    """
    if engine not in ("xlsxwriter", "openpyxl"):
        raise ValueError(f"Unknown XLSX engine {engine!r}: use 'xlsxwriter' or 'openpyxl'.")
    pairs = (layout or ColumnLayout.default()).apply(rows.columns)
    moment = _whole_utc_seconds(written_at)

    headers = [header for _, header in pairs]
    columns = [_xlsx_column(rows[source], source) for source, _ in pairs]

    if engine == "xlsxwriter":
        data = _write_with_xlsxwriter(headers, columns, len(rows), moment)
    else:
        data = _write_with_openpyxl(headers, columns, len(rows), moment)

    logger.debug(
        "Rendered %d order lines as XLSX with %s (%d bytes).", len(rows), engine, len(data)
    )
    return data


def _whole_utc_seconds(moment: datetime | None) -> datetime:
    """``moment`` (now when None) as a naive UTC time cut to whole seconds."""
    moment = datetime.now(UTC) if moment is None else moment
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


# ---- column preparation ------------------------------------------------------------------


def _kind(column: str) -> Kind:
    if column in INTEGER_COLUMNS:
        return "integer"
    if column in DECIMAL_COLUMNS:
        return "decimal"
    if column in BOOLEAN_COLUMNS:
        return "boolean"
    if column in TIMESTAMP_COLUMNS:
        return "timestamp"
    return "text"


def _is_nil(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float):
        return value != value
    if isinstance(value, Decimal):
        return value.is_nan()
    return isinstance(value, np.datetime64) and np.isnat(value)


def _text(series: pd.Series) -> pd.Series:
    """The column as pyarrow-backed strings, NA for nil, formula triggers neutralised."""
    text = series.astype(_STRING)
    risky = text.str.startswith(FORMULA_TRIGGERS)
    if risky.any():
        text = text.where(~risky.fillna(False).astype(bool), "'" + text)
    return text


def _integers(series: pd.Series, column: str) -> pd.Series:
    try:
        return pd.to_numeric(series).astype("Int64")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Column {column!r} must hold whole numbers ({exc}).") from None


def _decimal(value: object, column: str) -> Decimal | None:
    if _is_nil(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"Column {column!r} must hold amounts, got the boolean {value!r}.")
    try:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, float | np.floating):
            amount = Decimal(repr(float(value)))
        elif isinstance(value, int | np.integer):
            amount = Decimal(int(value))
        else:
            amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"Column {column!r} must hold amounts, got {value!r}.") from None
    if amount.is_nan():
        return None
    if not amount.is_finite():
        raise ValueError(f"Column {column!r} must hold finite amounts, got {value!r}.")
    return amount


def _decimal_text(amount: Decimal | None) -> str:
    if amount is None:
        return ""
    if amount.is_zero():
        return "0"
    return format(amount.normalize(), "f")


def _boolean(value: object, column: str) -> bool | None:
    if _is_nil(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise ValueError(f"Column {column!r} must hold true or false, got {value!r}.")


def _timestamps(series: pd.Series, column: str) -> pd.Series:
    """Naive UTC timestamps cut to whole seconds, NaT for nil."""
    try:
        moments = pd.to_datetime(series, utc=True, format="ISO8601")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Column {column!r} must hold points in time ({exc}).") from None
    return moments.dt.floor("s").dt.tz_convert(None)


def _csv_values(series: pd.Series, column: str) -> list[str]:
    kind = _kind(column)
    if kind == "text":
        return _text(series).to_numpy(dtype=object, na_value="").tolist()
    if kind == "integer":
        return (
            _integers(series, column).astype(_STRING).to_numpy(dtype=object, na_value="").tolist()
        )
    if kind == "decimal":
        # Prices repeat (a catalogue has few), so each distinct value is converted once.
        texts: dict[tuple[type, object], str] = {}
        out: list[str] = []
        for value in series.tolist():
            key = (value.__class__, value)
            text = texts.get(key)
            if text is None:
                text = texts[key] = _decimal_text(_decimal(value, column))
            out.append(text)
        return out
    if kind == "boolean":
        names = {True: "true", False: "false", None: ""}
        return [names[_boolean(value, column)] for value in series.tolist()]

    moments = _timestamps(series, column).to_numpy(dtype="datetime64[s]")
    stamped = np.char.add(np.datetime_as_string(moments, unit="s"), "Z")
    return np.where(np.isnat(moments), "", stamped).tolist()


@dataclass(frozen=True, slots=True)
class _XlsxColumn:
    """One column ready for a workbook: Python values, None where no cell is written."""

    kind: Kind
    values: list[Any]
    # Text that xlsxwriter would copy into the file as raw XML (see _write_with_xlsxwriter).
    has_rich_lookalike: bool = False
    # Text with control characters or literal _xHHHH_ sequences (see _excel_escape).
    needs_excel_escape: bool = False


def _xlsx_column(series: pd.Series, column: str) -> _XlsxColumn:
    kind = _kind(column)
    if kind == "integer":
        numbers = _integers(series, column).to_numpy(dtype=object, na_value=None)
        return _XlsxColumn(kind, [None if n is None else int(n) for n in numbers])
    if kind == "decimal":
        amounts = (_decimal(value, column) for value in series.tolist())
        return _XlsxColumn(kind, [None if a is None else float(a) for a in amounts])
    if kind == "boolean":
        return _XlsxColumn(kind, [_boolean(value, column) for value in series.tolist()])
    if kind == "timestamp":
        moments = _timestamps(series, column).dt.to_pydatetime().tolist()
        return _XlsxColumn(kind, [None if _is_nil(m) else m for m in moments])

    text = _text(series)
    text = text.mask(text.eq("").fillna(False).astype(bool))  # empty text is an empty cell
    text = _cut_to_excel_limit(text, column)
    rich = text.str.startswith("<r>") & text.str.endswith("</r>")
    escape = text.str.contains(_EXCEL_NEEDS_ESCAPE, regex=True)
    return _XlsxColumn(
        kind,
        text.to_numpy(dtype=object, na_value=None).tolist(),
        has_rich_lookalike=bool(rich.fillna(False).any()),
        needs_excel_escape=bool(escape.fillna(False).any()),
    )


def _cut_to_excel_limit(text: pd.Series, column: str) -> pd.Series:
    """Cut strings longer than Excel allows (counted in UTF-16 units, as Excel counts)."""
    suspects = text.str.len().fillna(0) > EXCEL_MAX_TEXT // 2
    if not suspects.any():
        return text

    cut = 0
    text = text.copy()
    for index in text.index[suspects.to_numpy()]:
        value = text[index]
        units = value.encode("utf-16-le")
        if len(units) // 2 <= EXCEL_MAX_TEXT:
            continue
        kept = units[: EXCEL_MAX_TEXT * 2].decode("utf-16-le", errors="ignore")
        text[index] = kept
        cut += 1
    if cut:
        logger.warning(
            "Cut %d value(s) of column %s to Excel's limit of %d characters.",
            cut,
            column,
            EXCEL_MAX_TEXT,
        )
    return text


def _excel_escape(text: str) -> str:
    """Write control characters as Excel's ``_xHHHH_`` escapes, escaping literal ones first."""
    text = _EXCEL_ESCAPE_LITERAL.sub(r"_x005F_\1", text)
    return _EXCEL_CONTROL.sub(lambda match: f"_x{ord(match.group()):04X}_", text)


# ---- workbook engines --------------------------------------------------------------------


def _write_with_xlsxwriter(
    headers: Sequence[str], columns: Sequence[_XlsxColumn], count: int, written_at: datetime
) -> bytes:
    try:
        import xlsxwriter
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "XLSX export with engine='xlsxwriter' needs the xlsxwriter package: install it, "
            "or pass engine='openpyxl'."
        ) from None

    buffer = io.BytesIO()
    # constant_memory streams rows to a temporary file (rows must come in order, and do);
    # the strings_to_* options keep write() from ever guessing a type, though only the typed
    # write_* methods are called below.
    options = {
        "constant_memory": True,
        "strings_to_formulas": False,
        "strings_to_numbers": False,
        "strings_to_urls": False,
    }
    workbook = xlsxwriter.Workbook(buffer, options)
    # xlsxwriter dates its zip entries 1980 already; "created" stands for "modified" too.
    workbook.set_properties({"created": written_at.replace(tzinfo=UTC)})
    try:
        sheet = workbook.add_worksheet(XLSX_SHEET_NAME)
        bold = workbook.add_format({"bold": True})
        moment = workbook.add_format({"num_format": XLSX_TIMESTAMP_FORMAT})

        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, count, len(headers) - 1)
        for index, header in enumerate(headers):
            sheet.write_string(0, index, header, bold)

        def write_text_safely(row: int, col: int, value: str) -> None:
            # xlsxwriter copies a string that starts with "<r>" and ends with "</r>" into the
            # file unescaped, taking it for its own rich-text XML. Writing such a value as a
            # rich string of plain fragments gets every fragment escaped; it reads back whole.
            if value.startswith("<r>") and value.endswith("</r>"):
                sheet.write_rich_string(row, col, value[:1], value[1:3], value[3:])
            else:
                sheet.write_string(row, col, value)

        def write_moment(row: int, col: int, value: datetime) -> None:
            sheet.write_datetime(row, col, value, moment)

        writers: list[Callable[[int, int, Any], object]] = []
        for column in columns:
            if column.kind == "text":
                writers.append(
                    write_text_safely if column.has_rich_lookalike else sheet.write_string
                )
            elif column.kind == "boolean":
                writers.append(sheet.write_boolean)
            elif column.kind == "timestamp":
                writers.append(write_moment)
            else:
                writers.append(sheet.write_number)

        for row, values in enumerate(zip(*(c.values for c in columns), strict=True), start=1):
            for col, value in enumerate(values):
                if value is not None:
                    writers[col](row, col, value)
    finally:
        workbook.close()
    return buffer.getvalue()


class _StampedZip(zipfile.ZipFile):
    """A zip archive whose entries all carry one time, instead of the moment each is added."""

    def __init__(self, file: io.BytesIO, date_time: tuple[int, int, int, int, int, int]) -> None:
        super().__init__(file, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        self._date_time = date_time

    def writestr(  # type: ignore[override]
        self,
        zinfo_or_arcname: str | zipfile.ZipInfo,
        data: bytes | str,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        if isinstance(zinfo_or_arcname, str):
            info = zipfile.ZipInfo(zinfo_or_arcname, self._date_time)
            info.compress_type = self.compression
            info.external_attr = 0o600 << 16  # what ZipFile gives a name added this way
            zinfo_or_arcname = info
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(  # type: ignore[override]
        self,
        filename: str,
        arcname: str | None = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        # openpyxl adds a write-only sheet from its temporary file, which ZipFile would date
        # with the file's modification time.
        info = zipfile.ZipInfo.from_file(filename, arcname)
        info.date_time = self._date_time
        info.compress_type = self.compression if compress_type is None else compress_type
        with open(filename, "rb") as source, self.open(info, "w") as target:
            shutil.copyfileobj(source, target, COPY_CHUNK)


def _write_with_openpyxl(
    headers: Sequence[str], columns: Sequence[_XlsxColumn], count: int, written_at: datetime
) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.writer.excel import ExcelWriter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(XLSX_SHEET_NAME)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{count + 1}"
    # openpyxl types a plain string by its text: "=..." becomes a formula cell and "#N/A" and
    # the other error codes an error cell. Only those few values need an explicit string cell;
    # building one for every value would cost a cell object each.
    retyped = frozenset(ERROR_CODES)

    def text_cell(value: str, *, bold: bool = False) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value)
        cell.data_type = "s"
        if bold:
            cell.font = Font(bold=True)
        return cell

    def moment_cell(value: datetime) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = XLSX_TIMESTAMP_FORMAT
        return cell

    prepared: list[list[Any]] = []
    for column in columns:
        values = column.values
        if column.kind == "text":
            if column.needs_excel_escape:
                values = [None if v is None else _excel_escape(v) for v in values]
            values = [
                text_cell(v) if v is not None and (v in retyped or v.startswith("=")) else v
                for v in values
            ]
        elif column.kind == "timestamp":
            values = [None if v is None else moment_cell(v) for v in values]
        prepared.append(values)

    sheet.append([text_cell(header, bold=True) for header in headers])
    for row in zip(*prepared, strict=True):
        sheet.append(row)

    # Workbook.save would stamp the current time into docProps/core.xml and every zip entry.
    workbook.properties.created = workbook.properties.modified = written_at
    buffer = io.BytesIO()
    with _StampedZip(buffer, written_at.timetuple()[:6]) as archive:
        ExcelWriter(workbook, archive).save()
    return buffer.getvalue()
