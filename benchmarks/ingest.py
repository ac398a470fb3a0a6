"""Ingest benchmark: the full crawl against its baselines, each measured in a fresh process.

    .venv/bin/python benchmarks/ingest.py [--pages 2000] [--feedparser-pages 40] [--rounds 3]

A simulator (its own process) serves ``--pages`` pages of 50 events over loopback HTTP. Then,
each in a fresh process and in the same run:

- ``raw-fetch``: a plain httpx loop walking the same pages (the transport's floor, and the
  simulator's own pages per second);
- ``fromstring``: bare ``lxml.etree.fromstring`` of every page;
- ``visit``: ``fromstring`` plus reading every element's tag and text (the floor of any
  tree-based extraction);
- ``parse``: our ``parse_page`` alone;
- ``feedparser``: what a user might reach for (on a sample of pages: it is slow);
- ``ingest``: the full crawl (HTTP, parse, DuckDB commit) into a fresh database, with its peak
  resident memory; also at a quarter of the size, to show memory does not grow with the archive.

The machine's speed drifts by up to 1.8 times within minutes, so the measurements run in
``--rounds`` rounds (every one of them once per round, one after another), and the ratios are
taken within each round, where the ingest and its baselines ran close together. Printed: the
median of each figure over the rounds, and each ratio's median with its lowest and highest
round. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENTS_PER_PAGE = 50
TOKEN = "benchmark-token"  # noqa: S105 - a throwaway token of the local simulator
SUPPLIER_ID = 14107
PREV_ARCHIVE = re.compile(rb'<link rel="prev-archive" href="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(events: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dropship_pipeline.simulator",
            "--port",
            str(port),
            "--orders",
            str(events),
            "--supplier-id",
            str(SUPPLIER_ID),
            "--token",
            TOKEN,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 600
    import httpx

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"simulator exited: {process.stderr.read().decode()[-2000:]}")
        try:
            response = httpx.get(
                f"{base_url}/Suppliers({SUPPLIER_ID})/Notifications",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
            )
            if response.status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the simulator did not start within 10 minutes")


def run_worker(name: str, **options: object) -> dict:
    """Run one measurement in a fresh interpreter and return what it printed as JSON."""
    args = [sys.executable, __file__, "--worker", name]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"worker {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- workers, each in its own process ----------------------------------------------------


def worker_raw_fetch(base_url: str, pages_dir: str) -> dict:
    import httpx

    folder = Path(pages_dir)
    url: str | None = f"{base_url}/Suppliers({SUPPLIER_ID})/Notifications"
    bodies = []
    started = time.perf_counter()
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        while url:
            body = client.get(url).content
            bodies.append(body)
            match = PREV_ARCHIVE.search(body[:4096])
            url = match.group(1).decode() if match else None
    elapsed = time.perf_counter() - started
    for index, body in enumerate(bodies):
        (folder / f"{index:06d}.xml").write_bytes(body)
    events = sum(body.count(b"<entry>") for body in bodies)
    size = sum(len(body) for body in bodies)
    return {
        "pages": len(bodies),
        "events": events,
        "seconds": elapsed,
        "mean_page_kb": size / len(bodies) / 1024,
    }


def _load_pages(pages_dir: str, limit: int | None = None) -> list[bytes]:
    paths = sorted(Path(pages_dir).glob("*.xml"))
    return [path.read_bytes() for path in paths[:limit]]


def worker_fromstring(pages_dir: str) -> dict:
    from lxml import etree

    pages = _load_pages(pages_dir)
    started = time.perf_counter()
    for body in pages:
        etree.fromstring(body)
    elapsed = time.perf_counter() - started
    events = sum(body.count(b"<entry>") for body in pages)
    return {"pages": len(pages), "events": events, "seconds": elapsed}


def worker_visit(pages_dir: str) -> dict:
    from lxml import etree

    pages = _load_pages(pages_dir)
    started = time.perf_counter()
    seen = 0
    for body in pages:
        root = etree.fromstring(body)
        for element in root.iter():
            tag = element.tag
            text = element.text
            if tag and text:
                seen += 1
    elapsed = time.perf_counter() - started
    events = sum(body.count(b"<entry>") for body in pages)
    return {"pages": len(pages), "events": events, "seconds": elapsed, "texts": seen}


def worker_parse(pages_dir: str) -> dict:
    from dropship_pipeline.dropship.atom import parse_page

    pages = _load_pages(pages_dir)
    started = time.perf_counter()
    events = 0
    for index, body in enumerate(pages):
        events += len(parse_page(body, f"page-{index}").entries)
    elapsed = time.perf_counter() - started
    return {"pages": len(pages), "events": events, "seconds": elapsed}


def worker_feedparser(pages_dir: str, limit: int) -> dict:
    import feedparser

    pages = _load_pages(pages_dir, limit)
    started = time.perf_counter()
    events = 0
    for body in pages:
        events += len(feedparser.parse(body).entries)
    elapsed = time.perf_counter() - started
    return {"pages": len(pages), "events": events, "seconds": elapsed}


def worker_ingest(base_url: str, db_dir: str) -> dict:
    from dropship_pipeline.dropship.auth import StaticToken
    from dropship_pipeline.dropship.client import DropshipClient
    from dropship_pipeline.dropship.crawl import crawl_feed

    db_path = Path(db_dir) / "bench.duckdb"
    client = DropshipClient(api_url=base_url, supplier_id=SUPPLIER_ID, tokens=StaticToken(TOKEN))
    started = time.perf_counter()
    with client:
        counts = crawl_feed(client, db_path, spool_dir=Path(db_dir) / "spool")
    elapsed = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "pages": counts.pages_read,
        "events": counts.events_new,
        "orders": counts.orders_new,
        "seconds": elapsed,
        "peak_rss_mb": peak_rss_mb(),
        "worker_peak_rss_mb": workers.ru_maxrss / 1024,
        # CPU seconds (user, system) of the crawl's process and of its parse workers.
        "cpu_main": [own.ru_utime, own.ru_stime],
        "cpu_workers": [workers.ru_utime, workers.ru_stime],
    }


WORKERS = {
    "raw-fetch": worker_raw_fetch,
    "fromstring": worker_fromstring,
    "visit": worker_visit,
    "parse": worker_parse,
    "feedparser": worker_feedparser,
    "ingest": worker_ingest,
}


# ---- the run --------------------------------------------------------------------------------


def rate(result: dict) -> float:
    return result["events"] / result["seconds"]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def measure(pages: int, feedparser_pages: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="dropship-bench-"))
    runs: dict[str, list[dict]] = {name: [] for name in WORKERS}
    try:
        print(f"serving {pages} pages ({pages * EVENTS_PER_PAGE} events) from the simulator")
        process, base_url = start_simulator(pages * EVENTS_PER_PAGE)
        try:
            pages_dir = work / "pages"
            pages_dir.mkdir()
            raw = run_worker("raw-fetch", base_url=base_url, pages_dir=pages_dir)
            for number in range(1, rounds + 1):
                print(f"round {number} of {rounds}", flush=True)
                database = _fresh(work / f"db-{number}")
                runs["ingest"].append(run_worker("ingest", base_url=base_url, db_dir=database))
                shutil.rmtree(database, ignore_errors=True)
                runs["fromstring"].append(run_worker("fromstring", pages_dir=pages_dir))
                runs["visit"].append(run_worker("visit", pages_dir=pages_dir))
                runs["parse"].append(run_worker("parse", pages_dir=pages_dir))
                runs["feedparser"].append(
                    run_worker("feedparser", pages_dir=pages_dir, limit=feedparser_pages)
                )
        finally:
            process.terminate()
            process.wait(timeout=30)

        quarter = max(1, pages // 4)
        process, base_url = start_simulator(quarter * EVENTS_PER_PAGE)
        try:
            small = run_worker("ingest", base_url=base_url, db_dir=_fresh(work / "db-small"))
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median_rate(name: str) -> float:
        return median([rate(result) for result in runs[name]])

    def ratio(name: str) -> tuple[float, float, float]:
        ratios = [
            rate(ingest) / rate(base)
            for ingest, base in zip(runs["ingest"], runs[name], strict=True)
        ]
        return median(ratios), min(ratios), max(ratios)

    print(f"pages served: {raw['pages']}, {raw['mean_page_kb']:.1f} KB a page on average")
    print(f"medians over {rounds} round(s)")
    rows = [
        ("lxml fromstring", "fromstring"),
        ("fromstring + visit every element", "visit"),
        ("parse_page (our parser)", "parse"),
        (f"feedparser ({runs['feedparser'][0]['pages']} pages)", "feedparser"),
        ("full ingest: HTTP + parse + DuckDB", "ingest"),
    ]
    print(f"{'measure':<40}{'events/s':>12}{'pages/s':>10}")
    raw_pages = raw["pages"] / raw["seconds"]
    print(f"{'raw HTTP fetch (simulator alone)':<40}{rate(raw):>12,.0f}{raw_pages:>10,.0f}")
    for label, name in rows:
        events_per_page = runs[name][0]["events"] / runs[name][0]["pages"]
        value = median_rate(name)
        print(f"{label:<40}{value:>12,.0f}{value / events_per_page:>10,.0f}")
    print()
    for name, label, target in (
        ("visit", "ingest / parse-plus-visit", "(target >= 0.5)"),
        ("feedparser", "ingest / feedparser", "(target >= 20)"),
    ):
        middle, low, high = ratio(name)
        print(f"{label + ':':<27}{middle:.2f}  {target}, rounds {low:.2f} to {high:.2f}")
    print(f"{'ingest / raw fetch:':<27}{median_rate('ingest') / rate(raw):.2f}")
    events = runs["ingest"][0]["events"] or 1

    def cpu(key: str, part: int | None = None) -> float:
        values = [
            (sum(result[key]) if part is None else result[key][part]) * 1e6 / events
            for result in runs["ingest"]
        ]
        return median(values)

    print(
        f"ingest CPU per event: {cpu('cpu_main'):.0f} us in the crawl's process "
        f"({cpu('cpu_main', 1):.0f} system), {cpu('cpu_workers'):.0f} us in its parse workers "
        f"({cpu('cpu_workers', 1):.0f} system)"
    )
    peak = max(result["peak_rss_mb"] for result in runs["ingest"])
    worker_peak = max(result["worker_peak_rss_mb"] for result in runs["ingest"])
    ingest_pages = runs["ingest"][0]["pages"]
    print(
        f"ingest peak memory (highest round): {peak:.0f} MB for {ingest_pages} pages, "
        f"{small['peak_rss_mb']:.0f} MB for {small['pages']} pages (target < 300 MB, flat); "
        f"its parse worker: {worker_peak:.0f} MB and {small['worker_peak_rss_mb']:.0f} MB"
    )


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--feedparser-pages", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--base-url")
    parser.add_argument("--pages-dir")
    parser.add_argument("--db-dir")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    if args.worker is None:
        measure(args.pages, args.feedparser_pages, max(1, args.rounds))
        return
    options = {
        key: value
        for key, value in {
            "base_url": args.base_url,
            "pages_dir": args.pages_dir,
            "db_dir": args.db_dir,
            "limit": args.limit,
        }.items()
        if value is not None
    }
    print(json.dumps(WORKERS[args.worker](**options)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
