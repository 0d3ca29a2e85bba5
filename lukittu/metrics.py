"""Prometheus metrics at ``/metrics``: requests by method, route and status with their latency,
and the service's own counters (release files stored, failed writes, storage failures, what the
storage reconciler found).

Plain ``prometheus_client`` rather than django-prometheus: the service needs one middleware
and a handful of counters, not per-model and per-database instrumentation that wraps the ORM
and cache backends; and prometheus_client's multiprocess mode is what several gunicorn workers
need either way.

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory that
every process of the service (the gunicorn workers and ``reconcile_storage``) can write: each
process then writes its values to files there, and ``/metrics`` adds them up. Without it, each
process counts on its own and a scrape sees only the worker that answered it.
"""

import functools
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from lukittu.views import client_ip

logger = logging.getLogger("lukittu.metrics")

HTTP_REQUESTS = Counter(
    "lukittu_http_requests",
    "Requests answered, by method, route (the URL pattern, not the path) and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "lukittu_http_request_duration_seconds",
    "Time from the request reaching Django to its response leaving it, by method and route.",
    ["method", "route"],
    # Up to a minute: an upload of a large build over a slow link takes that long.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
FILES_STORED = Counter(
    "lukittu_release_files_stored",
    "Release files stored by a committed create or update.",
)
BYTES_STORED = Counter(
    "lukittu_release_file_bytes_stored",
    "Bytes of the release files stored by committed creates and updates.",
)
WRITE_FAILURES = Counter(
    "lukittu_release_write_failures",
    "Creates, updates and deletes of releases that failed for a reason other than the "
    "request's own content, by reason.",
    ["reason"],
)
STORAGE_FAILURES = Counter(
    "lukittu_storage_failures",
    "Calls to the release storage that failed, by operation (write: an upload; delete: an "
    "object due for deletion, left for reconcile_storage).",
    ["operation"],
)
RECONCILE_FINDINGS = Counter(
    "lukittu_reconcile_findings",
    "What reconcile_storage found and did (dry runs excluded), by kind.",
    ["finding"],
)

# Fixed label values: each series exists from the start (at 0), so rate() and alerts see the
# first failure, and nothing a client sends can add a series.
WRITE_FAILURE_REASONS = (
    "storage_unavailable",
    "storage_busy",
    "reservation_lapsed",
    "database_unavailable",
    "storage_limit",
    "incomplete_body",
    "too_large",
    "internal_error",
)
STORAGE_OPERATIONS = ("write", "delete")
RECONCILE_KINDS = ("deleted", "abandoned", "orphans", "temporary", "corrected", "missing", "failed")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"
STATIC_ROUTE = "<static>"
# The routes whose POST, PUT and DELETE write releases (lukittu/urls.py).
WRITE_ROUTES = frozenset({"release-list", "release-detail"})
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
# The API's own wording for the reasons that share a status with client errors or with
# another 503.
_DETAILS_REASONS = {
    "Storage limit reached": "storage_limit",
    "Incomplete request body": "incomplete_body",
    "Storage busy; retry the request": "storage_busy",
    "The upload's storage reservation lapsed before it could be saved; retry the request": (
        "reservation_lapsed"
    ),
    "Database unavailable; retry the request": "database_unavailable",
}
_STATUS_REASONS = {503: "storage_unavailable", 413: "too_large", 500: "internal_error"}

for _reason in WRITE_FAILURE_REASONS:
    WRITE_FAILURES.labels(_reason)
for _operation in STORAGE_OPERATIONS:
    STORAGE_FAILURES.labels(_operation)
for _kind in RECONCILE_KINDS:
    RECONCILE_FINDINGS.labels(_kind)

P = ParamSpec("P")


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Counting must never fail the work it counts (a full disk under the multiprocess
    directory, say): a failure is logged and the work goes on."""

    @functools.wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception:
            logger.exception("Could not record a metric in %s", record.__name__)

    return guarded


# --- What the service reports ---------------------------------------------------------------


@_never_raises
def count_stored_file(staged: Any) -> None:
    """Once the transaction of a create or update has completed (committed: the service's
    transaction is the outermost one): ``staged`` is its ``StagedFile``, None or without a key
    when the write had no file. A write whose transaction failed stored nothing, whatever
    reached the storage before (its object is abandoned)."""
    if staged is None or getattr(staged, "key", None) is None:
        return
    FILES_STORED.inc()
    BYTES_STORED.inc(staged.size)


@_never_raises
def count_storage_failure(operation: str) -> None:
    STORAGE_FAILURES.labels(operation).inc()


@_never_raises
def count_reconcile_findings(*, dry_run: bool, **counts: int) -> None:
    """One run's findings, by the names in ``RECONCILE_KINDS``. A dry run changes nothing, so
    it counts nothing."""
    if dry_run:
        return
    for kind, count in counts.items():
        if count:
            RECONCILE_FINDINGS.labels(kind).inc(count)


def write_failure_reason(request: HttpRequest, response: HttpResponse) -> str | None:
    """The reason a release write failed, or None when it succeeded, was not a write, or failed
    on the request's own content (validation, not found, conflicts: those are the client's to
    fix, and lukittu_http_requests_total has them by status)."""
    match = getattr(request, "resolver_match", None)
    if (
        response.status_code < 400
        or request.method not in WRITE_METHODS
        or match is None
        or match.url_name not in WRITE_ROUTES
    ):
        return None
    # The API's errors are DRF responses that still hold the envelope as data.
    data = getattr(response, "data", None)
    details = data.get("result", {}).get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details in _DETAILS_REASONS:
        return _DETAILS_REASONS[details]
    return _STATUS_REASONS.get(response.status_code)


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered, never the path: paths hold ids, one series each."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.route
    # Static files are answered before URL resolution (WhiteNoise).
    if settings.STATIC_URL and request.path.startswith(settings.STATIC_URL):
        return STATIC_ROUTE
    return UNMATCHED_ROUTE


@_never_raises
def observe_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    route = route_of(request)
    method = request.method if request.method in METHODS else "other"
    HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    HTTP_REQUEST_DURATION.labels(method, route).observe(seconds)
    reason = write_failure_reason(request, response)
    if reason is not None:
        WRITE_FAILURES.labels(reason).inc()


class MetricsMiddleware:
    """Counts and times every request. A streamed response (an admin download) is timed until
    its first byte is ready, not until the last one is sent."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        observe_request(request, response, time.perf_counter() - started)
        return response


# --- /metrics ---------------------------------------------------------------------------------


def client_address(request: HttpRequest) -> str | None:
    """The caller's address as the audit log records it (``NUM_PROXIES`` honoured), or None
    for a request without one (the test client's ``force_login`` builds such a request, and
    django-axes, which uses this too, asks for its address)."""
    if not request.META.get("REMOTE_ADDR"):
        return None
    return client_ip(request)


def metrics_allowed(request: HttpRequest) -> bool:
    """The caller's address is in ``METRICS_ALLOWED_IPS``. With ``NUM_PROXIES`` 0, a request
    that carries ``X-Forwarded-For`` came through a proxy the settings do not know about: its
    address is the proxy's (often 127.0.0.1), not the caller's, so it is refused."""
    if settings.NUM_PROXIES == 0 and "HTTP_X_FORWARDED_FOR" in request.META:
        return False
    address = client_address(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    # A dual-stack listener reports IPv4 callers as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_token_ok(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )


def registry() -> CollectorRegistry:
    """Every process's values in multiprocess mode, else this process's."""
    if settings.PROMETHEUS_MULTIPROC_DIR is None:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format. Another address gets a 404, as if there were
    nothing here; an allowed address without the token gets a 401."""
    if not metrics_allowed(request):
        raise Http404
    if not metrics_token_ok(request):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
