"""The DuckDB file: versioned migrations, on real files."""

from __future__ import annotations

from pathlib import Path

from dropship_pipeline.store import db
from dropship_pipeline.store.db import connect, migrate
from dropship_pipeline.store.schema import MIGRATIONS


def test_a_new_file_gets_every_migration_once(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"

    with connect(db) as con:
        versions = [
            row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()
        ]
        assert migrate(con) == []  # nothing left to apply

    assert versions == [number for number, _, _ in MIGRATIONS]


def test_raw_entry_xml_is_stored_whole_and_compressed_with_zstd(tmp_path: Path) -> None:
    db = tmp_path / "events.duckdb"
    xml = "<entry>" + "<order-item>Zoë 保护壳</order-item>" * 50 + "</entry>"

    with connect(db) as con:
        con.execute(
            "INSERT INTO feed_events SELECT 'e' || i, 'order-created', 'o' || i, NULL,"
            " TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL 1 MINUTE, NULL, 'p1',"
            " ?, now(), i FROM range(1, 3001) t(i)",
            [xml],
        )
        con.execute("CHECKPOINT")
        compressions = {
            row[0]
            for row in con.execute(
                "SELECT compression FROM pragma_storage_info('feed_events')"
                " WHERE column_name = 'content_xml' AND segment_type = 'VARCHAR'"
            ).fetchall()
        }
    with connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT count(*), bool_and(content_xml = ?) FROM feed_events", [xml]
        ).fetchone()

    assert compressions == {"ZSTD"}
    assert rows == (3000, True)


def test_every_connection_writes_small_row_groups_whatever_the_path(tmp_path: Path) -> None:
    """A backfill batch must fill whole row groups to skip the WAL (see ROW_GROUP_SIZE)."""
    path = tmp_path / "o'brien's data" / "pipeline.duckdb"
    with connect(path) as con:
        con.execute("CREATE TABLE probe AS SELECT range AS n FROM range(5000)")
    with connect(path) as con:
        groups = con.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('probe')"
        ).fetchone()
        applied = con.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert groups == (3,)  # 2,048 + 2,048 + 904 rows
    assert applied == (len(MIGRATIONS),)


def test_closing_keeps_the_row_groups_batches_left_part_full(tmp_path: Path) -> None:
    """Merging them rewrote nearly the whole file at every close (see MAX_VACUUM_TASKS)."""
    path = tmp_path / "pipeline.duckdb"
    with connect(path) as con:
        con.execute("CREATE TABLE probe (n BIGINT)")
        for batch in range(4):  # like backfill batches of 2,500 events: 2,048 + 452 each
            con.execute("INSERT INTO probe SELECT range FROM range(?, ?)", [batch, batch + 2500])
    with connect(path) as con:
        groups = con.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('probe')"
        ).fetchone()
        rows = con.execute("SELECT count(*) FROM probe").fetchone()
    assert rows == (10_000,)
    assert groups == (8,)  # merged, they would be fewer


def test_rows_logged_in_the_wal_never_outgrow_the_memory_limit(tmp_path: Path, monkeypatch) -> None:
    """Batches too small to fill a row group go through the WAL and stay in memory until a
    checkpoint; DuckDB cannot spill them. Far more of them than the memory limit must fit."""
    monkeypatch.setattr(db, "MEMORY_LIMIT_MB", 16)
    path = tmp_path / "small-batches.duckdb"
    xml = "<entry>" + "<description>Étui folio en cuir</description>" * 100 + "</entry>"

    with connect(path) as con:
        for batch in range(40):  # 1,000 events of 4 KB each: 160 MB of raw XML in all
            con.execute(
                "INSERT INTO feed_events SELECT 'e' || i, 'order-created', 'o' || i, NULL,"
                " TIMESTAMPTZ '2026-01-01 00:00:00+00', NULL, 'p1', ? || i, now(), i"
                " FROM range(?, ?) t(i)",
                [xml, batch * 1000, (batch + 1) * 1000],
            )
        stored = con.execute("SELECT count(DISTINCT entry_id) FROM feed_events").fetchone()

    assert stored == (40_000,)
