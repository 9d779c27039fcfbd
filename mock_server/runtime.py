"""Process-wide tuning of a serving mock: garbage collection and the cost of log records."""

from __future__ import annotations

import gc
import logging

# Allocations between two collections of the youngest generation (Python's default is 700).
# A request allocates a few dozen tracked objects and frees them by reference counting, so
# rarer young collections promote fewer short-lived objects towards full collections.
YOUNG_COLLECTION_THRESHOLD = 10_000


def tune_for_serving() -> None:
    """Tune this process for serving; call once after the app is built, before serving it."""
    # The server's log formats never show the caller's file and line, thread or process.
    # Records skip looking them up, as the Optimization section of the logging HOWTO shows.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    # The spec, fixtures and compiled validators live as long as the process. Frozen, they
    # are no longer walked by every full collection, which took up to 100 ms under load.
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)
