"""A parse worker that takes every request and never answers: a stuck worker, for the crawl
tests (``python -m dropship_pipeline_tests.silent_worker SPOOL_FOLDER``)."""

import sys

for _request in sys.stdin:
    pass
