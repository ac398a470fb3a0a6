"""``dropship-pipeline demo``: the whole loop on this machine, with nothing configured.

It starts a simulated Dropship service and an embedded SFTP server (the ERP drop) on loopback
ports with generated credentials, points the pipeline's settings at them, and runs the
pipeline's job through Dagster: a first run (a backfill of the feed's archive, the first order
files, their acknowledgements), then a warehouse robot answers with shipment confirmation files,
new orders arrive, and a second run polls again. Everything it writes lands under
``data/demo/``; each demo starts from an empty folder there. Stages that have not landed yet are
named as such in what it prints.
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

from dropship_pipeline.cli import failure_reason, run_config, summarize
from dropship_pipeline.defs.definitions import PIPELINE_JOB, build_definitions
from dropship_pipeline.erp.drop import open_drop
from dropship_pipeline.settings import Settings
from dropship_pipeline.simulator import SimulatorConfig, SimulatorServer
from dropship_pipeline.simulator.robot import WarehouseRobot
from dropship_pipeline.simulator.sftp import EmbeddedSftpServer

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
    (folder / "sftp").mkdir()
    client_secret, password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    sftp_password = secrets.token_urlsafe(16)
    config = SimulatorConfig(
        supplier_id=SUPPLIER_ID,
        seed=2026,
        client_id="demo-client",
        client_secret=client_secret,
        users={"demo@supplier.example": password},
        initial_orders=FIRST_ORDERS,
    )
    sftp = EmbeddedSftpServer(
        folder / "sftp",
        username="erp",
        password=sftp_password,
        known_hosts_path=folder / "known_hosts",
    )

    with SimulatorServer(config) as simulator, sftp:
        say(f"simulator: iQmetrix Dropship service at {simulator.base_url}")
        say(f"simulator: {FIRST_ORDERS} orders in {len(simulator.state.page_ids())} feed pages")
        say(f"sftp: ERP drop at {sftp.url} (host key in {folder / 'known_hosts'})")
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
            "DROPSHIP_DROP_URL": sftp.url,
            "DROPSHIP_SFTP_PASSWORD": sftp_password,
            "DROPSHIP_SFTP_KNOWN_HOSTS": str(folder / "known_hosts"),
            "DROPSHIP_EXPORT_FORMATS": "csv,xlsx",
        }
        with (
            _environment(settings),
            dg.DagsterInstance.local_temp(str((folder / "dagster").resolve())) as instance,
        ):
            job = build_definitions().resolve_job_def(PIPELINE_JOB)

            say("run 1: first run: the whole archive, the first order files, acknowledgements")
            if not _run(job, instance, say):
                return 1

            with open_drop(Settings.from_env()) as drop:
                robot = WarehouseRobot(drop, seed=2026)
                report = robot.run_once()
            say(
                f"warehouse robot: read {len(report.files_read)} order file(s), wrote "
                f"{len(report.files_written)} confirmation file(s) with {report.rows.total} rows "
                f"({report.rows.shipped} shipped, {report.rows.partial} partial, "
                f"{report.rows.backordered} back-ordered, {report.rows.cancelled} cancelled)"
            )

            simulator.state.add_orders(LATER_ORDERS)
            say(f"simulator: {LATER_ORDERS} new orders arrive; the current page rolls over")
            say("run 2: a regular poll")
            if not _run(job, instance, say):
                return 1

        accepted = [u for u in simulator.state.updates() if u.verdict == "accepted"]
        say(f"simulator: accepted {len(accepted)} status update(s) from the pipeline")
        _report(folder / "dropship.duckdb", say)
    say(
        "not built yet: applying the warehouse's confirmation files (shipped, partial, "
        "back-ordered, cancelled) and the shipping-options service"
    )
    say(f"everything is under {folder}/: DuckDB file, ERP drop in sftp/, Dagster runs in dagster/")
    return 0


def _run(job: dg.JobDefinition, instance: dg.DagsterInstance, say: Say) -> bool:
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=run_config(),
    )
    for line in summarize(result):
        say(f"  {line}")
    if not result.success:
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
        files, acknowledged = con.execute(
            "SELECT (SELECT count(*) FROM erp_exports WHERE state = 'delivered'), "
            "(SELECT count(*) FROM orders WHERE acknowledged_at IS NOT NULL)"
        ).fetchone()
    say(
        f"DuckDB: {events} feed events, {orders} orders ({to_store} to stores), "
        f"{lines} order lines, {pages} archive pages complete, {files} order files "
        f"delivered, {acknowledged} orders acknowledged"
    )
