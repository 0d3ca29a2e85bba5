"""``lukittu.throttling.hit``, the limiter every rate limit uses (the Developer API's per-key
limit, the Client API's per-address and per-license limits): fixed windows counted in the
shared cache, one round trip to Redis, and open when the cache is down."""

import logging
import os
import threading
from types import SimpleNamespace

import pytest
from django.core.cache import cache

from lukittu import throttling
from lukittu.storage_settings import redis_cache
from lukittu.throttling import RateResult, hit
from tests.conftest import free_port

WINDOW_START = 1_800_000_000  # a multiple of 60 (and of 3600)
NOW = WINDOW_START + 15

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs Redis: set REDIS_URL"
)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """A clock frozen inside one window, so no test straddles two."""
    clock = SimpleNamespace(now=NOW)
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


def test_each_hit_counts_and_the_limit_is_inclusive():
    results = [hit("test", "alice", 3, 60) for _ in range(4)]

    assert results == [
        RateResult(count=1, limit=3, remaining=2, reset=45, allowed=True),
        RateResult(count=2, limit=3, remaining=1, reset=45, allowed=True),
        RateResult(count=3, limit=3, remaining=0, reset=45, allowed=True),
        RateResult(count=4, limit=3, remaining=0, reset=45, allowed=False),
    ]
    assert results[0].headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Reset": "45",
    }


def test_windows_are_aligned_to_the_period_and_the_next_one_starts_afresh(frozen_clock):
    for _ in range(3):
        hit("test", "alice", 2, 60)
    frozen_clock.now = WINDOW_START + 59.6
    late = hit("test", "alice", 2, 60)
    frozen_clock.now = WINDOW_START + 60
    fresh = hit("test", "alice", 2, 60)

    assert (late.count, late.allowed, late.reset) == (4, False, 1)
    assert (fresh.count, fresh.allowed, fresh.reset) == (1, True, 60)


def test_scopes_identities_and_periods_count_apart():
    hit("client-ip", "203.0.113.9", 5, 60)
    hit("client-ip", "203.0.113.9", 5, 60)

    assert hit("client-ip", "203.0.113.9", 5, 60).count == 3
    assert hit("client-ip", "2001:db8::1", 5, 60).count == 1
    assert hit("client-license", "203.0.113.9", 5, 60).count == 1
    assert hit("client-ip", "203.0.113.9", 5, 3600).count == 1


def test_any_identity_is_accepted_and_unsafe_ones_do_not_collide(recwarn):
    """Spaces, control characters and long values would make a cache key that Django warns
    about (and that memcached refuses); they are hashed instead, so each still counts apart."""
    odd = ["a key with spaces", "tab\there", "x" * 500, "é"]
    for identity in odd:
        hit("test", identity, 10, 60)

    assert [hit("test", identity, 10, 60).count for identity in odd] == [2, 2, 2, 2]
    assert not [w for w in recwarn if "CacheKeyWarning" in type(w.message).__name__]


@pytest.mark.parametrize(("limit", "period"), [(-1, 60), (10, 0), (10, -5)])
def test_a_nonsensical_rate_is_refused(limit, period):
    with pytest.raises(ValueError, match="limit"):
        hit("test", "alice", limit, period)


def test_a_zero_limit_refuses_everything():
    assert hit("test", "alice", 0, 60) == RateResult(
        count=1, limit=0, remaining=0, reset=45, allowed=False
    )


def test_a_failing_cache_lets_the_request_through_and_logs(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(throttling, "_count", broken)
    with caplog.at_level(logging.ERROR, logger="lukittu.throttling"):
        result = hit("test", "alice", 3, 60)

    assert result == RateResult(
        count=0, limit=3, remaining=3, reset=45, allowed=True, counted=False
    )
    assert result.headers() == {}
    assert any("request allowed" in record.getMessage() for record in caplog.records)


def test_an_unreachable_redis_lets_the_request_through(settings, caplog):
    """A real Redis client on a port nothing listens on: refused at once, and allowed."""
    settings.CACHES = {"default": redis_cache(url=f"redis://127.0.0.1:{free_port()}/0")}
    with caplog.at_level(logging.ERROR, logger="lukittu.throttling"):
        results = [hit("test", "alice", 1, 60) for _ in range(3)]

    assert all(result.allowed and not result.counted for result in results)
    assert len([r for r in caplog.records if r.name == "lukittu.throttling"]) == 3


# --- With Redis ---------------------------------------------------------------------------------


@needs_redis
def test_a_hit_is_one_round_trip_to_redis(monkeypatch):
    """SET NX (with the expiry) and INCR go out in one script: one write to the
    socket per hit, where the cache API's add, exists and incr took three round trips."""
    import redis

    writes = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        writes.append(command)
        return original(self, command, *args, **kwargs)

    hit("test", "warm-up", 10, 60)  # the connection's own handshake is not a hit's cost
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    for expected in (1, 2, 3):
        assert hit("test", "alice", 10, 60).count == expected

    assert len(writes) == 3


@needs_redis
def test_the_count_lives_in_redis_with_its_expiry(settings):
    import redis

    hit("test", "alice", 10, 60)
    hit("test", "alice", 10, 60)
    name = cache.make_key(f"ratelimit:test:alice:{NOW // 60}")
    server = redis.Redis.from_url(settings.REDIS_URL)
    try:
        # Another process sees the count, with the window's expiry...
        assert server.get(name) == b"2"
        assert 0 < server.ttl(name) <= 61
        # ...Django's cache reads it as the number it is...
        assert cache.get(f"ratelimit:test:alice:{NOW // 60}") == 2
        # ...and what another process counted counts here.
        server.incr(name, 5)
        assert hit("test", "alice", 10, 60).count == 8
    finally:
        server.close()


@needs_redis
def test_concurrent_hits_each_get_their_own_count():
    """From many threads at once (each with its own Django cache and connection, as gunicorn's
    threads have): every count from 1 to N exactly once."""
    threads_count = 16
    counts = []
    start = threading.Barrier(threads_count)

    def one():
        start.wait(10)
        counts.append(hit("test", "burst", 100, 60).count)

    threads = [threading.Thread(target=one) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(counts) == list(range(1, threads_count + 1))


# --- Several limits in turn (the Client API's per-address, then per-license) ----------------


def in_turn(first_limit=2):
    return throttling.hit_in_turn(
        [
            throttling.Limit("test-first", "alice", first_limit, 60),
            throttling.Limit("test-second", "alice", 10, 3600),
        ]
    )


def check_in_turn_counts():
    assert in_turn() is None
    assert in_turn() is None
    refused = in_turn()
    assert refused == RateResult(count=3, limit=2, remaining=0, reset=45, allowed=False)
    # The refused request was counted against the first limit only: the second has 2.
    assert hit("test-first", "alice", 2, 60).count == 4
    assert hit("test-second", "alice", 10, 3600).count == 3
    # The second limit refuses once it is used up, with its own window's end.
    for _ in range(7):
        hit("test-second", "alice", 10, 3600)
    refused = in_turn(first_limit=100)
    assert refused is not None and refused.limit == 10 and refused.reset == 3600 - 15


def test_limits_in_turn_stop_at_the_first_refusal():
    check_in_turn_counts()


@needs_redis
def test_limits_in_turn_stop_at_the_first_refusal_in_redis():
    check_in_turn_counts()


@needs_redis
def test_limits_in_turn_are_one_round_trip_to_redis(monkeypatch):
    import redis

    writes = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        writes.append(command)
        return original(self, command, *args, **kwargs)

    in_turn(first_limit=100)  # the handshake, and the script's first load
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    for _ in range(3):
        assert in_turn(first_limit=100) is None

    assert len(writes) == 3
    assert hit("test-first", "alice", 100, 60).count == 5


def test_limits_in_turn_fail_open(settings, caplog):
    settings.CACHES = {"default": redis_cache(url=f"redis://127.0.0.1:{free_port()}/0")}
    with caplog.at_level(logging.ERROR, logger="lukittu.throttling"):
        assert in_turn(first_limit=0) is None

    assert any("request allowed" in record.getMessage() for record in caplog.records)


def check_a_watched_limit_is_read_not_counted():
    watch = throttling.Watch("test-watched", "bob", 2, 60)
    assert hit("test", "alice", 10, 60, watch=watch).allowed
    assert cache.get(f"ratelimit:test-watched:bob:{NOW // 60}") is None  # not created
    hit("test-watched", "bob", 2, 60)
    hit("test-watched", "bob", 2, 60)
    refused = hit("test", "alice", 10, 60, watch=watch)
    assert (refused.allowed, refused.refused_by, refused.count) == (False, "test-watched", 2)
    assert hit("test-watched", "bob", 2, 60).count == 3  # the watch added nothing


def test_a_watched_limit_is_read_not_counted():
    check_a_watched_limit_is_read_not_counted()


@needs_redis
def test_a_watched_limit_is_read_not_counted_in_redis():
    check_a_watched_limit_is_read_not_counted()
