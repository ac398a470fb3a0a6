"""The Dagster definitions: what ``dagster dev`` (through workspace.yaml) and the CLI load."""

from __future__ import annotations

import os

import dagster as dg

from dropship_pipeline.defs.assets import (
    analyst_snapshot,
    feed_inbox,
    orders_are_unique,
    orders_have_lines,
)
from dropship_pipeline.defs.export_assets import EXPORT_ASSETS, EXPORT_CHECKS
from dropship_pipeline.defs.resources import SECRET_FIELDS, SETTING_VARIABLES, PipelineResource

PIPELINE_JOB = "dropship_pipeline_job"
POLL_CRON = "*/2 * * * *"


def pipeline_resource_from_env() -> PipelineResource:
    """Settings from the environment; secrets only as EnvVar references, never as values."""
    values: dict[str, object] = {}
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
    poll = dg.ScheduleDefinition(
        name="feed_poll",
        job=pipeline_job,
        cron_schedule=POLL_CRON,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Polls the Order Notifications feed every 2 minutes.",
    )
    return dg.Definitions(
        assets=[feed_inbox, *EXPORT_ASSETS, analyst_snapshot],
        asset_checks=[orders_are_unique, orders_have_lines, *EXPORT_CHECKS],
        jobs=[pipeline_job],
        schedules=[poll],
        resources={"pipeline": pipeline_resource_from_env()},
    )


defs = build_definitions()
