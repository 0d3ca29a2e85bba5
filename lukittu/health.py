"""Liveness and readiness: ``/healthz`` says the process answers, ``/readyz`` whether it can
serve: the database is required; the cache and the release storage are reported but only
degrade it (the rate limiter fails open, and storage outages fail only the requests that touch
storage, with a 503 of their own), so an S3 outage does not take every instance out of the
load balancer at once. Plain Django views, outside the API's key and rate limit, so a load
balancer or an orchestrator can call them."""

import copy
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import load_backend
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from storages.backends.s3 import S3Storage

logger = logging.getLogger("lukittu.health")

OK, DOWN, TIMEOUT = "ok", "down", "timeout"
# What the instance is useless without; every other check only degrades it.
REQUIRED = frozenset({"database"})


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers. It touches nothing else, so a database outage never gets the
    process restarted: that is what /readyz is for."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """503 when a required dependency (the database) did not answer within
    ``READINESS_TIMEOUT``; otherwise 200, with ``status`` "degraded" and the failing checks
    listed in ``degraded`` when another did not. The body names each check's result: ``ok``,
    ``down`` or ``timeout``. The errors themselves go to the log only: this view needs no
    credentials."""
    timeout = settings.READINESS_TIMEOUT
    results = run_checks(readiness_probes(timeout), timeout=timeout)
    failing = sorted(name for name, result in results.items() if result != OK)
    if REQUIRED.intersection(failing):
        status, code = "unavailable", 503
    else:
        status, code = ("degraded" if failing else "ok"), 200
    degraded = [name for name in failing if name not in REQUIRED]
    return JsonResponse({"status": status, "checks": results, "degraded": degraded}, status=code)


def readiness_probes(timeout: float) -> dict[str, Callable[[], None]]:
    """The checks, each bound to this request's view of its dependency. Each raises when the
    dependency is not usable."""
    database = connections[DEFAULT_DB_ALIAS].settings_dict
    cache = caches["default"]
    storage = storages["default"]
    return {
        "database": lambda: check_database(database, timeout=timeout),
        "cache": lambda: check_cache(cache),
        "storage": lambda: check_storage(storage, timeout=timeout),
    }


# --- Running the checks within the deadline ---------------------------------------------------

# The latest probe thread of each check and when it started. A check whose previous probe is
# still running past the deadline is reported as a timeout without starting another, so a hung
# dependency (a hard-mounted NFS share, say) cannot pile up threads, one per probe.
_running: dict[str, tuple[threading.Thread, float]] = {}
_running_lock = threading.Lock()


def run_checks(probes: dict[str, Callable[[], None]], *, timeout: float) -> dict[str, str]:
    """Run the probes side by side, each in a daemon thread, and return each one's result
    once all have finished or ``timeout`` seconds have passed, whichever is first. A late probe
    goes on in its thread, bounded by its own client's timeouts, but the answer does not wait."""
    started = time.monotonic()
    outcomes: dict[str, list[str]] = {}
    threads: dict[str, threading.Thread] = {}
    results: dict[str, str] = {}
    for name, probe in probes.items():
        with _running_lock:
            previous = _running.get(name)
            if previous is not None and previous[0].is_alive() and started - previous[1] > timeout:
                results[name] = TIMEOUT
                continue
            outcome: list[str] = []
            thread = threading.Thread(
                target=_run_probe, args=(name, probe, outcome), name=f"readyz-{name}", daemon=True
            )
            _running[name] = (thread, started)
        outcomes[name] = outcome
        threads[name] = thread
        thread.start()
    for name, thread in threads.items():
        thread.join(max(0.0, started + timeout - time.monotonic()))
        results[name] = outcomes[name][0] if outcomes[name] else TIMEOUT
        if results[name] == TIMEOUT:
            logger.warning("Readiness check %s did not answer within %gs", name, timeout)
    return {name: results[name] for name in probes}


def _run_probe(name: str, probe: Callable[[], None], outcome: list[str]) -> None:
    try:
        probe()
    except Exception:
        logger.warning("Readiness check %s failed", name, exc_info=True)
        outcome.append(DOWN)
    else:
        outcome.append(OK)


# --- The checks -------------------------------------------------------------------------------


def check_database(settings_dict: dict[str, Any], *, timeout: float) -> None:
    """``SELECT 1`` on a connection of its own, opened and closed here: it proves a new
    connection can be made, and it leaves the workers' connections alone. On PostgreSQL both the
    connect and the query are bounded (libpq rounds a connect timeout up to 2 s)."""
    options = dict(settings_dict.get("OPTIONS", {}))
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.postgresql":
        options["connect_timeout"] = max(2, round(timeout))
    elif engine == "django.db.backends.sqlite3":
        options["timeout"] = timeout
    # Made in this thread, since Django refuses to use a connection from another one.
    wrapper = load_backend(engine).DatabaseWrapper(
        {**settings_dict, "OPTIONS": options}, alias=f"{DEFAULT_DB_ALIAS}-readiness"
    )
    try:
        with wrapper.cursor() as cursor:
            if wrapper.vendor == "postgresql":
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, false)", [f"{int(timeout * 1000)}"]
                )
            cursor.execute("SELECT 1")
            if cursor.fetchone() != (1,):
                raise RuntimeError("SELECT 1 did not return 1")
    finally:
        wrapper.close()


def check_cache(cache: BaseCache) -> None:
    """A set and a get of a key of this probe's own (probes running at once never see each
    other's value). The Redis cache's own short timeouts bound both calls."""
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, key, timeout=30)
    try:
        if cache.get(key) != key:
            raise RuntimeError("the cache did not return the value just stored")
    finally:
        cache.delete(key)


def check_storage(storage: Storage, *, timeout: float) -> None:
    """S3: a HeadBucket (the bucket exists and the credentials may use it). Local files: the
    storage's folder is a directory the process may write to. A missing folder counts as down
    (not created here): it is most often a volume that is not mounted."""
    if isinstance(storage, S3Storage):
        _s3_probe_client(storage, timeout).head_bucket(Bucket=storage.bucket_name)
    elif isinstance(storage, FileSystemStorage):
        location = storage.location
        if not os.path.isdir(location):
            raise RuntimeError(f"{location} is not a directory")
        if not os.access(location, os.W_OK | os.X_OK):
            raise RuntimeError(f"{location} is not writable")
    else:
        raise RuntimeError(f"no readiness check for {type(storage).__name__}")


# One client per storage and timeout: creating a boto3 client costs about a tenth of a second
# of CPU, too much for every probe. boto3 clients may be shared between threads.
_s3_clients: "weakref.WeakKeyDictionary[S3Storage, tuple[float, Any]]" = weakref.WeakKeyDictionary()
_s3_clients_lock = threading.Lock()


def _s3_probe_client(storage: S3Storage, timeout: float) -> Any:
    """The storage's client (its endpoint, region, credentials and signature) with one attempt
    and the readiness timeout: the storage's own 3 attempts of 5 s + 30 s suit an upload, not a
    probe."""
    with _s3_clients_lock:
        cached = _s3_clients.get(storage)
        if cached is not None and cached[0] == timeout:
            return cached[1]
        # A copy, so the storage's own client (one per process) keeps its configuration.
        probe = copy.copy(storage)
        probe.client_config = storage.client_config.merge(
            Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"mode": "standard", "total_max_attempts": 1},
            )
        )
        client = probe.connection.meta.client
        _s3_clients[storage] = (timeout, client)
        return client
