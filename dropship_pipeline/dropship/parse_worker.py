"""A worker process that parses spooled feed pages for a backfill, on the other core.

The crawl stores archive pages oldest first, so it cannot store anything until its walk back
through ``prev-archive`` reaches the end; parsing, though, can start as soon as a page is
spooled, and in a process of its own it does not compete with the walk's HTTP and DuckDB's
writes for the GIL.

Protocol, one JSON object per line. The crawl writes ``{"chunk": k, "pages": [[page_id, url,
segment, offset, size, crc], ...]}`` (pages oldest first, each with where its body is in the
spool, see ``SpooledPage``) to the worker's stdin; the worker answers on stdout with ``{"chunk":
k, "file": name | null, "failure": [url, reason] | null}`` once the chunk's
batch is in ``name`` in the spool folder. It takes the oldest chunk it has been given first (the
highest ``k``), because that is the one the crawl will store first; the current page comes as
chunk -1, stored last. It ends at end of input, which also happens when the crawl is killed,
and after a request it cannot read.

Run as ``python -m dropship_pipeline.dropship.parse_worker SPOOL_FOLDER``.
"""

from __future__ import annotations

import gc
import importlib.abc
import json
import os
import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dropship_pipeline.dropship.spool import PageRef

#: Parsing only has to keep ahead of the writer. At a lower priority it takes the CPU the walk
#: (and, in tests and benchmarks, the simulator on the same machine) leaves idle, rather than
#: slowing the walk that feeds it and the DuckDB writes that wait for it.
NICENESS = 10


#: Packages pyarrow loads when they are installed, which a parse worker never uses.
UNUSED_PACKAGES = frozenset({"numpy", "pandas"})


class _WithoutUnusedPackages(importlib.abc.MetaPathFinder):
    """Makes numpy and pandas look not installed in the worker.

    The worker turns Python lists into Arrow arrays and never meets an array of theirs, but
    pyarrow imports numpy with itself (0.1 s, and numpy starts its BLAS threads) and pandas on
    its first conversion, to check for one of its objects (0.3 s): CPU taken from the backfill
    by every worker. pyarrow works without both, and takes the ImportError as just that.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in UNUSED_PACKAGES:
            raise ImportError(f"{fullname} is not used in a parse worker", name=fullname)
        return None


def chunk_file_name(chunk: int) -> str:
    return f"chunk-{chunk}.batch"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spool = Path(args[0])
    # Before pyarrow loads (the spool and batch modules bring it), see _WithoutUnusedPackages.
    if not any(isinstance(finder, _WithoutUnusedPackages) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WithoutUnusedPackages())
    from dropship_pipeline.dropship.spool import SpooledPage, prepare_batch
    from dropship_pipeline.store.batch import write_batch

    if NICENESS and hasattr(os, "nice"):
        os.nice(NICENESS)
    # Parsing makes millions of short-lived tuples and strings: the cycle collector would walk
    # them again and again (10% of a worker's time in benchmarks/ingest.py). It runs once per
    # chunk instead, in case a chunk leaves cycles, and then freezes what survived: the worker
    # holds nothing between chunks, so only the imported modules' objects are left, and walking
    # those 60,000 objects at every chunk cost 12 us an event (with the freeze, 4).
    gc.disable()
    waiting: dict[int, list[PageRef]] = {}
    ready = threading.Condition()
    ended = False

    def read_requests() -> None:
        nonlocal ended
        try:
            for line in sys.stdin:
                request = json.loads(line)
                refs = [
                    (page_id, url, SpooledPage(*where)) for page_id, url, *where in request["pages"]
                ]
                with ready:
                    waiting[int(request["chunk"])] = refs
                    ready.notify()
        finally:
            # At the end of input, and also after a request this worker cannot read (threading
            # prints why): no more work will come, and waiting for it would leave the crawl
            # blocked writing to a pipe nobody reads. Once this worker exits, the crawl parses
            # the chunks it gave it itself.
            with ready:
                ended = True
                ready.notify()

    threading.Thread(target=read_requests, name="requests", daemon=True).start()
    while True:
        with ready:
            while not waiting and not ended:
                ready.wait()
            if not waiting:
                return 0
            chunk = max(waiting)
            refs = waiting.pop(chunk)

        batch, failure = prepare_batch(refs, str(spool))
        name = None
        if batch is not None:
            name = chunk_file_name(chunk)
            temp = spool / f".{name}.{os.getpid()}.part"
            write_batch(batch, temp)
            os.replace(temp, spool / name)
        answer = {"chunk": chunk, "file": name, "failure": failure}
        del batch
        gc.collect()
        gc.freeze()
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
