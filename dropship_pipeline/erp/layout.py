"""The columns of an order file, and the layout file that adapts them to one ERP.

CONTRACT.md section 4 fixes the default columns and their order (:data:`ORDER_FILE_COLUMNS`). An ERP
with a fixed import layout can be given a *layout file* that renames, drops and reorders them.

The layout file is a small CSV, chosen over TOML or JSON because an unknown name must be reported
with its line number (the standard ``csv`` module counts lines, ``tomllib`` does not report where
a value sat), and because the people who maintain ERP import layouts edit CSV in the spreadsheet
program they already use. It is read as UTF-8, a byte-order mark allowed::

    # Lines starting with '#' and blank lines are ignored.
    column,header
    order_id,OrderNumber
    sku,ItemCode
    quantity,
    selling_price,UnitPrice

The first row must be ``column,header``. Each further row names one column of
:data:`ORDER_FILE_COLUMNS` and the header to write for it; an empty header keeps the column's own
name. Rows give the output order; a column not listed is dropped. A listed column may appear more
than once under different headers, but every header must be unique and none may start with a
character that a spreadsheet reads as a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dropship_pipeline.errors import SettingsError

ORDER_FILE_COLUMNS: tuple[str, ...] = (
    "order_id",
    "printable_id",
    "po_reference",
    "created_at",
    "supplier_id",
    "seller_company_id",
    "seller_location_id",
    "ship_to_store",
    "shipping_method",
    "shipping_entity_id",
    "customer_id",
    "customer_type",
    "title",
    "primary_name",
    "middle_name",
    "family_name",
    "alternate_name",
    "customer_notes",
    "address_type",
    "attention_to",
    "business_name",
    "street_address_1",
    "street_address_2",
    "post_office_box_number",
    "locality",
    "region",
    "region_code",
    "postal_code",
    "country",
    "country_code",
    "phone",
    "address_notes",
    "line_number",
    "sku",
    "catalog_id",
    "description",
    "quantity",
    "selling_price",
)
"""The columns of an order file, in the order of CONTRACT.md section 4."""

FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP's list)."""

_LAYOUT_HEADER = ("column", "header")


@dataclass(frozen=True, slots=True)
class ColumnLayout:
    """Which columns an order file carries, in which order, under which headers.

    ``entries`` pairs a source column (a name of :data:`ORDER_FILE_COLUMNS`) with the header
    written for it. ``source`` is the layout file it came from, or None for the default layout.
    """

    entries: tuple[tuple[str, str], ...]
    source: Path | None = None

    @classmethod
    def default(cls) -> ColumnLayout:
        """The contract's layout: every column, in order, under its own name."""
        return cls(entries=tuple((name, name) for name in ORDER_FILE_COLUMNS))

    @classmethod
    def load(cls, path: str | Path) -> ColumnLayout:
        """Read a layout file (format in the module docstring).

        Raises SettingsError naming the file, and the line where there is one, when the file
        cannot be read, lacks the ``column,header`` row, names an unknown column, repeats a
        header, gives a header that starts a formula, or lists no column at all.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"Column layout file {path} cannot be read ({exc}); fix the path or the file."
            ) from None

        entries: list[tuple[str, str]] = []
        seen_headers: dict[str, int] = {}
        saw_header_row = False
        reader = csv.reader(text.splitlines())
        for cells in reader:
            line = reader.line_num
            cells = [cell.strip() for cell in cells]
            if not any(cells) or cells[0].startswith("#"):
                continue

            if not saw_header_row:
                if tuple(cell.lower() for cell in cells) != _LAYOUT_HEADER:
                    raise SettingsError(
                        f"Column layout file {path}, line {line}: the first row must be "
                        f"'column,header', got {','.join(cells)!r}."
                    )
                saw_header_row = True
                continue

            if len(cells) > 2:
                raise SettingsError(
                    f"Column layout file {path}, line {line}: expected 'column,header', "
                    f"got {len(cells)} cells."
                )
            column = cells[0]
            header = cells[1] if len(cells) == 2 and cells[1] else column
            if column not in ORDER_FILE_COLUMNS:
                raise SettingsError(
                    f"Column layout file {path}, line {line}: unknown column {column!r}; "
                    "use a column name of the order file (CONTRACT.md section 4)."
                )
            if header.startswith(FORMULA_TRIGGERS):
                raise SettingsError(
                    f"Column layout file {path}, line {line}: header {header!r} starts with "
                    f"{header[0]!r}, which a spreadsheet reads as a formula; rename it."
                )
            if header in seen_headers:
                raise SettingsError(
                    f"Column layout file {path}, line {line}: header {header!r} is already "
                    f"used on line {seen_headers[header]}; give each column its own header."
                )
            seen_headers[header] = line
            entries.append((column, header))

        if not entries:
            raise SettingsError(
                f"Column layout file {path} lists no column; add 'column,header' rows or "
                "remove the layout setting."
            )
        return cls(entries=tuple(entries), source=path)

    @property
    def headers(self) -> list[str]:
        """The header row this layout writes."""
        return [header for _, header in self.entries]

    def apply(self, columns: Iterable[str]) -> list[tuple[str, str]]:
        """Pair each output column with its header, in output order.

        ``columns`` are the columns at hand (usually a DataFrame's). Raises ValueError naming the
        first column the layout needs that is not among them.
        """
        available = set(columns)
        for column, _ in self.entries:
            if column not in available:
                where = f"layout file {self.source}" if self.source else "default layout"
                raise ValueError(f"The order rows lack column {column!r}, which the {where} needs.")
        return list(self.entries)
