"""A parse worker that never reads its input: its pipe fills up, for the crawl tests
(``python -m dropship_pipeline_tests.deaf_worker SPOOL_FOLDER``)."""

import time

while True:
    time.sleep(60)
