"""The analysts' copy of the database, published after each writing run.

DuckDB has one writer, and a reader of the live file would hold it open against the pipeline.
Analysts open the snapshot instead: a whole copy taken after a checkpoint, written under a
temporary name and renamed over the previous one, so a reader sees one snapshot or the next,
never half of one, and an open reader keeps the copy it opened.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dropship_pipeline.store.db import connect

log = logging.getLogger(__name__)

#: The tables whose row counts the snapshot reports.
REPORTED_TABLES = ("feed_events", "orders", "order_items", "erp_exports", "status_updates")


@dataclass(frozen=True)
class Snapshot:
    path: Path
    size_bytes: int
    row_counts: dict[str, int]


def publish_snapshot(db_path: Path | str, snapshot_path: Path | str) -> Snapshot:
    """Checkpoint the database and replace the snapshot with a copy of it, atomically."""
    db_path, snapshot_path = Path(db_path), Path(snapshot_path)
    with connect(db_path) as con:
        con.execute("CHECKPOINT")
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(
        dir=snapshot_path.parent, prefix=f".{snapshot_path.name}.", suffix=".part"
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as target, db_path.open("rb") as source:
            shutil.copyfileobj(source, target, length=1 << 20)
            target.flush()
            os.fsync(target.fileno())
        counts = _row_counts(temp)
        os.replace(temp, snapshot_path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    size = snapshot_path.stat().st_size
    log.info("published the analysts' snapshot %s (%d bytes)", snapshot_path, size)
    return Snapshot(path=snapshot_path, size_bytes=size, row_counts=counts)


def _row_counts(path: Path) -> dict[str, int]:
    """Open the copy read-only, which also proves it is a whole database."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        present = {name for (name,) in con.execute("SHOW TABLES").fetchall()}
        counts = {}
        for table in REPORTED_TABLES:
            if table in present:
                row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
                counts[table] = int(row[0]) if row else 0
        return counts
    finally:
        con.close()
