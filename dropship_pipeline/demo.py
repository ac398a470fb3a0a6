"""``dropship-pipeline demo``: the whole loop on this machine, with nothing configured.

It starts a simulated Dropship service and an embedded SFTP server (the ERP drop) on loopback
ports with generated credentials, points the pipeline's settings at them, and runs the
pipeline's job through Dagster: a first run (a backfill of the feed's archive, the first order
files, their acknowledgements), then a warehouse robot answers with shipment confirmation files,
new orders arrive, and a second run polls again. Everything it writes lands under
``data/demo/``; each demo starts from an empty folder there. Stages that have not landed yet are
named as such in what it prints.

The simulated service runs in strict mode: it flags every status update that leaves the
documented lifecycle or drops a tracking number. The demo prints each flagged update with its
reason and each failed asset check, and exits non-zero when there is either. It ignores every
``DROPSHIP_*`` setting of the caller's environment or ``.env`` file while it runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from dropship_pipeline.cli import failure_reason, run_config, summarize
from dropship_pipeline.defs.definitions import PIPELINE_JOB, build_definitions
from dropship_pipeline.erp.drop import open_drop
from dropship_pipeline.settings import Settings
from dropship_pipeline.simulator import SimulatorConfig, SimulatorServer, UpdateRecord
from dropship_pipeline.simulator.robot import WarehouseRobot
from dropship_pipeline.simulator.sftp import EmbeddedSftpServer

DEMO_DIR = Path("data/demo")
FIRST_ORDERS = 260  # six feed pages: a backfill of five archives and the current page
LATER_ORDERS = 45
SUPPLIER_ID = 14107
SETTINGS_PREFIX = "DROPSHIP_"
"""Every setting of CONTRACT.md section 1 starts with this."""
FLAGGED_SHOWN = 20
"""Flagged updates printed one by one; the rest are counted."""

Say = Callable[[str], None]


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Give the pipeline the demo's settings and no others; put the caller's back afterwards.

    Every other ``DROPSHIP_*`` variable, from the shell or a ``.env`` file (a fixed token, a
    go-live cut-off, a column layout, a key file, other folders), is removed while the demo
    runs, so that the demo behaves the same on every machine.
    """
    saved = {name: value for name, value in os.environ.items() if name.startswith(SETTINGS_PREFIX)}
    for name in saved:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        for name in [name for name in os.environ if name.startswith(SETTINGS_PREFIX)]:
            del os.environ[name]
        os.environ.update(saved)


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
        strict=True,
    )
    sftp = EmbeddedSftpServer(
        folder / "sftp",
        username="erp",
        password=sftp_password,
        known_hosts_path=folder / "known_hosts",
    )

    checks_failed = 0
    with SimulatorServer(config) as simulator, sftp:
        say(f"simulator: iQmetrix Dropship service at {simulator.base_url} (strict)")
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
            result = _run(job, instance, say)
            if not result.success:
                return 1
            checks_failed += report_checks(result.get_asset_check_evaluations(), say)

            # The robot works the folders the pipeline uses, whatever they are called.
            loaded = Settings.from_env()
            with open_drop(loaded) as drop:
                robot = WarehouseRobot(
                    drop,
                    orders_dir=loaded.orders_dir,
                    confirmations_dir=loaded.confirmations_dir,
                    seed=2026,
                )
                report = robot.run_once()
            rows = report.rows
            say(
                f"warehouse robot: read {len(report.files_read)} order file(s), wrote "
                f"{len(report.files_written)} confirmation file(s) with {rows.total} rows "
                f"({rows.shipped} shipped, {rows.partial} partial, "
                f"{rows.backordered} back-ordered, {rows.cancelled} cancelled, "
                f"{rows.not_available + rows.error + rows.other} not available, error or other)"
            )

            simulator.state.add_orders(LATER_ORDERS)
            say(f"simulator: {LATER_ORDERS} new orders arrive; the current page rolls over")
            say("run 2: a regular poll")
            result = _run(job, instance, say)
            if not result.success:
                return 1
            checks_failed += report_checks(result.get_asset_check_evaluations(), say)

        flagged = report_updates(simulator.state.updates(), say)
        _report(folder / "dropship.duckdb", say)
    say(
        "not built yet: applying the warehouse's confirmation files (shipped, partial, "
        "back-ordered, cancelled) and the shipping-options service"
    )
    say(f"everything is under {folder}/: DuckDB file, ERP drop in sftp/, Dagster runs in dagster/")
    if flagged or checks_failed:
        say(
            f"demo failed: {flagged} status update(s) flagged by the simulator, "
            f"{checks_failed} asset check(s) failed"
        )
        return 1
    return 0


def _run(
    job: dg.JobDefinition, instance: dg.DagsterInstance, say: Say
) -> dg.ExecuteInProcessResult:
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=run_config(),
    )
    for line in summarize(result):
        say(f"  {line}")
    if not result.success:
        say(f"  failed: {failure_reason(result)}")
    return result


def report_checks(evaluations: Sequence[dg.AssetCheckEvaluation], say: Say) -> int:
    """Print every failed asset check and a count of all; return how many failed."""
    failed = [evaluation for evaluation in evaluations if not evaluation.passed]
    for evaluation in failed:
        figures = ", ".join(
            f"{key}={value.value}"
            for key, value in evaluation.metadata.items()
            if isinstance(value.value, int | float | str)
        )
        say(
            f"  check failed: {evaluation.asset_key.to_user_string()} "
            f"{evaluation.check_name} ({evaluation.severity.value}): {figures or 'no figures'}"
        )
    say(f"  asset checks: {len(evaluations) - len(failed)} passed, {len(failed)} failed")
    return len(failed)


def report_updates(updates: Sequence[UpdateRecord], say: Say) -> int:
    """Print what the strict simulator made of the pipeline's status updates, each flagged
    one with its reasons (the first FLAGGED_SHOWN of them); return how many were flagged."""
    accepted = sum(1 for update in updates if update.verdict == "accepted")
    flagged = [update for update in updates if update.verdict == "flagged"]
    say(
        f"simulator: accepted {accepted} status update(s) from the pipeline, flagged {len(flagged)}"
    )
    for update in flagged[:FLAGGED_SHOWN]:
        say(
            f"  flagged update #{update.sequence} ({update.kind} update of order "
            f"{update.order_id}): {'; '.join(update.problems)}"
        )
    if len(flagged) > FLAGGED_SHOWN:
        say(f"  ... and {len(flagged) - FLAGGED_SHOWN} more flagged update(s)")
    return len(flagged)


def _report(db_path: Path, say: Say) -> None:
    with duckdb.connect(str(db_path), read_only=True) as con:
        row = con.execute(
            "SELECT (SELECT count(*) FROM feed_events), (SELECT count(*) FROM orders), "
            "(SELECT count(*) FROM order_items), "
            "(SELECT count(*) FILTER (WHERE complete) FROM feed_pages), "
            "(SELECT count(*) FROM orders WHERE ship_to_store), "
            "(SELECT count(*) FROM erp_exports WHERE state = 'delivered'), "
            "(SELECT count(*) FROM orders WHERE acknowledged_at IS NOT NULL)"
        ).fetchone()
    assert row is not None  # an aggregate query always returns its row
    events, orders, lines, pages, to_store, files, acknowledged = row
    say(
        f"DuckDB: {events} feed events, {orders} orders ({to_store} to stores), "
        f"{lines} order lines, {pages} archive pages complete, {files} order files "
        f"delivered, {acknowledged} orders acknowledged"
    )
