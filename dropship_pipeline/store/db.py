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
#: With the small row groups below, a 100,000-event backfill (benchmarks/ingest.py) peaked at
#: 296-312 MB with 64 MB here, 296-299 MB with 48 MB and 276-284 MB with 32 MB.
MEMORY_LIMIT_MB = 32
#: Checkpoint once the WAL holds this share of the memory limit. Rows that go through the WAL
#: (those of any transaction that fills no whole row group: a poll's pages, or the orders of a
#: backfill batch whose events are half status updates) stay in DuckDB's memory until the next
#: checkpoint, and it cannot spill them. With checkpoints at 256 MB of WAL, such a backfill ran
#: out of its 32 MB after about 67 batches (167,000 events). A full backfill batch writes its
#: rows straight into the file (see ROW_GROUP_SIZE), so this costs it nothing measurable.
CHECKPOINT_SHARE = 4
#: Rows per row group, DuckDB's smallest (its default is 122,880). A transaction that fills a
#: row group writes it into the database file at once instead of logging its rows in the WAL,
#: and a backfill batch of 2,500 events fills one. Storing 50,000 events wrote 188 MB of WAL at
#: 70 us an event with the default, 1 MB at 41-53 us with 2,048 (benchmarks/store.py). The data
#: takes about 2 times the space, as smaller groups compress less (see MAX_VACUUM_TASKS for
#: the groups a batch leaves part-full). Every connection must use the same size: a
#: checkpoint under another size rewrites the tables into groups of that size.
ROW_GROUP_SIZE = 2048
#: Checkpoints do not merge part-full row groups. Each backfill batch leaves one (2,500 events
#: fill a group of 2,048 and start another), and merging them rewrote nearly every group: the
#: closing checkpoint of 50,000 events took 0.9-1.0 s of CPU and left a 71 MB file, half of it
#: free blocks; without merging it takes 0.02 s and leaves 42 MB. Row groups whose rows are all
#: deleted are still freed; rows deleted from a group that keeps others keep their space until
#: the rest go too. Here that is the current page's feed_pages row, replaced once a poll, and
#: staged export bytes (erp_export_content) while other exports in their group wait.
MAX_VACUUM_TASKS = 0
#: One DuckDB thread: the pipeline's statements are small, and during a backfill the parse
#: workers need the other core. Back to back in benchmarks/ingest.py, one thread took as long
#: as two and kept the crawl's peak memory 20 MB lower (244 MB against 265 MB).
THREADS = 1
#: The name the file is attached under; every statement runs with it as the default database.
DATABASE = "pipeline"


@contextmanager
def connect(path: Path | str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database (creating its folder), migrate it unless read-only, close it after."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config=duckdb_config())
    try:
        # The row group size is an option of ATTACH only, not of connect().
        options = f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}" + (", READ_ONLY" if read_only else "")
        con.execute(f"ATTACH {_quote(str(path))} AS {DATABASE} ({options})")
        con.execute(f"USE {DATABASE}")
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()


def duckdb_config() -> dict[str, str | bool | int | float | list[str]]:
    """The settings every connection opens with (see the constants above)."""
    return {
        "memory_limit": f"{MEMORY_LIMIT_MB}MB",
        "checkpoint_threshold": f"{max(1, MEMORY_LIMIT_MB // CHECKPOINT_SHARE)}MB",
        "write_buffer_row_group_count": 1,
        "max_vacuum_tasks": MAX_VACUUM_TASKS,
        "threads": THREADS,
        # Buffers come from memory DuckDB takes once and keeps (the memory limit's worth), not
        # from fresh pages the kernel faults in for every block: in benchmarks/ingest.py, back
        # to back, the crawl's process used 0.8 s less CPU for 100,000 events (7.7 s before),
        # at 20 MB more peak memory.
        "block_allocator_memory": f"{MEMORY_LIMIT_MB}MB",
    }


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


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
