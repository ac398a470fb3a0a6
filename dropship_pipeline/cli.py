"""The ``dropship-pipeline`` command (CONTRACT.md section 2).

Every command exits 0 on success and non-zero with a one-line reason on failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dropship_pipeline.errors import DropshipPipelineError

log = logging.getLogger("dropship_pipeline")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dropship-pipeline",
        description="Bridge the iQmetrix Dropship service and a supplier's ERP and warehouse.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every remote call")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "demo",
        help="run the whole loop locally: simulated Dropship service, SFTP server, warehouse",
        description="Run the whole loop on this machine with nothing configured.",
    )
    commands.add_parser(
        "run",
        help="one full headless cycle against the configured service",
        description="Ingest the feed, export new orders to the ERP drop, acknowledge them and "
        "publish the analysts' snapshot. (Applying confirmation files is not built yet.)",
    )
    simulator = commands.add_parser(
        "simulator",
        help="serve the simulated Dropship service on a local port",
        description="Serve the simulated iQmetrix Dropship service on 127.0.0.1.",
    )
    from dropship_pipeline.simulator import cli as simulator_cli

    simulator_cli.add_arguments(simulator)
    commands.add_parser(
        "serve",
        help="serve the shipping-options API, its flat-rate backup and the webhook receiver",
        description="Serve the shipping-options API (not built yet).",
    )

    requeue = commands.add_parser(
        "requeue-failed",
        help="put status updates that failed for good back in the outbox",
        description="Re-queue failed outbox updates (all, or one order's) and print how many; "
        "the next run sends them.",
    )
    requeue.add_argument("--order", metavar="ORDER_ID", help="only this order's updates")

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request's full URL at INFO; our client logs one line per call itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _load_dotenv()
    try:
        if args.command == "run":
            return run_command(verbose=args.verbose)
        if args.command == "demo":
            from dropship_pipeline.demo import run_demo

            return run_demo(print)
        if args.command == "simulator":
            return simulator_cli.run(args)
        if args.command == "requeue-failed":
            return requeue_failed_command(args.order)
        raise NotImplementedError(
            "serve is not built yet: the shipping-options service is a later issue."
        )
    except (DropshipPipelineError, NotImplementedError) as error:
        print(f"dropship-pipeline {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _load_dotenv() -> None:
    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)


@contextmanager
def _instance() -> Iterator[object]:
    """The DAGSTER_HOME instance when set (runs are recorded there), else a temporary one."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def run_config(*, verbose: bool = False) -> dict:
    """Run config for in-process runs: Dagster's step logs only with ``--verbose``, since a
    failure is reported as one line of our own (:func:`failure_reason`)."""
    level = "INFO" if verbose else "CRITICAL"
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def run_command(*, verbose: bool = False) -> int:
    """One headless cycle through Dagster; prints a summary of each asset's metadata."""
    from dropship_pipeline.settings import Settings

    Settings.from_env()  # a bad setting stops here with its one-line reason

    from dropship_pipeline.defs.definitions import PIPELINE_JOB, build_definitions

    job = build_definitions().resolve_job_def(PIPELINE_JOB)
    with _instance() as instance:
        result = job.execute_in_process(
            instance=instance,  # type: ignore[arg-type]
            raise_on_error=False,
            run_config=run_config(verbose=verbose),
        )
    for line in summarize(result):
        print(line)
    if result.success:
        return 0
    print(f"dropship-pipeline run: {failure_reason(result)}", file=sys.stderr)
    return 1


def requeue_failed_command(order_id: str | None) -> int:
    """Put failed outbox updates back to pending; print how many."""
    from dropship_pipeline.settings import Settings
    from dropship_pipeline.store.db import connect, transaction
    from dropship_pipeline.store.outbox import requeue_failed

    settings = Settings.from_env()
    with connect(settings.db_path) as con, transaction(con):
        count = requeue_failed(con, order_id=order_id)
    target = f" of order {order_id}" if order_id else ""
    print(f"re-queued {count} failed update(s){target}")
    return 0


def summarize(result) -> list[str]:
    """One line per materialised asset with its one-line figures (previews are left out)."""
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        figures = ", ".join(
            f"{key}={value.value}"
            for key, value in materialization.metadata.items()
            if isinstance(value.value, int | float)
            or (isinstance(value.value, str) and "\n" not in value.value)
        )
        lines.append(f"{materialization.asset_key.to_user_string()}: {figures}")
    return lines


def failure_reason(result) -> str:
    """The message of our own error behind a failed step, without Dagster's wrapping."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        reason = "the step failed"
        while error is not None:
            if error.cls_name and not error.cls_name.startswith("Dagster"):
                # The message starts with the error's class, qualified by its module.
                message = error.message.strip()
                _, found, rest = message.partition(f"{error.cls_name}: ")
                reason = rest if found else message
            error = error.cause
        return f"step {event.step_key} failed: {reason}"
    return "the run failed; see the Dagster logs."


if __name__ == "__main__":
    sys.exit(main())
