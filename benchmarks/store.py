"""Store benchmark: loading parsed feed pages into DuckDB, against DuckDB's default row groups.

    .venv/bin/python benchmarks/store.py [--pages 1000]

A simulator serves ``--pages`` pages of 50 events. They are parsed once, into batches of the
crawl's size, and written to files. Then, each in a fresh process and on a fresh database:

- ``store``: ``store_batch`` for every batch through ``connect()`` (the pipeline's settings);
- ``default``: the same ``store_batch`` and SQL, with the same memory limit and checkpoint
  threshold, on a file opened with DuckDB's default row groups (122,880 rows): the baseline.

Both times include closing the database (its checkpoint). Printed: microseconds per event, the
ratio to the baseline, the largest WAL seen and the file's size. Not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from ingest import PREV_ARCHIVE, SUPPLIER_ID, TOKEN, start_simulator


def prepare(pages: int, folder: Path) -> int:
    """Fetch and parse the pages into batch files (oldest first); return the event count."""
    import httpx

    from dropship_pipeline.dropship.atom import read_page
    from dropship_pipeline.dropship.crawl import DEFAULT_BATCH_PAGES
    from dropship_pipeline.store.batch import build_batch, write_batch

    process, base_url = start_simulator(pages * 50)
    bodies: list[tuple[str, bytes]] = []
    try:
        url: str | None = f"{base_url}/Suppliers({SUPPLIER_ID})/Notifications"
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            while url:
                body = client.get(url).content
                bodies.append((url, body))
                match = PREV_ARCHIVE.search(body[:4096])
                url = match.group(1).decode() if match else None
    finally:
        process.terminate()
        process.wait(timeout=30)
    archive = list(reversed(bodies[1:]))  # the archive pages, oldest first
    events = 0
    for index in range(0, len(archive), DEFAULT_BATCH_PAGES):
        rows = [read_page(body, url) for url, body in archive[index : index + DEFAULT_BATCH_PAGES]]
        batch = build_batch(rows)
        events += batch.entry_count
        write_batch(batch, folder / f"{index // DEFAULT_BATCH_PAGES:06d}.batch")
    return events


@contextmanager
def default_row_groups(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The baseline: connect()'s settings and schema, but DuckDB's default row groups."""
    from dropship_pipeline.store import db

    ours = db.duckdb_config()
    settings = {name: ours[name] for name in ("memory_limit", "checkpoint_threshold")}
    con = duckdb.connect(str(path), config=settings)
    try:
        con.execute("SET TimeZone = 'UTC'")
        db.migrate(con)
        yield con
    finally:
        con.close()


def worker(mode: str, batches: Path, db_dir: Path) -> dict:
    from dropship_pipeline.store.batch import read_batch
    from dropship_pipeline.store.db import connect
    from dropship_pipeline.store.inbox import store_batch

    path = db_dir / "bench.duckdb"
    wal = path.with_name(path.name + ".wal")
    loaded = [read_batch(file) for file in sorted(batches.glob("*.batch"))]
    events = sum(batch.entry_count for batch in loaded)
    largest_wal = 0
    opened = connect(path) if mode == "store" else default_row_groups(path)
    started = time.perf_counter()
    with opened as con:
        for batch in loaded:
            store_batch(con, batch, complete=True)
            largest_wal = max(largest_wal, wal.stat().st_size if wal.exists() else 0)
    elapsed = time.perf_counter() - started
    return {
        "events": events,
        "seconds": elapsed,
        "largest_wal_mb": largest_wal / 1e6,
        "file_mb": path.stat().st_size / 1e6,
    }


def run_worker(mode: str, batches: Path, db_dir: Path) -> dict:
    args = [sys.executable, __file__, "--worker", mode, str(batches), str(db_dir)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"worker {mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "BATCHES", "DB_DIR"))
    args = parser.parse_args()
    if args.worker:
        mode, batches, db_dir = args.worker
        print(json.dumps(worker(mode, Path(batches), Path(db_dir))))
        return

    work = Path(tempfile.mkdtemp(prefix="dropship-store-bench-"))
    try:
        batches = work / "batches"
        batches.mkdir()
        events = prepare(args.pages, batches)
        print(f"{events} events in {len(list(batches.glob('*.batch')))} batches")
        results = {}
        for mode in ("default", "store"):
            db_dir = work / mode
            db_dir.mkdir()
            results[mode] = run_worker(mode, batches, db_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'measure':<44}{'us/event':>10}{'WAL MB':>9}{'file MB':>9}")
    labels = {
        "default": "DuckDB defaults (row groups of 122,880)",
        "store": "connect() (row groups of 2,048)",
    }
    for mode, label in labels.items():
        result = results[mode]
        per_event = result["seconds"] * 1e6 / result["events"]
        print(
            f"{label:<44}{per_event:>10.1f}{result['largest_wal_mb']:>9.0f}"
            f"{result['file_mb']:>9.0f}"
        )
    ratio = results["store"]["seconds"] / results["default"]["seconds"]
    print(f"\nstore time / DuckDB defaults: {ratio:.2f}")


if __name__ == "__main__":
    main()
