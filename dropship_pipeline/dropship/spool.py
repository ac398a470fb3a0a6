"""The spool: archive pages fetched but not yet stored, kept on disk, and parsed from there.

A crawl walks back through the archive before it can store anything (pages are stored oldest
first), so the pages it fetched wait here rather than in memory; a crawl killed half-way finds
them again and fetches nothing twice. Parsing spooled pages into a batch needs lxml and Arrow,
not DuckDB: parse workers import this module, not the crawl.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dropship_pipeline.dropship.atom import read_page
from dropship_pipeline.dropship.models import PageRows
from dropship_pipeline.errors import FeedPageError
from dropship_pipeline.store.batch import PageBatch, build_batch

log = logging.getLogger(__name__)


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
        # Temporary ".part" files are what a process killed mid-write leaves behind.
        for pattern in ("*.xml", ".*.part"):
            for path in self.folder.glob(pattern):
                path.unlink(missing_ok=True)
        self.clear_batches()

    def clear_batches(self) -> None:
        """Parsed batches are per crawl: a killed crawl's are stale."""
        for path in self.folder.glob("*.batch"):
            path.unlink(missing_ok=True)


def prepare_batch(
    refs: Sequence[tuple[str, str]], spool_folder: str
) -> tuple[PageBatch | None, list[str], tuple[str, str] | None]:
    """Parse spooled pages, in order, into one batch; stop at the first page that fails.

    Returns the batch of the pages before the failure (None if there are none), their ids,
    and the failing page's URL and reason.
    """
    spool = PageSpool(Path(spool_folder))
    pages: list[PageRows] = []
    failure: tuple[str, str] | None = None
    for page_id, url in refs:
        body = spool.get(page_id)
        if body is None:
            failure = (url, "its spooled copy vanished; run the crawl again")
            break
        try:
            page = read_page(body, url)
        except FeedPageError as error:
            # Dropped so that the next crawl fetches the page again rather than re-read it.
            spool.discard(page_id)
            failure = (error.url, error.reason)
            break
        if page.page_id != page_id:
            # The crawl position must use the id the walk meets in prev-archive links, or the
            # page would never count as stored and every poll would fetch it again.
            log.warning(
                "feed page %s calls itself %s; stored under %s, the id its newer page links to",
                url,
                page.page_id,
                page_id,
            )
            page = page._replace(page_id=page_id)
        pages.append(page)
    batch = build_batch(pages) if pages else None
    return batch, [page.page_id for page in pages], failure
