"""The RFC 5005 archive crawl of the Order Notifications feed.

One crawl:

1. fetches the current page;
2. walks ``prev-archive`` links back until it reaches a page that is already stored complete
   (or the oldest page), keeping each archive page's bytes in a spool folder on disk, so memory
   does not grow with the archive and a crawl killed half-way fetches nothing twice;
3. stores the archive pages oldest first, a batch of pages per DuckDB transaction, each batch
   together with the ``feed_pages`` rows that mark those pages complete (the crawl position).
   During a backfill the pages are parsed by a worker process (``parse_worker``) while the
   walk goes on, so that parsing, HTTP and DuckDB's writes do not queue on one core's GIL;
4. stores the current page last, as not complete: it still grows, and a later crawl reads it
   again (its entries are deduplicated) until it rolls over into an archive.

A page that cannot be parsed stops the crawl there: pages older than it that were already
stored stay stored, nothing newer is stored (so nothing is skipped), and FeedPageError names
the page. Its spooled bytes are dropped so that the next crawl fetches it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
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
    batch_from_bytes,
    build_batch,
    complete_page_ids,
    store_batch,
    store_pages,
)

log = logging.getLogger(__name__)

#: Archive pages per DuckDB transaction. A commit costs a few milliseconds (the WAL is
#: flushed), so one per page would cap a backfill near 8,000 events a second.
DEFAULT_BATCH_PAGES = 20
WORKER_MODULE = "dropship_pipeline.dropship.parse_worker"
WORKER_EXIT_SECONDS = 10


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
        self.clear_batches()

    def clear_batches(self) -> None:
        """Parsed batches are per crawl: a killed crawl's are stale."""
        for path in self.folder.glob("*.batch"):
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
    spool.clear_batches()
    counts = IngestCounts()

    current_url = source.current_page_url
    current_body = source.fetch_page(current_url).body
    current = parse_page(current_body, current_url)

    with connect(db_path) as con:
        complete = complete_page_ids(con)
    parser = _ChunkParser(spool)
    try:
        chain = _walk_back(source, current, complete, spool, batch_pages, parser.submit)
        log.info("feed walk: %d archive page(s) to store behind the current page", len(chain))

        with connect(db_path) as con:
            for chunk in reversed(range(parser.chunks)):
                batch, page_ids, failure = parser.result(chunk)
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
    finally:
        parser.close()
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


_Result = tuple[PageBatch | None, list[str], tuple[str, str] | None]


class _ChunkParser:
    """Parses the walk's chunks of pages: in a worker process once the walk proves long (a
    backfill), else in this process. Chunk 0 is the newest; each chunk lists pages oldest first.
    If the worker cannot be started or dies, the chunks it owes are parsed here instead."""

    def __init__(self, spool: PageSpool) -> None:
        self.spool = spool
        self.chunks = 0
        self._refs: dict[int, list[tuple[str, str]]] = {}
        self._answers: dict[int, dict] = {}
        self._worker: subprocess.Popen[str] | None = None

    def submit(self, refs: list[tuple[str, str]], *, last: bool) -> None:
        chunk = self.chunks
        self.chunks += 1
        self._refs[chunk] = refs
        if self._worker is None and not last:
            self._start_worker()
        if self._worker is not None:
            try:
                request = {"chunk": chunk, "pages": refs}
                assert self._worker.stdin is not None
                self._worker.stdin.write(json.dumps(request) + "\n")
                self._worker.stdin.flush()
            except OSError as error:
                self._give_up(f"it stopped taking work ({error})")

    def result(self, chunk: int) -> _Result:
        refs = self._refs.pop(chunk)
        answer = self._answer(chunk) if self._worker is not None else None
        if answer is None:
            return prepare_batch(refs, str(self.spool.folder))
        batch = None
        if answer["file"] is not None:
            path = self.spool.folder / answer["file"]
            batch = batch_from_bytes(path.read_bytes())
            path.unlink(missing_ok=True)
        failure = tuple(answer["failure"]) if answer["failure"] is not None else None
        return batch, list(answer["page_ids"]), failure  # type: ignore[return-value]

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            if worker.stdin is not None:
                worker.stdin.close()
            worker.wait(timeout=WORKER_EXIT_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            worker.kill()
            worker.wait()
        finally:
            if worker.stdout is not None:
                worker.stdout.close()

    def _start_worker(self) -> None:
        try:
            self._worker = subprocess.Popen(  # noqa: S603 - this interpreter, our module
                [sys.executable, "-m", WORKER_MODULE, str(self.spool.folder)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        except OSError as error:
            log.warning("feed walk: parsing here, the parse worker did not start (%s)", error)

    def _answer(self, chunk: int) -> dict | None:
        worker = self._worker
        assert worker is not None and worker.stdout is not None
        while chunk not in self._answers:
            line = worker.stdout.readline()
            if not line:
                self._give_up("it ended early")
                return None
            answer = json.loads(line)
            self._answers[int(answer["chunk"])] = answer
        return self._answers.pop(chunk)

    def _give_up(self, why: str) -> None:
        log.warning("feed walk: parsing here from now on, the parse worker failed: %s", why)
        self.close()


def _walk_back(
    source: FeedSource,
    current: FeedPage,
    complete: set[str],
    spool: PageSpool,
    batch_pages: int,
    on_chunk: Callable[..., None],
) -> list[_ArchiveRef]:
    """Follow prev-archive from the current page to the newest complete page, newest first.

    Every ``batch_pages`` pages, and at the end, hands the pages since the last chunk to
    ``on_chunk`` (oldest first), so that they can be parsed while the walk goes on.
    """
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
        if len(chain) % batch_pages == 0 and url:
            on_chunk(_oldest_first(chain[-batch_pages:]), last=False)
    tail = len(chain) % batch_pages
    if tail == 0 and chain and not url:
        tail = batch_pages  # the walk ended at the oldest page, on a chunk boundary
    if tail:
        on_chunk(_oldest_first(chain[-tail:]), last=True)
    return chain


def _oldest_first(refs: list[_ArchiveRef]) -> list[tuple[str, str]]:
    return [(ref.page_id, ref.url) for ref in reversed(refs)]


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
