"""The export step: new orders to the ERP drop as one batch of files, each order exactly once.

One call of :func:`export_orders` handles at most one batch, in three steps, each safe to crash
in:

1. **Stage.** In one transaction: claim every order not yet exported (created at or after the
   cut-off), render the batch's files, and record the batch with its file names and each file's
   bytes and sha256. A batch left staged by a crash is taken up again instead of a new one.
2. **Upload** each file's recorded bytes with :meth:`Drop.write_atomic` under its fixed name. The
   bytes are never rendered again for a staged batch (an XLSX file carries the time it was
   written, and the column layout may have changed since), so a retried upload finds the same
   bytes already in the drop, counts the file as delivered and never makes a second one.
3. **Mark** in one transaction: the batch delivered, its orders exported, and one Ordered
   acknowledgement per order still at PendingSupplier written to the outbox. Sending them is the
   outbox sender's job (:mod:`dropship_pipeline.fulfilment.outbox`).

The database is closed while the files travel: a slow or stalled SFTP server holds no DuckDB
connection open.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from dropship_pipeline.erp.drop import Drop, DropTargetExistsError, open_drop
from dropship_pipeline.erp.layout import ColumnLayout
from dropship_pipeline.erp.writers import render_csv, render_xlsx
from dropship_pipeline.settings import Settings
from dropship_pipeline.store import exports
from dropship_pipeline.store.db import connect, transaction
from dropship_pipeline.store.exports import ExportFile, StagedBatch

log = logging.getLogger(__name__)

PREVIEW_ROWS = 10
PREVIEW_COLUMNS = ("order_id", "line_number", "sku", "quantity")
"""What a preview may show: ids, SKUs and quantities, never a name, address or phone number."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ExportResult:
    """What one export step did; ``export_id`` is None when there was nothing to export."""

    export_id: str | None = None
    resumed: bool = False
    order_count: int = 0
    row_count: int = 0
    files: tuple[ExportFile, ...] = ()
    acks_queued: int = 0
    preview: list[dict[str, object]] = field(default_factory=list)

    @property
    def file_names(self) -> list[str]:
        return [file.file_name for file in self.files]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render(
    rows: pd.DataFrame,
    file_format: str,
    layout: ColumnLayout | None,
    *,
    written_at: datetime | None = None,
) -> bytes:
    """The bytes of one order file in ``file_format`` (``csv`` or ``xlsx``).

    ``written_at`` is the time an XLSX file says it was created and saved (default: now).
    """
    if file_format == "csv":
        return render_csv(rows, layout)
    if file_format == "xlsx":
        return render_xlsx(rows, layout, written_at=written_at)
    raise ValueError(f"Unknown export format {file_format!r}: use csv or xlsx.")


def export_orders(
    db_path: Path | str,
    drop: Drop,
    *,
    orders_dir: str,
    formats: Sequence[str],
    since: datetime | None = None,
    layout: ColumnLayout | None = None,
    max_orders: int | None = None,
    clock: Clock = _utc_now,
) -> ExportResult:
    """Deliver at most one batch of new orders to ``orders_dir`` in ``drop``.

    A batch staged by an earlier, interrupted call is finished first, under its own file names,
    with its own orders and its recorded bytes; no new batch is staged in that call. Raises
    DropError (from the drop) when an upload fails: the batch stays staged and the next call
    finishes it.
    """
    with connect(db_path) as con:
        batch = exports.unfinished_batch(con)
        resumed = batch is not None
        if batch is None:
            staged = _stage_batch(
                con, formats=formats, since=since, layout=layout, max_orders=max_orders, clock=clock
            )
            if staged is None:
                log.info("Export: no new orders to export")
                return ExportResult()
            batch, rows, contents = staged
        else:
            log.info(
                "Export %s was staged at %s and not delivered: finishing it",
                batch.export_id,
                batch.staged_at.isoformat(),
            )
            rows = exports.export_rows(con, batch.export_id)
            recorded = exports.staged_content(con, batch.export_id)
            contents = _bytes_to_upload(batch, recorded, rows, layout)

    uploads = _deliver(drop, orders_dir, batch, contents, clock=clock)
    with connect(db_path) as con:
        acks = _mark_delivered(con, batch, uploads, clock=clock)

    result = ExportResult(
        export_id=batch.export_id,
        resumed=resumed,
        order_count=batch.order_count,
        row_count=len(rows),
        files=batch.files,
        acks_queued=acks,
        preview=_preview(rows),
    )
    log.info(
        "Export %s delivered: %d orders, %d lines, %d file(s), %d acknowledgement(s) queued",
        result.export_id,
        result.order_count,
        result.row_count,
        len(result.files),
        acks,
    )
    return result


def export_with_settings(
    settings: Settings, *, drop: Drop | None = None, clock: Clock = _utc_now
) -> ExportResult:
    """:func:`export_orders` as the settings say; opens (and closes) the drop unless given one."""
    own = drop is None
    drop = drop if drop is not None else open_drop(settings)
    try:
        return export_orders(
            settings.db_path,
            drop,
            orders_dir=settings.orders_dir,
            formats=settings.export_formats,
            since=settings.export_since,
            layout=settings.order_layout,
            clock=clock,
        )
    finally:
        if own:
            drop.close()


def _stage_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    formats: Sequence[str],
    since: datetime | None,
    layout: ColumnLayout | None,
    max_orders: int | None,
    clock: Clock,
) -> tuple[StagedBatch, pd.DataFrame, dict[str, bytes]] | None:
    """Claim the new orders, render their files and record both; return the batch, its rows
    and each file's bytes, or None when there are no new orders."""
    with transaction(con):
        export_id = exports.next_export_id(con)
        order_count = exports.claim_orders(con, export_id, since=since, limit=max_orders)
        if not order_count:
            return None
        staged_at = clock().astimezone(UTC).replace(microsecond=0)
        rows = exports.export_rows(con, export_id)
        contents: dict[str, bytes] = {}
        files = []
        for file_format in formats:
            name = exports.file_name(staged_at, export_id, file_format)
            data = contents[name] = render(rows, file_format, layout, written_at=staged_at)
            files.append(ExportFile(file_format, name, sha256_hex(data), len(rows)))
        batch = StagedBatch(export_id, staged_at, order_count, tuple(files))
        exports.record_staged(con, batch, contents)
    log.info(
        "Staged export %s: %d orders, %d lines, as %s",
        export_id,
        order_count,
        len(rows),
        ", ".join(batch_file.file_name for batch_file in batch.files),
    )
    return batch, rows, contents


def _bytes_to_upload(
    batch: StagedBatch,
    recorded: Mapping[str, bytes],
    rows: pd.DataFrame,
    layout: ColumnLayout | None,
) -> dict[str, bytes]:
    """The bytes of each file of ``batch``: those recorded when it was staged.

    A batch staged by an earlier version, which did not record them, is rendered again (at its
    staged time, so most often to the same bytes); :func:`_deliver` says what counts then.
    """
    contents: dict[str, bytes] = {}
    for file in batch.files:
        data = recorded.get(file.file_name)
        if data is None:
            log.warning(
                "Export %s: %s was staged without its bytes (before schema version 3); "
                "rendering it again",
                batch.export_id,
                file.file_name,
            )
            data = render(rows, file.format, layout, written_at=batch.staged_at)
        elif sha256_hex(data) != file.sha256:
            raise ValueError(
                f"Export {batch.export_id}: the bytes recorded for {file.file_name} do not match "
                "its recorded sha256, so the database is damaged: restore it from a backup."
            )
        contents[file.file_name] = data
    return contents


def _deliver(
    drop: Drop,
    orders_dir: str,
    batch: StagedBatch,
    contents: Mapping[str, bytes],
    *,
    clock: Clock,
) -> dict[str, tuple[str, datetime]]:
    """Upload every file of the batch; return file name -> (sha256 delivered, when).

    A file already in the drop under its name with the staged sha256 counts as delivered.
    """
    drop.make_folder(orders_dir)
    uploads: dict[str, tuple[str, datetime]] = {}
    for file in batch.files:
        data = contents[file.file_name]
        digest = sha256_hex(data)
        path = f"{orders_dir}/{file.file_name}"
        if digest != file.sha256:
            # Only a batch staged without its bytes gets here: rendered again to other bytes
            # (the layout changed, or an older XLSX writer stamped the time in).
            if drop.exists(path):
                if sha256_hex(drop.read(path)) != file.sha256:
                    raise _name_taken(batch, drop, path)
                uploads[file.file_name] = (file.sha256, clock())
                continue
            log.warning(
                "Export %s: %s renders to other bytes than when staged; delivering the new "
                "rendering of the same orders",
                batch.export_id,
                file.file_name,
            )
        try:
            drop.write_atomic(path, data)
        except DropTargetExistsError as exc:
            raise _name_taken(batch, drop, path) from exc
        uploads[file.file_name] = (digest, clock())
    return uploads


def _name_taken(batch: StagedBatch, drop: Drop, path: str) -> DropTargetExistsError:
    return DropTargetExistsError(
        f"Export {batch.export_id}: {drop.location}/{path} holds other bytes than those staged; "
        "nothing was overwritten: if that file is not this batch's, move it away and run again."
    )


def _mark_delivered(
    con: duckdb.DuckDBPyConnection,
    batch: StagedBatch,
    uploads: Mapping[str, tuple[str, datetime]],
    *,
    clock: Clock,
) -> int:
    with transaction(con):
        return exports.record_delivered(con, batch.export_id, uploads, now=clock())


def _preview(rows: pd.DataFrame) -> list[dict[str, object]]:
    head = rows.loc[:, list(PREVIEW_COLUMNS)].head(PREVIEW_ROWS)
    return [
        {name: _plain(value) for name, value in record.items()}
        for record in head.to_dict(orient="records")
    ]


def _plain(value: object) -> object:
    """A preview cell as a plain Python value (numpy scalars unwrapped, nil as None)."""
    if value is None or pd.isna(value):
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value
