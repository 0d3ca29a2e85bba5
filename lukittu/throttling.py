"""Rate limiting in fixed windows counted in Django's cache (Redis in production), so every
worker process shares one count and no client header can reset it.

``hit`` is the limiter itself, for any caller (the Developer API's per-key limit below, and
per-address or per-license limits elsewhere); ``ApiKeyRateThrottle`` is the DRF throttle of the
Developer API built on it."""

import functools
import hashlib
import logging
import math
import re
import time
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

logger = logging.getLogger("lukittu.throttling")

# Identities used as they are in the cache key; anything else (spaces, control characters,
# very long values) is replaced by its SHA-256, so a caller may pass any string.
_PLAIN_IDENTITY = re.compile(r"^[A-Za-z0-9._:-]{1,100}\Z")


@functools.lru_cache(maxsize=32)
def parse_rate(rate: str) -> tuple[int, int]:
    """``"1200/minute"`` as ``(1200, 60)``. Cached: the throttle parses its setting on every
    request, and there are only ever a handful of distinct rates."""
    limit, period = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    return int(limit), int(period)


@dataclass(frozen=True)
class RateResult:
    """One request counted against a limit.

    ``count`` is the requests in the current window, this one included; ``remaining`` is how
    many more the window allows (never below 0); ``reset`` is the whole seconds until the
    window ends (at least 1; also the ``Retry-After`` of a refusal). ``counted`` is False when
    the cache could not be reached: the request is then allowed and nothing is known about
    the window (``count`` is 0, and no headers are sent)."""

    count: int
    limit: int
    remaining: int
    reset: int
    allowed: bool
    counted: bool = True

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers for the response; none when nothing was counted."""
        if not self.counted:
            return {}
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


def hit(scope: str, identity: str, limit: int, period: int) -> RateResult:
    """Count one request of ``identity`` in ``scope`` (say ``"dev"`` and an API key's id) and
    say whether it is within ``limit`` requests per ``period`` seconds.

    Windows are fixed, aligned to multiples of ``period`` since the epoch, and counted in
    Django's default cache, so every process that shares the cache shares the count. The
    identity appears in the cache key as given when it is plain (letters, digits, ``.``,
    ``_``, ``:``, ``-``, at most 100 characters), else as its SHA-256; pass an id or a digest
    rather than a secret. Fails open: if the cache cannot be reached, the failure is logged
    and the request is allowed (``counted`` False)."""
    if limit < 0 or period < 1:
        raise ValueError(f"a rate needs limit >= 0 and period >= 1, not {limit}/{period}")
    now = time.time()
    window = int(now // period)
    reset = max(1, math.ceil((window + 1) * period - now))
    if not _PLAIN_IDENTITY.match(identity):
        identity = hashlib.sha256(identity.encode()).hexdigest()
    key = f"ratelimit:{scope}:{identity}:{window}"
    try:
        count = _count(key, timeout=period + 1)
    except Exception:
        # An unreachable cache must not stop releases from being published.
        logger.exception("Rate limit cache unavailable; request allowed")
        return RateResult(
            count=0, limit=limit, remaining=limit, reset=reset, allowed=True, counted=False
        )
    return RateResult(
        count=count,
        limit=limit,
        remaining=max(0, limit - count),
        reset=reset,
        allowed=count <= limit,
    )


# One redis-py client per Django cache client (Django's caches are per thread, and so are
# their connection pools). Django's RedisCache builds a new ``redis.Redis`` for every call,
# whose construction (its table of reply callbacks) costs more than the round trip itself.
_redis_clients: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _count(key: str, *, timeout: int) -> int:
    """Add one to ``key`` (created with ``timeout`` seconds to live) and return its count."""
    # The backend itself: ``django.core.cache.cache`` is a proxy, which isinstance cannot see
    # through.
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        return _redis_count(backend, key, timeout)
    # Other caches (per-process memory in development and tests): no network, so the two
    # calls cost nothing; ``add`` then ``incr`` keeps the expiry set when the key was made.
    backend.add(key, 0, timeout=timeout)
    try:
        return backend.incr(key)
    except ValueError:  # the window's key expired between add and incr
        backend.add(key, 1, timeout=timeout)
        return 1


def _redis_count(backend: RedisCache, key: str, timeout: int) -> int:
    """SET NX with the expiry, then INCR, in one MULTI/EXEC: one round trip, atomic, and the
    key never lives without its expiry. The stored value is a plain integer, as Django's cache
    writes integers, so ``cache.get`` reads the same count."""
    cache_client = backend._cache  # Django's RedisCacheClient: it owns the connection pool
    client = _redis_clients.get(cache_client)
    if client is None:
        client = _redis_clients[cache_client] = cache_client.get_client(write=True)
    name = backend.make_and_validate_key(key)
    with client.pipeline(transaction=True) as pipeline:
        pipeline.set(name, 0, ex=timeout, nx=True)
        pipeline.incr(name)
        _, count = pipeline.execute()
    return int(count)


class ApiKeyRateThrottle(BaseThrottle):
    """``DEV_API_RATE`` requests per API key, for every Developer API request that
    authenticated (a failed authentication is answered before anything is counted)."""

    scope = "dev"
    setting = "DEV_API_RATE"

    def allow_request(self, request: Request, view: Any) -> bool:
        key = request.auth
        if key is None:
            return True
        limit, period = parse_rate(getattr(settings, self.setting))
        result = hit(self.scope, str(key.pk), limit, period)
        self.reset_in = result.reset
        # The view copies these onto the response, a 429 included.
        request.rate_limit = result.headers()
        return result.allowed

    def wait(self) -> float:
        return float(getattr(self, "reset_in", 1))
