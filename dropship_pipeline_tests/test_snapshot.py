"""The analysts' snapshot: a whole, atomic copy that never holds the pipeline's file."""

from __future__ import annotations

import duckdb

from dropship_pipeline.store.db import connect
from dropship_pipeline.store.snapshot import publish_snapshot


def add_orders(db, count: int, start: int = 0) -> None:
    with connect(db) as con:
        for n in range(start, start + count):
            con.execute(
                "INSERT INTO orders (order_id, created_entry_id, received_at) VALUES (?, ?, now())",
                [f"order-{n}", f"entry-{n}"],
            )


def test_the_snapshot_is_a_whole_copy_with_row_counts(tmp_path):
    db, snapshot_path = tmp_path / "live.duckdb", tmp_path / "out" / "snapshot.duckdb"
    add_orders(db, 3)

    snapshot = publish_snapshot(db, snapshot_path)

    assert snapshot.row_counts["orders"] == 3
    with duckdb.connect(str(snapshot_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == 3
    assert [p.name for p in snapshot_path.parent.iterdir()] == ["snapshot.duckdb"]


def test_a_reader_of_the_old_snapshot_neither_blocks_nor_sees_the_new_one(tmp_path):
    db, snapshot_path = tmp_path / "live.duckdb", tmp_path / "snapshot.duckdb"
    add_orders(db, 2)
    publish_snapshot(db, snapshot_path)
    reader = duckdb.connect(str(snapshot_path), read_only=True)
    try:
        add_orders(db, 5, start=2)  # the pipeline writes on while an analyst reads

        publish_snapshot(db, snapshot_path)

        assert reader.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
    finally:
        reader.close()
    with duckdb.connect(str(snapshot_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == 7
