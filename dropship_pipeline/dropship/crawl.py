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

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Protocol

from dropship_pipeline.dropship.atom import page_id_from_url, parse_links, read_page
from dropship_pipeline.dropship.models import PageRows
from dropship_pipeline.dropship.spool import PageRef, PageSpool, SpooledPage, prepare_batch
from dropship_pipeline.errors import FeedPageError
from dropship_pipeline.store.batch import PageBatch, read_batch
from dropship_pipeline.store.db import connect
from dropship_pipeline.store.inbox import (
    IngestCounts,
    complete_page_ids,
    store_batch,
    store_pages,
)

log = logging.getLogger(__name__)

#: Archive pages per DuckDB transaction. Each statement and commit has a fixed cost of a few
#: milliseconds: at 20 pages a 100,000-event backfill spent 4.9 s in DuckDB, at 50 pages 3.7 s.
DEFAULT_BATCH_PAGES = 50
WORKER_MODULE = "dropship_pipeline.dropship.parse_worker"
WORKER_EXIT_SECONDS = 10
#: A chunk of 50 pages parses in about a second; a worker silent for this long is stuck, and
#: its chunk is parsed in this process instead.
WORKER_CHUNK_SECONDS = 300.0
#: Parsing must keep ahead of the DuckDB writes, which wait for it once the walk ends. Two
#: workers (at a lower priority, see parse_worker) left the writer waiting 1.3 s in a
#: 100,000-event backfill rather than 2.5 s with one; each costs about 165 MB at its peak.
DEFAULT_PARSE_WORKERS = 2
#: A worker allocates and frees a few hundred MB of short-lived buffers per chunk. By default
#: Arrow's allocator and glibc hand that memory back to the kernel and fault it in again, which
#: cost 14 us of system time an event; with these, 5 us (wall time per event down about 7%),
#: and a worker's peak went down from about 200 MB to about 165 MB.
WORKER_ENVIRONMENT = {
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
}


class FetchedBody(Protocol):
    @property
    def body(self) -> bytes: ...


class FeedSource(Protocol):
    """What the crawl needs of the Dropship client."""

    @property
    def current_page_url(self) -> str: ...

    def fetch_page(self, url: str) -> FetchedBody: ...


@dataclass(frozen=True)
class _ArchiveRef:
    page_id: str
    url: str
    spooled: SpooledPage


def archive_page_id(url: str) -> str:
    """The stable id of an archive page: its GUID, or the URL itself when it has none."""
    return page_id_from_url(url) or url


def crawl_feed(
    source: FeedSource,
    db_path: Path | str,
    *,
    spool_dir: Path | str,
    batch_pages: int = DEFAULT_BATCH_PAGES,
    parse_workers: int = DEFAULT_PARSE_WORKERS,
    on_batch: Callable[[IngestCounts], None] | None = None,
) -> IngestCounts:
    """Bring the database up to date with the feed; return what was read and stored.

    A backfill longer than one batch is parsed by ``parse_workers`` worker processes while
    the walk goes on; 0 parses everything in this process.
    """
    spool = PageSpool(Path(spool_dir))
    spool.clear_batches()
    counts = IngestCounts()

    current_url = source.current_page_url
    current_body = source.fetch_page(current_url).body
    current = read_page(current_body, current_url)

    with connect(db_path) as con:
        complete = complete_page_ids(con)
    parser = _ChunkParser(spool, parse_workers)
    try:
        chain = _walk_back(source, current, complete, spool, batch_pages, parser.submit)
        log.info("feed walk: %d archive page(s) to store behind the current page", len(chain))

        # In a backfill a worker builds the current page's batch too: here it would be this
        # process's first Arrow conversion, on which pyarrow imports pandas (0.3 s at the end
        # of the crawl, when the workers are done and one core is idle).
        current_in_worker = parser.submit_current(current_url, current, current_body)

        with connect(db_path) as con:
            for chunk in reversed(range(parser.chunks)):
                batch, failure = parser.result(chunk)
                if batch is not None:
                    stored = store_batch(con, batch, complete=True)
                    counts.add(stored)
                    if on_batch is not None:
                        on_batch(stored)
                if failure is not None:
                    raise FeedPageError(*failure)

            if current_in_worker:
                batch, failure = parser.result(CURRENT_CHUNK)
                if failure is not None:
                    raise FeedPageError(*failure)
                assert batch is not None  # one page: a batch, or the failure of that page
                counts.add(store_batch(con, batch, complete=False))
            else:
                counts.add(store_pages(con, [current], complete=False))
    finally:
        spool.seal()
        parser.close()
    # Every page is stored now, this crawl's and any a killed crawl left in the spool.
    spool.clear()

    log.info(
        "feed crawl: %d page(s) read, %d new event(s), %d duplicate(s), %d new order(s)",
        counts.pages_read,
        counts.events_new,
        counts.events_duplicate,
        counts.orders_new,
    )
    return counts


_Result = tuple[PageBatch | None, tuple[str, str] | None]
#: The chunk number of the current page. Workers take the highest number first, so it comes
#: last, when the crawl needs it: after every archive chunk.
CURRENT_CHUNK = -1


class _Worker:
    """One parse worker process and the thread that reads its answers."""

    def __init__(self, spool_folder: Path, answers: dict[int, dict], ready: threading.Condition):
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", WORKER_MODULE, str(spool_folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **WORKER_ENVIRONMENT},
        )
        self.alive = True
        self._answers = answers
        self._ready = ready
        # Requests go through a thread of their own: a worker that stops reading fills its pipe,
        # and the walk must not wait on that. Such a worker is found out by its silence.
        self._requests: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, name="parse-answers", daemon=True)
        self._reader.start()
        self._writer = threading.Thread(target=self._write, name="parse-requests", daemon=True)
        self._writer.start()

    def send(self, chunk: int, refs: list[PageRef]) -> bool:
        if not self.alive:
            return False
        pages = [[page_id, url, *astuple(where)] for page_id, url, where in refs]
        self._requests.put(json.dumps({"chunk": chunk, "pages": pages}) + "\n")
        return True

    def stop(self) -> None:
        """Kill a worker that stopped answering; its other chunks are parsed in process."""
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        self._requests.put(None)  # the writer closes the worker's input: its end of work
        self._writer.join(timeout=WORKER_EXIT_SECONDS)
        try:
            self.process.wait(timeout=WORKER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._writer.join(timeout=WORKER_EXIT_SECONDS)
        self._reader.join(timeout=WORKER_EXIT_SECONDS)

    def _write(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while (request := self._requests.get()) is not None:
                stdin.write(request)
                stdin.flush()
        except OSError as error:
            log.warning("feed walk: a parse worker stopped taking work (%s)", error)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                answer = json.loads(line)
                with self._ready:
                    self._answers[int(answer["chunk"])] = answer
                    self._ready.notify_all()
        with self._ready:
            self.alive = False
            self._ready.notify_all()


class _ChunkParser:
    """Parses the walk's chunks of pages: in worker processes once the walk proves long (a
    backfill), else in this process. Chunk 0 is the newest; each chunk lists pages oldest
    first. A chunk whose worker could not take it or died is parsed here instead."""

    def __init__(self, spool: PageSpool, workers: int) -> None:
        self.spool = spool
        self.chunks = 0
        self._wanted_workers = workers
        self._refs: dict[int, list[PageRef]] = {}
        self._owner: dict[int, _Worker] = {}
        self._answers: dict[int, dict] = {}
        self._ready = threading.Condition()
        self._workers: list[_Worker] = []

    def submit(self, refs: list[PageRef], *, last: bool) -> None:
        chunk = self.chunks
        self.chunks += 1
        self._refs[chunk] = refs
        if not self._workers and not last:
            self._start_workers()
        if self._workers:
            worker = self._workers[chunk % len(self._workers)]
            if worker.send(chunk, refs):
                self._owner[chunk] = worker

    def submit_current(self, url: str, page: PageRows, body: bytes) -> bool:
        """Hand the current page to a worker, if there are any; tell whether it was."""
        if not self._workers:
            return False
        where = self.spool.put_current(body)
        self._refs[CURRENT_CHUNK] = [(page.page_id, url, where)]
        worker = self._workers[CURRENT_CHUNK % len(self._workers)]
        if worker.send(CURRENT_CHUNK, self._refs[CURRENT_CHUNK]):
            self._owner[CURRENT_CHUNK] = worker
        return True

    def result(self, chunk: int) -> _Result:
        refs = self._refs.pop(chunk)
        worker = self._owner.pop(chunk, None)
        answer = None
        if worker is not None:
            with self._ready:
                answered = self._ready.wait_for(
                    lambda: chunk in self._answers or not worker.alive,
                    timeout=WORKER_CHUNK_SECONDS,
                )
                answer = self._answers.pop(chunk, None)
            if not answered:
                log.warning(
                    "feed walk: a parse worker gave no answer in %.0f s; stopping it and "
                    "parsing its pages here",
                    WORKER_CHUNK_SECONDS,
                )
                worker.stop()
        if answer is None:
            return prepare_batch(refs, str(self.spool.folder))
        batch = None
        if answer["file"] is not None:
            path = self.spool.folder / answer["file"]
            batch = read_batch(path)
            path.unlink(missing_ok=True)
        failure = tuple(answer["failure"]) if answer["failure"] is not None else None
        return batch, failure

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()

    def _start_workers(self) -> None:
        for _ in range(self._wanted_workers):
            try:
                self._workers.append(_Worker(self.spool.folder, self._answers, self._ready))
            except OSError as error:
                log.warning("feed walk: a parse worker did not start (%s)", error)
                break


def _walk_back(
    source: FeedSource,
    current: PageRows,
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

        spooled = spool.where(page_id)
        body = None if spooled is None else spool.get(page_id)
        if body is None:
            body = source.fetch_page(url).body
            links = parse_links(body, url)  # a page that fails is not spooled
            spooled = spool.put(page_id, body)
        else:
            try:
                links = parse_links(body, url)
            except FeedPageError:
                spool.discard(page_id)
                raise
        assert spooled is not None
        chain.append(_ArchiveRef(page_id, url, spooled))
        url = links.prev_archive_url
        if len(chain) % batch_pages == 0 and url:
            spool.seal()  # a worker reads these pages now
            on_chunk(_oldest_first(chain[-batch_pages:]), last=False)
    tail = len(chain) % batch_pages
    if tail == 0 and chain and not url:
        tail = batch_pages  # the walk ended at the oldest page, on a chunk boundary
    spool.seal()
    if tail:
        on_chunk(_oldest_first(chain[-tail:]), last=True)
    return chain


def _oldest_first(refs: list[_ArchiveRef]) -> list[PageRef]:
    return [(ref.page_id, ref.url, ref.spooled) for ref in reversed(refs)]
