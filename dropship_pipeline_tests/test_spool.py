"""The page spool: segment files that survive a killed crawl and refuse damaged records."""

from __future__ import annotations

from pathlib import Path

from dropship_pipeline.dropship.spool import SEGMENT_SUFFIX, PageSpool


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{SEGMENT_SUFFIX}"))


def test_pages_written_before_a_crash_are_found_by_the_next_crawl(tmp_path):
    spool = PageSpool(tmp_path)
    spool.put("page-a", b"<feed>a</feed>")
    spool.seal()
    spool.put("page-b", b"<feed>b</feed>")
    # No seal, no close: what a SIGKILL leaves. Every write went to the file already.

    again = PageSpool(tmp_path)

    assert again.get("page-a") == b"<feed>a</feed>"
    assert again.get("page-b") == b"<feed>b</feed>"
    assert again.get("page-c") is None
    assert len(segments(tmp_path)) == 2
    spool.seal()


def test_a_record_cut_off_by_a_kill_is_fetched_again_and_the_ones_before_it_are_kept(tmp_path):
    spool = PageSpool(tmp_path)
    spool.put("whole", b"x" * 1000)
    spool.put("cut", b"y" * 1000)
    spool.seal()
    (segment,) = segments(tmp_path)
    segment.write_bytes(segment.read_bytes()[:-10])

    again = PageSpool(tmp_path)

    assert again.get("whole") == b"x" * 1000
    assert again.get("cut") is None


def test_a_damaged_body_fails_its_checksum(tmp_path):
    spool = PageSpool(tmp_path)
    where = spool.put("page", b"<feed>original</feed>")
    spool.seal()
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[where.offset] ^= 0xFF
    segment.write_bytes(bytes(data))

    assert PageSpool(tmp_path).get("page") is None


def test_discarding_a_page_drops_its_segment_and_clear_empties_the_folder(tmp_path):
    spool = PageSpool(tmp_path)
    spool.put("old", b"1")
    spool.seal()
    spool.put("bad", b"2")
    spool.put("neighbour", b"3")

    spool.discard("bad")

    assert spool.get("bad") is None
    assert spool.get("neighbour") is None  # same segment: fetched again, never half-trusted
    assert spool.get("old") == b"1"
    assert PageSpool(tmp_path).get("bad") is None

    (tmp_path / "legacy.xml").write_bytes(b"<feed/>")  # a page spooled by an older version
    spool.clear()
    assert list(tmp_path.iterdir()) == []
