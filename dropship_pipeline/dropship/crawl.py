"""The RFC 5005 archive crawl of the Order Notifications feed.

One crawl:

1. fetches the current page;
2. walks ``prev-archive`` links back until it reaches a page that is already stored complete
   (or the oldest page), keeping each archive page's bytes in a spool folder on disk, so memory
   does not grow with the archive and a crawl killed half-way fetches nothing twice;
3. stores the archive pages oldest first, a batch of pages per DuckDB transaction, each batch
   together with the ``feed_pages`` rows that mark those pages complete (the crawl position);
4. stores the current page last, as not complete: it still grows, and a later crawl reads it
   again (its entries are deduplicated) until it rolls over into an archive.

A page that cannot be parsed stops the crawl there: pages older than it that were already
stored stay stored, nothing newer is stored (so nothing is skipped), and FeedPageError names
the page. Its spooled bytes are dropped so that the next crawl fetches it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dropship_pipeline.dropship.atom import page_id_from_url, parse_links, parse_page
from dropship_pipeline.dropship.models import FeedPage
from dropship_pipeline.errors import FeedPageError
from dropship_pipeline.store.db import connect
from dropship_pipeline.store.inbox import (
    IngestCounts,
    PageBatch,
    build_batch,
    complete_page_ids,
    store_batch,
    store_pages,
)

log = logging.getLogger(__name__)

#: Archive pages per DuckDB transaction. A commit costs a few milliseconds (the WAL is
#: flushed), so one per page would cap a backfill near 8,000 events a second.
DEFAULT_BATCH_PAGES = 20


class FetchedBody(Protocol):
    body: bytes


class FeedSource(Protocol):
    """What the crawl needs of the Dropship client."""

    @property
    def current_page_url(self) -> str: ...

    def fetch_page(self, url: str) -> FetchedBody: ...


@dataclass(frozen=True)
class _ArchiveRef:
    page_id: str
    url: str


class PageSpool:
    """Archive pages fetched but not yet stored, one file per page, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, page_id: str) -> Path:
        # Page ids come from the network: hash them rather than trust them as file names.
        return self.folder / (hashlib.sha256(page_id.encode()).hexdigest()[:40] + ".xml")

    def get(self, page_id: str) -> bytes | None:
        try:
            return self._path(page_id).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, page_id: str, body: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(temp, self._path(page_id))
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def discard(self, page_id: str) -> None:
        self._path(page_id).unlink(missing_ok=True)

    def clear(self) -> None:
        for path in self.folder.glob("*.xml"):
            path.unlink(missing_ok=True)


def archive_page_id(url: str) -> str:
    """The stable id of an archive page: its GUID, or the URL itself when it has none."""
    return page_id_from_url(url) or url


def crawl_feed(
    source: FeedSource,
    db_path: Path | str,
    *,
    spool_dir: Path | str,
    batch_pages: int = DEFAULT_BATCH_PAGES,
    on_batch: Callable[[IngestCounts], None] | None = None,
) -> IngestCounts:
    """Bring the database up to date with the feed; return what was read and stored."""
    spool = PageSpool(Path(spool_dir))
    counts = IngestCounts()

    current_url = source.current_page_url
    current_body = source.fetch_page(current_url).body
    current = parse_page(current_body, current_url)

    with connect(db_path) as con:
        complete = complete_page_ids(con)
    chain = _walk_back(source, current, complete, spool)
    log.info("feed walk: %d archive page(s) to store behind the current page", len(chain))

    oldest_first = [(ref.page_id, ref.url) for ref in reversed(chain)]
    batches = [
        oldest_first[start : start + batch_pages]
        for start in range(0, len(oldest_first), batch_pages)
    ]
    with connect(db_path) as con, ThreadPoolExecutor(max_workers=1) as pool:
        # The next batch is parsed while this one is written: DuckDB releases the GIL.
        pending = pool.submit(prepare_batch, batches[0], str(spool.folder)) if batches else None
        for index in range(len(batches)):
            assert pending is not None
            batch, page_ids, failure = pending.result()
            if failure is None and index + 1 < len(batches):
                pending = pool.submit(prepare_batch, batches[index + 1], str(spool.folder))
            if batch is not None:
                stored = store_batch(con, batch, complete=True)
                counts.add(stored)
                for page_id in page_ids:
                    spool.discard(page_id)
                if on_batch is not None:
                    on_batch(stored)
            if failure is not None:
                raise FeedPageError(*failure)

        counts.add(store_pages(con, [current], complete=False))
    # What is left in the spool belongs to pages a killed crawl stored but did not discard.
    spool.clear()

    log.info(
        "feed crawl: %d page(s) read, %d new event(s), %d duplicate(s), %d new order(s)",
        counts.pages_read,
        counts.events_new,
        counts.events_duplicate,
        counts.orders_new,
    )
    return counts


def _walk_back(
    source: FeedSource, current: FeedPage, complete: set[str], spool: PageSpool
) -> list[_ArchiveRef]:
    """Follow prev-archive from the current page to the newest complete page, newest first."""
    chain: list[_ArchiveRef] = []
    seen = {current.page_id}
    url = current.links.prev_archive_url
    while url:
        page_id = archive_page_id(url)
        if page_id in complete:
            break
        if page_id in seen:
            raise FeedPageError(url, "the prev-archive links loop back to a page already read")
        seen.add(page_id)

        body = spool.get(page_id)
        if body is None:
            body = source.fetch_page(url).body
            spool.put(page_id, body)
        try:
            links = parse_links(body, url)
        except FeedPageError:
            spool.discard(page_id)
            raise
        chain.append(_ArchiveRef(page_id, url))
        url = links.prev_archive_url
    return chain


def prepare_batch(
    refs: Sequence[tuple[str, str]], spool_folder: str
) -> tuple[PageBatch | None, list[str], tuple[str, str] | None]:
    """Parse spooled pages, in order, into one batch; stop at the first page that fails.

    Returns the batch of the pages before the failure (None if there are none), their ids,
    and the failing page's URL and reason.
    """
    spool = PageSpool(Path(spool_folder))
    pages: list[FeedPage] = []
    failure: tuple[str, str] | None = None
    for page_id, url in refs:
        body = spool.get(page_id)
        if body is None:
            failure = (url, "its spooled copy vanished; run the crawl again")
            break
        try:
            pages.append(parse_page(body, url))
        except FeedPageError as error:
            # Dropped so that the next crawl fetches the page again rather than re-read it.
            spool.discard(page_id)
            failure = (error.url, error.reason)
            break
    batch = build_batch(pages) if pages else None
    return batch, [page.page_id for page in pages], failure
