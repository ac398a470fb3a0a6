"""Assets of the ERP export and the Ordered acknowledgement, with their checks.

No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

from datetime import timedelta

import dagster as dg

from dropship_pipeline.defs.assets import DB_POOL
from dropship_pipeline.defs.resources import PipelineResource
from dropship_pipeline.erp.export import PREVIEW_COLUMNS, export_with_settings
from dropship_pipeline.fulfilment.outbox import send_outbox

ACK_GRACE = timedelta(hours=1)
"""How long an exported order may wait for its acknowledgement before the check warns."""


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _preview_markdown(preview: list[dict[str, object]]) -> str:
    header = "| " + " | ".join(PREVIEW_COLUMNS) + " |"
    rule = "| " + " | ".join("---" for _ in PREVIEW_COLUMNS) + " |"
    rows = [
        "| " + " | ".join(_cell(row[name]) for name in PREVIEW_COLUMNS) + " |" for row in preview
    ]
    return "\n".join([header, rule, *rows])


@dg.asset(
    deps=["orders"],
    pool=DB_POOL,
    group_name="erp",
    description="Order files delivered to the ERP drop: one batch per run, each order once.",
)
def erp_order_files(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """Stage, upload and mark one batch of new orders (or finish a batch a crash left)."""
    result = export_with_settings(pipeline.settings())
    if result.export_id is None:
        context.log.info("export: no new orders")
    else:
        context.log.info(
            "export %s: %d order(s), %d line(s) in %s",
            result.export_id,
            result.order_count,
            result.row_count,
            ", ".join(result.file_names),
        )
    return dg.MaterializeResult(
        metadata={
            "export_id": result.export_id or "",
            "file_names": ", ".join(result.file_names),
            "orders": result.order_count,
            "rows": result.row_count,
            "acknowledgements_queued": result.acks_queued,
            "resumed_batch": result.resumed,
            "preview": dg.MetadataValue.md(_preview_markdown(result.preview)),
        }
    )


@dg.asset(
    deps=["erp_order_files"],
    pool=DB_POOL,
    group_name="erp",
    description="Ordered (1) sent to iQmetrix for every exported order, through the outbox.",
)
def order_acknowledgements(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """Send the outbox's due updates, the acknowledgements among them, oldest first."""
    settings = pipeline.settings()
    with pipeline.client(settings) as client:
        counts = send_outbox(settings.db_path, client)
    context.log.info(
        "outbox: %d sent, %d found in the feed (%d acknowledgement(s)), %d to retry, %d failed",
        counts.sent,
        counts.confirmed,
        counts.acknowledged,
        counts.retrying,
        counts.failed,
    )
    return dg.MaterializeResult(
        metadata={
            "sent": counts.sent,
            "found_in_feed": counts.confirmed,
            "acknowledged": counts.acknowledged,
            "retry_later": counts.retrying,
            "failed_now": counts.failed,
            "outbox_pending": counts.totals.get("pending", 0),
            "outbox_sent": counts.totals.get("sent", 0),
            "outbox_failed": counts.totals.get("failed", 0),
        }
    )


@dg.asset_check(
    asset=erp_order_files,
    pool=DB_POOL,
    description="No order is in two exports, and no file name is recorded twice.",
)
def orders_in_one_export(pipeline: PipelineResource) -> dg.AssetCheckResult:
    orders = pipeline.count(
        "SELECT count(*) FROM (SELECT order_id FROM erp_export_orders "
        "GROUP BY order_id HAVING count(DISTINCT export_id) > 1 OR count(*) > 1)",
    )
    files = pipeline.count(
        "SELECT count(*) FROM (SELECT file_name FROM erp_exports "
        "GROUP BY file_name HAVING count(*) > 1)",
    )
    return dg.AssetCheckResult(
        passed=orders == 0 and files == 0,
        metadata={"orders_in_several_exports": orders, "file_names_repeated": files},
    )


@dg.asset_check(
    asset=order_acknowledgements,
    pool=DB_POOL,
    description="No exported order has waited more than an hour for its acknowledgement.",
)
def exported_orders_acknowledged(pipeline: PipelineResource) -> dg.AssetCheckResult:
    stuck = pipeline.count(
        "SELECT count(*) FROM orders o JOIN status_updates u "
        "ON u.order_id = o.order_id AND u.update_id = 'ack:' || o.order_id "
        "WHERE u.state <> 'sent' AND o.exported_at < now() - to_seconds(?)",
        [ACK_GRACE.total_seconds()],
    )
    return dg.AssetCheckResult(
        passed=stuck == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"orders_unacknowledged_over_an_hour": stuck},
    )


@dg.asset_check(
    asset=order_acknowledgements,
    pool=DB_POOL,
    description=(
        "No status update in the outbox failed for good or was given up after repeated "
        "transient failures (requeue-failed resends them)."
    ),
)
def no_failed_updates(pipeline: PipelineResource) -> dg.AssetCheckResult:
    failed = pipeline.count("SELECT count(*) FROM status_updates WHERE state = 'failed'")
    return dg.AssetCheckResult(passed=failed == 0, metadata={"failed_updates": failed})


@dg.asset_check(
    asset=order_acknowledgements,
    pool=DB_POOL,
    description="No outbox update id appears twice.",
)
def update_ids_are_unique(pipeline: PipelineResource) -> dg.AssetCheckResult:
    repeated = pipeline.count(
        "SELECT count(*) FROM (SELECT update_id FROM status_updates "
        "GROUP BY update_id HAVING count(*) > 1)",
    )
    return dg.AssetCheckResult(passed=repeated == 0, metadata={"repeated_update_ids": repeated})


EXPORT_ASSETS = [erp_order_files, order_acknowledgements]
EXPORT_CHECKS = [
    orders_in_one_export,
    exported_orders_acknowledged,
    no_failed_updates,
    update_ids_are_unique,
]
