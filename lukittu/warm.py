"""A worker's warm-up, run before it accepts its first connection (gunicorn's
``post_worker_init``, see ``lukittu/gunicorn_conf.py``).

Without it a new worker's first requests import every view, serializer and the OpenAPI parts
(the URL configuration is loaded on first use), make the storage client and open each thread's
database and cache connections: a second or more for the requests that land on it first, each
time a worker starts or is recycled. Nothing here is required: a step that fails (a database
that is down at boot) is logged and left to the first request, as before."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from django.core.cache import caches
from django.core.files.storage import storages
from django.db import DEFAULT_DB_ALIAS, connections
from django.urls import get_resolver

logger = logging.getLogger("lukittu.warm")
# How long the threads wait for each other (so that each lands on a thread of its own) and for
# their connections: a dependency that is slower than this is left to the first request.
THREAD_WAIT_SECONDS = 10.0
CACHE_PROBE_KEY = "warm-up"


def warm_process() -> None:
    """Once per process: the URL configuration with every view it names, and the storage's
    client (made now, shared by every thread: ``releases.storage.ReleaseS3Storage``)."""
    resolver = get_resolver()
    _ = resolver.url_patterns, resolver.reverse_dict
    storage = storages["default"]
    if hasattr(type(storage), "connection"):
        _attempt("the storage client", lambda: storage.connection.meta.client)


def warm_thread() -> None:
    """In a request thread: its own database connection and cache client (Django keeps both
    per thread)."""
    _attempt("a database connection", connections[DEFAULT_DB_ALIAS].ensure_connection)
    _attempt("the cache", lambda: caches["default"].get(CACHE_PROBE_KEY))


def warm_threads(pool: Executor, threads: int) -> None:
    """``warm_thread`` once in each of ``pool``'s ``threads`` threads: each task waits for the
    others before it starts, so no thread takes two."""
    barrier = threading.Barrier(threads)

    def task() -> None:
        try:
            barrier.wait(THREAD_WAIT_SECONDS)
        except threading.BrokenBarrierError:
            return
        warm_thread()

    futures = [pool.submit(task) for _ in range(threads)]
    for future in futures:
        try:
            future.result(timeout=THREAD_WAIT_SECONDS * 2)
        except Exception:  # a timeout: the thread goes on, the boot does not wait for it
            logger.warning("A worker thread's warm-up did not finish in time", exc_info=True)


def warm_worker(worker: Any) -> float:
    """A gunicorn worker's warm-up, before it accepts: seconds it took."""
    started = time.monotonic()
    warm_process()
    pool = getattr(worker, "tpool", None)  # gthread's request threads
    if pool is not None:
        warm_threads(pool, worker.cfg.threads)
    else:
        warm_thread()
    return time.monotonic() - started


def _attempt(what: str, step: Callable[[], object]) -> None:
    try:
        step()
    except Exception:  # the first request tries again and reports it
        logger.warning("Warm-up: %s failed; the first request will try again", what, exc_info=True)
