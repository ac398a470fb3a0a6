"""Opening the pipeline's DuckDB file and bringing its schema up to date.

Connections are short-lived: open one for a step with :func:`connect`, which applies pending
migrations and always closes the connection. DuckDB allows one writing process; the Dagster
runs that write share a concurrency pool of size 1 for that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from dropship_pipeline.store.schema import MIGRATIONS

log = logging.getLogger(__name__)


#: DuckDB would otherwise cache up to 80% of the machine's memory; past this it spills to disk.
#: A 100,000-event backfill (benchmarks/ingest.py) peaked at 280 MB with 64 MB here and 310 MB
#: with 96 MB, in the same time within the noise of the machine.
MEMORY_LIMIT = "64MB"
#: Checkpoint after this much WAL rather than DuckDB's default 16 MB: a backfill writes a few
#: MB of raw XML per batch, and each checkpoint rewrites what changed. Closing checkpoints too.
CHECKPOINT_THRESHOLD = "256MB"


@contextmanager
def connect(path: Path | str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database (creating its folder), migrate it unless read-only, close it after."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        str(path),
        read_only=read_only,
        config={"memory_limit": MEMORY_LIMIT, "checkpoint_threshold": CHECKPOINT_THRESHOLD},
    )
    try:
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration newer than the database's version, each in its own transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    applied = []
    for version, name, statements in MIGRATIONS:
        if version <= current:
            continue
        with transaction(con):
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
        log.info("applied migration %d (%s)", version, name)
        applied.append(version)
    return applied


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckDB transaction: committed when the block ends, rolled back when it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
