"""Unique keys on the exports and the outbox (migration 3), on a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from dropship_pipeline.store import db as db_module
from dropship_pipeline.store.db import connect, transaction
from dropship_pipeline.store.schema import MIGRATIONS

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)

EXPORT_ROW = (
    "INSERT INTO erp_exports (export_id, file_name, format, order_count, row_count, sha256, "
    "state, staged_at) VALUES ('000001', 'orders_x_000001.csv', 'csv', 1, 1, 'ab', 'staged', ?)"
)
EXPORT_ORDER_ROW = "INSERT INTO erp_export_orders VALUES ('000001', 'order-1')"
UPDATE_ROW = (
    "INSERT INTO status_updates (update_id, order_id, kind, status_code, payload, created_at, "
    "seq) VALUES ('ack:order-1', 'order-1', 'order', 1, '{}', ?, 1)"
)


def version_2_database(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database as the release before migration 3 left it."""
    with monkeypatch.context() as patch:
        patch.setattr(db_module, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 2])
        with connect(path):
            pass


def version(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("insert", "params"),
    [(EXPORT_ROW, [T0]), (EXPORT_ORDER_ROW, []), (UPDATE_ROW, [T0])],
    ids=["erp_exports.file_name", "erp_export_orders.order_id", "status_updates.update_id"],
)
def test_a_key_written_twice_is_refused_by_the_database(
    tmp_path: Path, insert: str, params: list[object]
) -> None:
    with connect(tmp_path / "keys.duckdb") as con:
        con.execute(insert, params)

        with pytest.raises(duckdb.ConstraintException, match="Duplicate key"):
            con.execute(insert, params)
        with pytest.raises(duckdb.ConstraintException), transaction(con):
            con.execute(insert, params)


def test_a_database_from_the_release_before_keeps_its_rows_and_gains_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.duckdb"
    version_2_database(path, monkeypatch)
    with duckdb.connect(str(path)) as con:
        con.execute(EXPORT_ROW, [T0])
        con.execute(EXPORT_ORDER_ROW)
        con.execute(UPDATE_ROW, [T0])

    with connect(path) as con:
        update = con.execute(
            "SELECT state, attempts, retry_count, attempted_at, response FROM status_updates"
        ).fetchall()
        with pytest.raises(duckdb.ConstraintException):
            con.execute(EXPORT_ORDER_ROW)

    assert version(path) == max(version for version, _, _ in MIGRATIONS)
    assert update == [("pending", 0, 0, None, None)]


def test_a_database_with_a_repeated_key_is_not_migrated_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "repeated.duckdb"
    version_2_database(path, monkeypatch)
    with duckdb.connect(str(path)) as con:
        con.execute(UPDATE_ROW, [T0])
        con.execute(UPDATE_ROW, [T0])

    with pytest.raises(duckdb.Error) as raised, connect(path):
        pass

    message = str(raised.value)
    assert "status_updates has repeated update_id values" in message
    assert "GROUP BY 1" in message  # the query that finds them
    assert version(path) == 2  # rolled back whole: no half-migrated schema
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {name for (name,) in con.execute("SHOW TABLES").fetchall()}
    assert "erp_export_content" not in tables
