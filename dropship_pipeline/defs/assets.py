"""Assets: the feed inbox first; later steps build on ``orders``.

No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import dagster as dg

from dropship_pipeline.defs.resources import PipelineResource
from dropship_pipeline.dropship.crawl import crawl_feed
from dropship_pipeline.store.db import connect
from dropship_pipeline.store.snapshot import publish_snapshot

#: Every asset that writes DuckDB runs in this pool, whose limit is 1 (dagster.yaml):
#: DuckDB has a single writer.
DB_POOL = "dropship_duckdb"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "feed_events",
            description="Every Order Notifications feed entry ever received, raw XML included.",
            group_name="inbox",
        ),
        dg.AssetSpec(
            "orders",
            deps=["feed_events"],
            description="Dropship orders and their lines, deduplicated by order id; status "
            "follows the feed's order-status-updated entries.",
            group_name="inbox",
        ),
    ],
    pool=DB_POOL,
)
def feed_inbox(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """Crawl the feed (RFC 5005 archives, oldest first) into DuckDB."""
    settings = pipeline.settings()
    with pipeline.client(settings) as client:
        counts = crawl_feed(client, settings.db_path, spool_dir=settings.feed_spool_dir)
    context.log.info(
        "feed: %d page(s), %d new event(s), %d duplicate(s), %d new order(s)",
        counts.pages_read,
        counts.events_new,
        counts.events_duplicate,
        counts.orders_new,
    )

    with connect(settings.db_path) as con:
        totals = con.execute(
            "SELECT (SELECT count(*) FROM feed_events), (SELECT count(*) FROM orders), "
            "(SELECT count(*) FROM order_items)"
        ).fetchone()
        by_status = con.execute(
            "SELECT status, count(*) FROM orders GROUP BY status ORDER BY 2 DESC"
        ).fetchall()
    events_total, orders_total, lines_total = totals or (0, 0, 0)

    yield dg.MaterializeResult(
        asset_key="feed_events",
        metadata={
            "pages_read": counts.pages_read,
            "events_new": counts.events_new,
            "events_duplicate": counts.events_duplicate,
            "status_events_new": counts.status_events_new,
            "events_total": int(events_total),
        },
    )
    yield dg.MaterializeResult(
        asset_key="orders",
        metadata={
            "orders_new": counts.orders_new,
            "orders_redelivered": counts.orders_duplicate,
            "orders_total": int(orders_total),
            "lines_total": int(lines_total),
            "orders_by_status": dg.MetadataValue.json(dict(by_status)),
        },
    )


@dg.asset_check(asset="orders", pool=DB_POOL, description="No order id appears twice.")
def orders_are_unique(pipeline: PipelineResource) -> dg.AssetCheckResult:
    duplicates = pipeline.count(
        "SELECT count(*) FROM (SELECT order_id FROM orders GROUP BY 1 HAVING count(*) > 1)"
    )
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicated_orders": duplicates})


@dg.asset_check(asset="orders", pool=DB_POOL, description="Every order has at least one line.")
def orders_have_lines(pipeline: PipelineResource) -> dg.AssetCheckResult:
    without_lines = pipeline.count(
        "SELECT count(*) FROM orders o "
        "WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.order_id)"
    )
    return dg.AssetCheckResult(
        passed=without_lines == 0, metadata={"orders_without_lines": without_lines}
    )


@dg.asset(
    deps=["order_acknowledgements"],
    pool=DB_POOL,
    group_name="analysts",
    description="A read-only copy of the database for analysts (DROPSHIP_SNAPSHOT), replaced "
    "atomically after each run, so that queries never hold the pipeline's own file.",
)
def analyst_snapshot(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    settings = pipeline.settings()
    snapshot = publish_snapshot(settings.db_path, settings.snapshot_path)
    context.log.info("snapshot: %s, %d bytes", snapshot.path, snapshot.size_bytes)
    return dg.MaterializeResult(
        metadata={
            "path": str(snapshot.path),
            "size_bytes": snapshot.size_bytes,
            **{f"rows_{table}": count for table, count in snapshot.row_counts.items()},
        }
    )
