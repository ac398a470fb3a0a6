"""``dropship-pipeline demo``: the whole loop on this machine, with nothing configured.

It starts a simulated Dropship service on a loopback port with generated credentials, points the
pipeline's settings at it, and runs the pipeline's job through Dagster twice: once as a first
run (a backfill of the feed's archive), once after new orders and a shipment update arrive.
Everything it writes lands under ``data/demo/``; each demo starts from an empty folder there.
Stages that have not landed yet are named as such in what it prints.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from dropship_pipeline.defs.definitions import PIPELINE_JOB, build_definitions
from dropship_pipeline.simulator import SimulatorConfig, SimulatorServer

DEMO_DIR = Path("data/demo")
FIRST_ORDERS = 260  # six feed pages: a backfill of five archives and the current page
LATER_ORDERS = 45
SUPPLIER_ID = 14107

Say = Callable[[str], None]


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set the pipeline's settings for the demo and put the caller's back afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(say: Say = print, *, folder: Path = DEMO_DIR) -> int:
    """Run the demo; return 0 when every stage succeeded."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "dagster").mkdir(parents=True)
    (folder / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    client_secret, password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    config = SimulatorConfig(
        supplier_id=SUPPLIER_ID,
        seed=2026,
        client_id="demo-client",
        client_secret=client_secret,
        users={"demo@supplier.example": password},
        initial_orders=FIRST_ORDERS,
    )

    with SimulatorServer(config) as simulator:
        say(f"simulator: iQmetrix Dropship service at {simulator.base_url}")
        say(f"simulator: {FIRST_ORDERS} orders in {len(simulator.state.page_ids())} feed pages")
        settings = {
            "DROPSHIP_API_URL": simulator.base_url,
            "DROPSHIP_AUTH_URL": simulator.base_url,
            "DROPSHIP_SUPPLIER_ID": str(SUPPLIER_ID),
            "DROPSHIP_CLIENT_ID": config.client_id,
            "DROPSHIP_CLIENT_SECRET": client_secret,
            "DROPSHIP_USERNAME": "demo@supplier.example",
            "DROPSHIP_PASSWORD": password,
            "DROPSHIP_DB": str(folder / "dropship.duckdb"),
            "DROPSHIP_SNAPSHOT": str(folder / "dropship_snapshot.duckdb"),
            "DROPSHIP_DROP_URL": str(folder / "drop"),
        }
        with (
            _environment(settings),
            dg.DagsterInstance.local_temp(str((folder / "dagster").resolve())) as instance,
        ):
            job = build_definitions().resolve_job_def(PIPELINE_JOB)

            say("run 1: first run, the whole archive")
            if not _run(job, instance, say):
                return 1

            simulator.state.add_orders(LATER_ORDERS)
            say(f"simulator: {LATER_ORDERS} new orders arrive; the current page rolls over")
            say("run 2: a regular poll")
            if not _run(job, instance, say):
                return 1

        _report(folder / "dropship.duckdb", say)
    say("stages not built yet: ERP export, acknowledgement, confirmations, status updates")
    say(f"everything is under {folder}/ (DuckDB file, Dagster runs in {folder}/dagster)")
    return 0


def _run(job: dg.JobDefinition, instance: dg.DagsterInstance, say: Say) -> bool:
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        figures = ", ".join(
            f"{key}={value.value}"
            for key, value in materialization.metadata.items()
            if isinstance(value.value, int)
        )
        say(f"  {materialization.asset_key.to_user_string()}: {figures}")
    if not result.success:
        from dropship_pipeline.cli import failure_reason

        say(f"  failed: {failure_reason(result)}")
    return result.success


def _report(db_path: Path, say: Say) -> None:
    with duckdb.connect(str(db_path), read_only=True) as con:
        events, orders, lines, pages = con.execute(
            "SELECT (SELECT count(*) FROM feed_events), (SELECT count(*) FROM orders), "
            "(SELECT count(*) FROM order_items), "
            "(SELECT count(*) FILTER (WHERE complete) FROM feed_pages)"
        ).fetchone()
        to_store = con.execute("SELECT count(*) FROM orders WHERE ship_to_store").fetchone()[0]
    say(
        f"DuckDB: {events} feed events, {orders} orders ({to_store} to stores), "
        f"{lines} order lines, {pages} archive pages complete"
    )
