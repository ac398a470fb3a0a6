"""Measure how fast a running simulator serves its feed, on its own.

    python -m dropship_pipeline.simulator --port 8765 --orders 100000 --token bench &
    .venv/bin/python benchmarks/simulator.py --url http://127.0.0.1:8765/v1 --token bench

Walks ``prev-archive`` from the current page to the oldest with a plain httpx loop, twice, and
prints pages per second. Links are found with a byte search, not a parser, so that the number
is about serving and transport, not about parsing.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import httpx

_PREV = re.compile(rb'<link rel="prev-archive" href="([^"]+)"')


def walk(client: httpx.Client, url: str) -> tuple[int, int, float]:
    """Pages, bytes and seconds for one walk from ``url`` to the oldest page."""
    pages = size = 0
    started = time.perf_counter()
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        response.raise_for_status()
        pages += 1
        size += len(response.content)
        found = _PREV.search(response.content, 0, 4096)
        next_url = found.group(1).decode() if found else None
    return pages, size, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the simulator's base URL, /v1 included")
    parser.add_argument("--token", required=True, help="a bearer token the simulator accepts")
    parser.add_argument("--supplier-id", type=int, default=14107)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args(argv)

    headers = {"Authorization": f"Bearer {args.token}"}
    feed = f"{args.url.rstrip('/')}/Suppliers({args.supplier_id})/Notifications"
    with httpx.Client(headers=headers, timeout=30) as client:
        for n in range(1, args.passes + 1):
            pages, size, seconds = walk(client, feed)
            print(
                f"pass {n}: {pages} pages, {size / pages / 1024:.0f} KiB per page, "
                f"{seconds:.2f} s, {pages / seconds:.0f} pages/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
