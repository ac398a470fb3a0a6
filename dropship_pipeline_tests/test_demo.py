"""The README's first command: the demo runs the loop end to end with nothing configured."""

from __future__ import annotations

import os

import duckdb
import pytest

from dropship_pipeline.demo import FIRST_ORDERS, LATER_ORDERS, run_demo


@pytest.mark.slow
def test_the_demo_runs_every_built_stage_and_leaves_its_data_in_its_folder(tmp_path):
    lines: list[str] = []
    before = {name: value for name, value in os.environ.items() if name.startswith("DROPSHIP_")}

    assert run_demo(lines.append, folder=tmp_path / "demo") == 0

    text = "\n".join(lines)
    assert f"orders_new={FIRST_ORDERS}" in text
    assert f"orders_new={LATER_ORDERS}" in text
    with duckdb.connect(str(tmp_path / "demo" / "dropship.duckdb"), read_only=True) as con:
        orders, acknowledged, exported = con.execute(
            "SELECT count(DISTINCT order_id), count(acknowledged_at), count(exported_at) "
            "FROM orders"
        ).fetchone()
        files = con.execute("SELECT file_name FROM erp_exports").fetchall()
    assert orders == acknowledged == exported == FIRST_ORDERS + LATER_ORDERS
    # Two runs, two batches, each as CSV and XLSX, all in the SFTP drop.
    assert len(files) == 4
    for (name,) in files:
        assert (tmp_path / "demo" / "sftp" / "orders" / name).is_file()
    confirmations = list((tmp_path / "demo" / "sftp" / "confirmations").iterdir())
    assert confirmations  # the warehouse robot answered
    # The demo's generated credentials never leak into the caller's environment.
    after = {name: value for name, value in os.environ.items() if name.startswith("DROPSHIP_")}
    assert after == before
