"""Rate limiting in fixed windows counted in Django's cache (Redis in production), so every
worker process shares one count and no client header can reset it.

``hit`` is the limiter itself, for any caller (the Developer API's per-key limit below, and
per-address or per-license limits elsewhere); ``ApiKeyRateThrottle`` is the DRF throttle of the
Developer API built on it. Limits per client address count an IPv6 address by its /64
(``address_identity``). Failed Developer API authentications are limited per address too
(``count_auth_failure``): once an address has used up ``DEV_API_AUTH_FAILURE_RATE``, every
request from it is refused until the window ends, whatever key it sends."""

import functools
import hashlib
import ipaddress
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

from lukittu.api import too_many_auth_failures

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
    the window (``count`` is 0, and no headers are sent). ``refused_by`` names the watched
    limit (``hit``'s ``watch``) that refused the request, if that is what did."""

    count: int
    limit: int
    remaining: int
    reset: int
    allowed: bool
    counted: bool = True
    refused_by: str | None = None

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers for the response; none when nothing was counted."""
        if not self.counted:
            return {}
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


@dataclass(frozen=True)
class Watch:
    """Another limit that ``hit`` reads without counting, in the same round trip: the request
    is refused while ``identity`` has used up ``limit`` in ``scope``'s current window."""

    scope: str
    identity: str
    limit: int
    period: int


def _window(scope: str, identity: str, period: int, now: float) -> tuple[str, int]:
    """The cache key of the current window and the whole seconds until it ends (at least 1)."""
    window = int(now // period)
    if not _PLAIN_IDENTITY.match(identity):
        identity = hashlib.sha256(identity.encode()).hexdigest()
    return f"ratelimit:{scope}:{identity}:{window}", max(1, math.ceil((window + 1) * period - now))


def hit(
    scope: str, identity: str, limit: int, period: int, *, watch: Watch | None = None
) -> RateResult:
    """Count one request of ``identity`` in ``scope`` (say ``"dev"`` and an API key's id) and
    say whether it is within ``limit`` requests per ``period`` seconds, and, with ``watch``,
    whether the watched limit still has room (if not, ``refused_by`` is its scope and
    ``reset`` its window's end).

    Windows are fixed, aligned to multiples of ``period`` since the epoch, and counted in
    Django's default cache, so every process that shares the cache shares the count. The
    identity appears in the cache key as given when it is plain (letters, digits, ``.``,
    ``_``, ``:``, ``-``, at most 100 characters), else as its SHA-256; pass an id or a digest
    rather than a secret. Fails open: if the cache cannot be reached, the failure is logged
    and the request is allowed (``counted`` False)."""
    _check_rate(limit, period)
    if watch is not None:
        _check_rate(watch.limit, watch.period)
    now = time.time()
    key, reset = _window(scope, identity, period, now)
    peek, peek_reset = _window(watch.scope, watch.identity, watch.period, now) if watch else ("", 0)
    try:
        count, watched_count = _count(key, timeout=period + 1, peek=peek or None)
    except Exception:
        # An unreachable cache must not stop releases from being published.
        logger.exception("Rate limit cache unavailable; request allowed")
        return RateResult(
            count=0, limit=limit, remaining=limit, reset=reset, allowed=True, counted=False
        )
    refused_by = watch.scope if watch is not None and watched_count >= watch.limit else None
    return RateResult(
        count=count,
        limit=limit,
        remaining=max(0, limit - count),
        reset=peek_reset if refused_by else reset,
        allowed=refused_by is None and count <= limit,
        refused_by=refused_by,
    )


def _check_rate(limit: int, period: int) -> None:
    if limit < 0 or period < 1:
        raise ValueError(f"a rate needs limit >= 0 and period >= 1, not {limit}/{period}")


# One redis-py client per Django cache client (Django's caches are per thread, and so are
# their connection pools). Django's RedisCache builds a new ``redis.Redis`` for every call,
# whose construction (its table of reply callbacks) costs more than the round trip itself.
_redis_clients: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _count(key: str, *, timeout: int, peek: str | None = None) -> tuple[int, int]:
    """Add one to ``key`` (created with ``timeout`` seconds to live) and return its count,
    with the count at ``peek`` (read, not changed; 0 when absent or not asked for)."""
    # The backend itself: ``django.core.cache.cache`` is a proxy, which isinstance cannot see
    # through.
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        return _redis_count(backend, key, timeout, peek)
    # Other caches (per-process memory in development and tests): no network, so the calls
    # cost nothing; ``add`` then ``incr`` keeps the expiry set when the key was made.
    backend.add(key, 0, timeout=timeout)
    try:
        count = backend.incr(key)
    except ValueError:  # the window's key expired between add and incr
        backend.add(key, 1, timeout=timeout)
        count = 1
    return count, int(backend.get(peek) or 0) if peek else 0


def _redis_client(backend: RedisCache) -> Any:
    cache_client = backend._cache  # Django's RedisCacheClient: it owns the connection pool
    client = _redis_clients.get(cache_client)
    if client is None:
        client = _redis_clients[cache_client] = cache_client.get_client(write=True)
    return client


# SET NX with the expiry, then INCR, and the count at a second key if one is given (GET
# answers false for a missing key). KEYS: the window's key [, the watched one]; ARGV: expiry.
_COUNT_SCRIPT = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX')
local count = redis.call('INCR', KEYS[1])
local watched = 0
if KEYS[2] then watched = tonumber(redis.call('GET', KEYS[2]) or 0) or 0 end
return {count, watched}
"""
_scripts: dict[str, Any] = {}


def _run_script(client: Any, text: str, keys: list[str], arguments: list[int]) -> Any:
    """``text`` run in Redis (EVALSHA; loaded once per server by redis-py's ``Script``)."""
    script = _scripts.get(text)
    if script is None:
        script = _scripts[text] = client.register_script(text)
    return script(keys=keys, args=arguments, client=client)


def _redis_count(backend: RedisCache, key: str, timeout: int, peek: str | None) -> tuple[int, int]:
    """SET NX with the expiry, then INCR (and GET of ``peek``), in one script: one command,
    one round trip, atomic, and the key never lives without its expiry (a MULTI/EXEC pipeline
    of the same commands cost the client twice the CPU). The stored value is a plain integer,
    as Django's cache writes integers, so ``cache.get`` reads the same count."""
    keys = [backend.make_and_validate_key(key)]
    if peek:
        keys.append(backend.make_and_validate_key(peek))
    count, watched = _run_script(_redis_client(backend), _COUNT_SCRIPT, keys, [timeout])
    return int(count), int(watched)


@dataclass(frozen=True)
class Limit:
    """One limit for ``hit_in_turn``: ``identity``'s requests in ``scope``, at most ``limit``
    per ``period`` seconds (``hit``'s arguments)."""

    scope: str
    identity: str
    limit: int
    period: int


# Each key counted as ``_redis_count`` counts it (SET NX with the expiry, then INCR), in turn,
# stopping at the first whose count passes its limit. KEYS: the windows' keys; ARGV: each
# key's limit and expiry. Answers the refusing key's place (from 1) and its count, or {0, 0}.
_IN_TURN_SCRIPT = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, 0, 'EX', ARGV[2 * i], 'NX')
  local count = redis.call('INCR', key)
  if count > tonumber(ARGV[2 * i - 1]) then return {i, count} end
end
return {0, 0}
"""


def hit_in_turn(limits: list[Limit]) -> RateResult | None:
    """Count one request against each of ``limits`` in order, as that many ``hit`` calls
    would, stopping at the first limit that refuses it (those after it are not counted).
    Answers that limit's result, or None when every limit allowed the request (or the cache
    could not be reached: it fails open as ``hit`` does). With Redis, one round trip for all
    of them (a script), where the calls took one each."""
    for limit in limits:
        _check_rate(limit.limit, limit.period)
    backend = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(backend, RedisCache):
        for limit in limits:
            result = hit(limit.scope, limit.identity, limit.limit, limit.period)
            if not result.allowed:
                return result
        return None
    now = time.time()
    windows = [_window(limit.scope, limit.identity, limit.period, now) for limit in limits]
    try:
        place, count = _redis_in_turn(backend, limits, [key for key, _ in windows])
    except Exception:
        logger.exception("Rate limit cache unavailable; request allowed")
        return None
    if not place:
        return None
    refused = limits[place - 1]
    return RateResult(
        count=count,
        limit=refused.limit,
        remaining=max(0, refused.limit - count),
        reset=windows[place - 1][1],
        allowed=False,
    )


def _redis_in_turn(backend: RedisCache, limits: list[Limit], keys: list[str]) -> tuple[int, int]:
    arguments = [value for limit in limits for value in (limit.limit, limit.period + 1)]
    names = [backend.make_and_validate_key(key) for key in keys]
    place, count = _run_script(_redis_client(backend), _IN_TURN_SCRIPT, names, arguments)
    return int(place), int(count)


def address_identity(address: str) -> str:
    """What a per-address limit counts ``address`` as: an IPv4 address as it is, an IPv6
    address as its /64 network. One home or server usually gets a whole /64 and may take
    any address in it, so counting each /128 would give it billions of budgets. An
    IPv4-mapped IPv6 address (a dual-stack listener's) counts as its IPv4 address."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


AUTH_FAILURES = "dev-auth-fail"


def _caller(request: Request) -> str | None:
    """The caller's address as a per-address limit counts it (``client_ip``), or None when
    the request has none."""
    # Imported here: lukittu.views imports DRF's views, which load the authentication class,
    # which imports this module.
    from lukittu.views import client_ip

    address = client_ip(request)
    return address_identity(address) if address else None


def _auth_failure_watch(request: Request) -> Watch | None:
    address = _caller(request)
    if address is None:
        return None
    limit, period = parse_rate(settings.DEV_API_AUTH_FAILURE_RATE)
    return Watch(AUTH_FAILURES, address, limit, period)


def count_auth_failure(request: Request) -> RateResult | None:
    """Count a failed Developer API authentication against the caller's address; the result
    says whether the address is still within ``DEV_API_AUTH_FAILURE_RATE`` (None: no
    address to count)."""
    watch = _auth_failure_watch(request)
    if watch is None:
        return None
    return hit(watch.scope, watch.identity, watch.limit, watch.period)


class ApiKeyRateThrottle(BaseThrottle):
    """``DEV_API_RATE`` requests per API key, for every Developer API request that
    authenticated (a failed one is counted against its address instead). In the
    same round trip it reads the caller's address's failed authentications: an address that
    has used those up is refused even with a valid key, so a list of guessed or leaked keys
    cannot be tried past the limit (a right one would otherwise stand out as the only 200)."""

    scope = "dev"
    setting = "DEV_API_RATE"

    def allow_request(self, request: Request, view: Any) -> bool:
        key = request.auth
        if key is None:
            return True
        limit, period = parse_rate(getattr(settings, self.setting))
        result = hit(self.scope, str(key.pk), limit, period, watch=_auth_failure_watch(request))
        self.reset_in = result.reset
        # The view copies these onto the response, a 429 included.
        request.rate_limit = result.headers()
        if result.refused_by == AUTH_FAILURES:
            raise too_many_auth_failures(result.reset, request.rate_limit)
        return result.allowed

    def wait(self) -> float:
        return float(getattr(self, "reset_in", 1))
