"""Deployment checks that need to know about requests: ``manage.py check --deploy`` warns when
requests have come with ``X-Forwarded-For`` while ``NUM_PROXIES`` is 0.

A system check runs in its own process and sees no requests, so the serving processes note
what they see (``note_forwarded_for``, called by ``ForwardedForMiddleware``) in the shared
cache, where the check reads it, and in their log, which is where it shows without Redis
(each process then has a cache of its own). A process notes at most once every
``NOTE_EVERY_SECONDS``, so a misconfigured deployment costs one cache write and one log line
per process per interval, not one per request."""

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

logger = logging.getLogger("lukittu.checks")

FORWARDED_FOR_SEEN = "checks:x-forwarded-for-without-proxies"
# How long one sighting keeps the check warning: long enough to be seen at the next deploy.
SIGHTING_SECONDS = 7 * 24 * 3600
NOTE_EVERY_SECONDS = 600.0
_last_note = float("-inf")
_note_lock = threading.Lock()


def note_forwarded_for(path: str) -> None:
    """A request for ``path`` came with ``X-Forwarded-For`` while ``NUM_PROXIES`` is 0: log
    it and record it for ``check_num_proxies``, unless this process did so recently."""
    global _last_note
    now = time.monotonic()
    with _note_lock:
        if now - _last_note < NOTE_EVERY_SECONDS:
            return
        _last_note = now
    logger.warning(
        "A request for %r came with X-Forwarded-For while NUM_PROXIES is 0. Behind a reverse "
        "proxy every client then has the proxy's address: one client can use up the "
        "Client API's per-address limit for all, and AXES_FAILURE_LIMIT wrong admin "
        "passwords lock an operator out for everyone. Set NUM_PROXIES to the number of "
        "proxies in front.",
        path,
    )
    try:
        cache.set(FORWARDED_FOR_SEEN, datetime.now(UTC).isoformat(), timeout=SIGHTING_SECONDS)
    except Exception:
        # The cache is only the check's messenger; the log line above already says it.
        logger.warning("Could not record the X-Forwarded-For sighting", exc_info=True)


@register(Tags.security, deploy=True)
def check_num_proxies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """lukittu.W001: a serving process noted ``X-Forwarded-For`` while ``NUM_PROXIES`` is 0."""
    if settings.NUM_PROXIES != 0:
        return []
    try:
        seen = cache.get(FORWARDED_FOR_SEEN)
    except Exception:
        return []
    if seen is None:
        return []
    return [
        CheckWarning(
            f"Requests arrived with X-Forwarded-For while NUM_PROXIES is 0 (last noted {seen}).",
            hint=(
                "Behind a reverse proxy, set NUM_PROXIES to the number of proxies in front of "
                "the service: otherwise every client has the proxy's address, for the rate "
                "limits, the audit log and admin lockouts. Without a proxy, a client sent the "
                "header itself and it was ignored. See docs/security.md, Rate limits."
            ),
            id="lukittu.W001",
        )
    ]
