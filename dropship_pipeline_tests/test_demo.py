"""The README's first command: the demo runs the loop end to end with nothing configured."""

from __future__ import annotations

import os
import re
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from dropship_pipeline.demo import (
    FIRST_ORDERS,
    LATER_ORDERS,
    report_checks,
    report_updates,
    run_demo,
)
from dropship_pipeline.simulator import SimulatorConfig, SimulatorServer

CHECKS_LINE = re.compile(r"asset checks: (\d+) passed, (\d+) failed")


def _dropship_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("DROPSHIP_")}


def _assert_the_demo_did_everything(lines: list[str], folder: Path) -> None:
    text = "\n".join(lines)
    assert f"orders_new={FIRST_ORDERS}" in text
    assert f"orders_new={LATER_ORDERS}" in text
    with duckdb.connect(str(folder / "dropship.duckdb"), read_only=True) as con:
        orders, acknowledged, exported = con.execute(
            "SELECT count(DISTINCT order_id), count(acknowledged_at), count(exported_at) "
            "FROM orders"
        ).fetchone()
        files = con.execute("SELECT file_name FROM erp_exports").fetchall()
    assert orders == acknowledged == exported == FIRST_ORDERS + LATER_ORDERS
    # Two runs, two batches, each as CSV and XLSX, all in the SFTP drop.
    assert len(files) == 4
    for (name,) in files:
        assert (folder / "sftp" / "orders" / name).is_file()
    confirmations = list((folder / "sftp" / "confirmations").iterdir())
    assert confirmations  # the warehouse robot answered

    # The strict simulator took every acknowledgement, once per order, and flagged none.
    total = FIRST_ORDERS + LATER_ORDERS
    assert f"simulator: accepted {total} status update(s) from the pipeline, flagged 0" in lines
    assert not any("flagged update" in line for line in lines)
    # Both runs evaluated their asset checks, and every one passed.
    checks = [CHECKS_LINE.search(line) for line in lines]
    counts = [(int(m[1]), int(m[2])) for m in checks if m]
    assert len(counts) == 2 and all(passed > 0 and failed == 0 for passed, failed in counts)
    assert not any("check failed" in line for line in lines)


@pytest.mark.slow
def test_the_demo_runs_every_built_stage_and_leaves_its_data_in_its_folder(tmp_path):
    lines: list[str] = []
    before = _dropship_environment()

    assert run_demo(lines.append, folder=tmp_path / "demo") == 0

    _assert_the_demo_did_everything(lines, tmp_path / "demo")
    # The demo's generated credentials never leak into the caller's environment.
    assert _dropship_environment() == before


@pytest.mark.slow
def test_the_demo_ignores_the_callers_dropship_settings(tmp_path, monkeypatch):
    strays = {
        "DROPSHIP_ACCESS_TOKEN": "a-token-from-somewhere-else",
        "DROPSHIP_EXPORT_SINCE": "2100-01-01",
        "DROPSHIP_ORDERS_DIR": "elsewhere/orders",
        "DROPSHIP_CONFIRMATIONS_DIR": "elsewhere/confirmations",
        "DROPSHIP_ORDER_LAYOUT": str(tmp_path / "no-such-layout.json"),
        "DROPSHIP_SFTP_KEY_FILE": str(tmp_path / "no-such-key"),
    }
    for name, value in strays.items():
        monkeypatch.setenv(name, value)
    lines: list[str] = []

    assert run_demo(lines.append, folder=tmp_path / "demo") == 0

    _assert_the_demo_did_everything(lines, tmp_path / "demo")
    assert not (tmp_path / "demo" / "sftp" / "elsewhere").exists()
    assert {name: os.environ.get(name) for name in strays} == strays, "put back afterwards"


def test_updates_the_strict_simulator_flags_are_printed_and_counted() -> None:
    with SimulatorServer(SimulatorConfig(strict=True, access_token="t")) as sim:
        order_id = sim.state.add_orders(1)[0].order_id
        url = f"{sim.base_url}/Suppliers({sim.config.supplier_id})/Orders({order_id})"
        for _ in range(2):
            response = httpx.put(
                f"{url}/OrderStatusUpdate",
                json={"Id": order_id, "Status": 1},
                headers={"Authorization": "Bearer t"},
            )
            assert response.status_code == 202
        lines: list[str] = []

        assert report_updates(sim.state.updates(), lines.append) == 1

    assert lines[0] == "simulator: accepted 1 status update(s) from the pipeline, flagged 1"
    assert f"order {order_id}" in lines[1]
    assert "order Ordered -> Ordered repeats a status already sent" in lines[1]


def test_failed_asset_checks_are_printed_and_counted() -> None:
    @dg.asset
    def shipments() -> int:
        return 3

    @dg.asset_check(asset=shipments)
    def all_good() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    @dg.asset_check(asset=shipments)
    def none_lost() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"lost": 2})

    result = dg.materialize([shipments, all_good, none_lost], raise_on_error=False)
    lines: list[str] = []

    assert report_checks(result.get_asset_check_evaluations(), lines.append) == 1

    assert lines == [
        "  check failed: shipments none_lost (ERROR): lost=2",
        "  asset checks: 1 passed, 1 failed",
    ]
