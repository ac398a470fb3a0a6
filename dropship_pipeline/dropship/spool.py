"""The spool: archive pages fetched but not yet stored, kept on disk, and parsed from there.

A crawl walks back through the archive before it can store anything (pages are stored oldest
first), so the pages it fetched wait here rather than in memory; a crawl killed half-way finds
them again and fetches nothing twice. Parsing spooled pages into a batch needs lxml and Arrow,
not DuckDB: parse workers import this module, not the crawl.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dropship_pipeline.dropship.atom import read_page
from dropship_pipeline.dropship.models import PageRows
from dropship_pipeline.errors import FeedPageError
from dropship_pipeline.store.batch import PageBatch, build_batch

log = logging.getLogger(__name__)


#: A record: magic, the page id's length, the body's length, the body's CRC-32, then both.
_RECORD = struct.Struct("<4sIQI")
_MAGIC = b"DSP1"
SEGMENT_SUFFIX = ".pages"
#: The current page's body, kept for a parse worker only. It is never indexed: the current page
#: still grows, and a copy of it must not stand in for the archive page it later becomes.
CURRENT_PAGE_FILE = "current.page"


@dataclass(frozen=True)
class SpooledPage:
    """Where a spooled page's body is: its segment file (a name in the spool), offset, size."""

    segment: str
    offset: int
    size: int
    crc: int


class PageSpool:
    """Archive pages fetched but not yet stored, appended to segment files.

    One segment per chunk of the walk rather than one file per page: on ext4, creating and
    deleting 2,000 small files cost the crawl's process about 1.5 s of a 100,000-event backfill
    in the kernel's inode allocator. Each page is one record, written with a single unbuffered
    write, so a killed crawl leaves every page written before it whole; a record cut off by the
    kill, or damaged, fails its length or CRC check and is fetched again.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._index: dict[str, SpooledPage] = {}
        self._segment: BinaryIO | None = None
        self._segment_name = ""
        self._offset = 0
        self._scan()

    def get(self, page_id: str) -> bytes | None:
        where = self._index.get(page_id)
        return None if where is None else read_spooled(self.folder, where)

    def where(self, page_id: str) -> SpooledPage | None:
        return self._index.get(page_id)

    def put(self, page_id: str, body: bytes) -> SpooledPage:
        if self._segment is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.folder, prefix="segment-", suffix=SEGMENT_SUFFIX)
            self._segment = os.fdopen(fd, "wb", buffering=0)
            self._segment_name = Path(name).name
            self._offset = 0
        encoded = page_id.encode()
        crc = zlib.crc32(body)
        header = _RECORD.pack(_MAGIC, len(encoded), len(body), crc) + encoded
        record = memoryview(header + body)
        while record:
            record = record[self._segment.write(record) or 0 :]
        where = SpooledPage(self._segment_name, self._offset + len(header), len(body), crc)
        self._offset += len(header) + len(body)
        self._index[page_id] = where
        return where

    def put_current(self, body: bytes) -> SpooledPage:
        """Keep the current page's body where a parse worker can read it (see CURRENT_PAGE_FILE)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / CURRENT_PAGE_FILE
        path.write_bytes(body)
        return SpooledPage(CURRENT_PAGE_FILE, 0, len(body), zlib.crc32(body))

    def seal(self) -> None:
        """End the current segment; the next page starts a new one."""
        if self._segment is not None:
            self._segment.close()
            self._segment = None

    def discard(self, page_id: str) -> None:
        """Forget a page so that the next crawl fetches it again, with its whole segment."""
        where = self._index.get(page_id)
        if where is None:
            return
        if where.segment == self._segment_name:
            self.seal()
        (self.folder / where.segment).unlink(missing_ok=True)
        self._index = {key: at for key, at in self._index.items() if at.segment != where.segment}

    def clear(self) -> None:
        self.seal()
        self._index.clear()
        # ".xml" files are pages spooled by versions before segments.
        for pattern in (f"*{SEGMENT_SUFFIX}", "*.xml", ".*.part", CURRENT_PAGE_FILE):
            for path in self.folder.glob(pattern):
                path.unlink(missing_ok=True)
        self.clear_batches()

    def clear_batches(self) -> None:
        """Parsed batches are per crawl: a killed crawl's are stale."""
        for path in self.folder.glob("*.batch"):
            path.unlink(missing_ok=True)

    def _scan(self) -> None:
        """Index the segments a killed crawl left, up to the first record that is not whole."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob(f"*{SEGMENT_SUFFIX}")):
            size = path.stat().st_size
            with path.open("rb") as handle:
                offset = 0
                while offset + _RECORD.size <= size:
                    magic, id_size, body_size, crc = _RECORD.unpack(handle.read(_RECORD.size))
                    body_at = offset + _RECORD.size + id_size
                    if magic != _MAGIC or body_at + body_size > size:
                        break
                    page_id = handle.read(id_size).decode(errors="replace")
                    self._index[page_id] = SpooledPage(path.name, body_at, body_size, crc)
                    handle.seek(body_size, os.SEEK_CUR)
                    offset = body_at + body_size


def read_spooled(folder: Path, where: SpooledPage, *, verify: bool = True) -> bytes | None:
    """A spooled page's body, or None when its segment is gone or the record is cut off or,
    with ``verify``, damaged."""
    try:
        with (folder / where.segment).open("rb") as handle:
            handle.seek(where.offset)
            body = handle.read(where.size)
    except FileNotFoundError:
        return None
    if len(body) != where.size or (verify and zlib.crc32(body) != where.crc):
        return None
    return body


#: What the crawl hands a parser for each page: its id, URL and where its body is.
PageRef = tuple[str, str, SpooledPage]


def prepare_batch(
    refs: Sequence[PageRef], spool_folder: str
) -> tuple[PageBatch | None, tuple[str, str] | None]:
    """Parse spooled pages, in order, into one batch; stop at the first page that fails.

    Returns the batch of the pages before the failure (None if there are none) and the
    failing page's URL and reason.
    """
    folder = Path(spool_folder)
    pages: list[PageRows] = []
    failure: tuple[str, str] | None = None
    for page_id, url, where in refs:
        # The walk checked this record's CRC when it found it in the spool, or wrote the record
        # itself: a second CRC pass over every page would cost 32 us a page.
        body = read_spooled(folder, where, verify=False)
        if body is None:
            failure = (url, "its spooled copy vanished or is damaged; run the crawl again")
            break
        try:
            page = read_page(body, url)
        except FeedPageError as error:
            # Dropped so that the next crawl fetches the page again rather than re-read it.
            (folder / where.segment).unlink(missing_ok=True)
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
    return (build_batch(pages) if pages else None), failure
