"""The Dagster definitions: what ``dagster dev`` (through workspace.yaml) and the CLI load."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from dropship_pipeline.defs.assets import (
    analyst_snapshot,
    feed_inbox,
    orders_are_unique,
    orders_have_lines,
)
from dropship_pipeline.defs.export_assets import EXPORT_ASSETS, EXPORT_CHECKS
from dropship_pipeline.defs.resources import SECRET_FIELDS, SETTING_VARIABLES, PipelineResource
from dropship_pipeline.errors import SettingsError
from dropship_pipeline.settings import Settings

PIPELINE_JOB = "dropship_pipeline_job"
POLL_CRON = "*/2 * * * *"
UNFINISHED_RUNS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def pipeline_resource_from_env() -> PipelineResource:
    """Settings from the environment; secrets only as EnvVar references, never as values."""
    values: dict[str, Any] = {}
    for field, variable in SETTING_VARIABLES.items():
        if not os.environ.get(variable):
            continue
        values[field] = dg.EnvVar(variable) if field in SECRET_FIELDS else os.environ[variable]
    return PipelineResource(**values)


def build_definitions() -> dg.Definitions:
    pipeline_job = dg.define_asset_job(
        PIPELINE_JOB,
        selection=dg.AssetSelection.assets(
            "feed_events",
            "orders",
            "erp_order_files",
            "order_acknowledgements",
            "analyst_snapshot",
        ),
        description="One full cycle: ingest the feed, export new orders to the ERP drop, "
        "acknowledge them, publish the analysts' snapshot (later steps are added as they land).",
    )

    @dg.schedule(
        name="feed_poll",
        job=pipeline_job,
        cron_schedule=POLL_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Polls the Order Notifications feed every 2 minutes, unless the settings "
        "are incomplete or the previous cycle is still running.",
    )
    def feed_poll(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        try:
            Settings.from_env()
        except SettingsError as error:
            return dg.SkipReason(f"Not polling: {error}")
        # DuckDB takes one writer: a second cycle would only fail on the database's lock.
        running = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name=PIPELINE_JOB, statuses=UNFINISHED_RUNS), limit=1
        )
        if running:
            return dg.SkipReason(
                f"Not polling: run {running[0].dagster_run.run_id} of the previous cycle is "
                "still going."
            )
        return dg.RunRequest()

    return dg.Definitions(
        assets=[feed_inbox, *EXPORT_ASSETS, analyst_snapshot],
        asset_checks=[orders_are_unique, orders_have_lines, *EXPORT_CHECKS],
        jobs=[pipeline_job],
        schedules=[feed_poll],
        resources={"pipeline": pipeline_resource_from_env()},
        # Steps share one DuckDB file with a single writer: run them one after another in the
        # run's own process, whatever concurrency pools the instance was given.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
