"""Failed Developer API authentications are limited per client address: past
``DEV_API_AUTH_FAILURE_RATE`` failures in a window, the address is answered 429 with
``Retry-After``, whatever key it sends (a valid one included), until the window ends. Other
addresses are not affected; an IPv6 address counts by its /64."""

import os
from types import SimpleNamespace

import pytest

from lukittu import throttling
from teams.models import ApiKey
from tests.helpers import assert_error, releases_url
from tests.test_settings_env import GOOD, load_settings

WINDOW_START = 1_800_000_000  # a multiple of 60
NOW = WINDOW_START + 15
ATTACKER = "203.0.113.5"
BYSTANDER = "198.51.100.7"
LIMIT = 20


@pytest.fixture(autouse=True)
def frozen_clock(settings, monkeypatch):
    settings.DEV_API_AUTH_FAILURE_RATE = f"{LIMIT}/minute"
    clock = SimpleNamespace(now=NOW)
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


def list_releases(client, world, key, address, **extra):
    return client.get(
        releases_url(world.team.id),
        HTTP_AUTHORIZATION=f"Bearer {key}",
        REMOTE_ADDR=address,
        **extra,
    )


def wrong_key(world, n):
    return f"{ApiKey.PREFIX}{ApiKey.stem_of(world.key)}_wrong-{n}"


def assert_too_many(response, retry_after="45"):
    assert_error(response, 429, "Too many failed authentications from this address", "RATE_LIMIT")
    assert response["Retry-After"] == retry_after
    # The shared 429 component requires the X-RateLimit-* headers: this answer sends them too.
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert response.has_header(name), name
        assert response[name].isdigit(), (name, response[name])


def test_sixty_wrong_keys_are_refused_after_the_limit(client, world):
    statuses = [
        list_releases(client, world, wrong_key(world, n), ATTACKER).status_code for n in range(60)
    ]

    assert statuses == [401] * LIMIT + [429] * (60 - LIMIT)
    assert_too_many(list_releases(client, world, "garbage", ATTACKER))


def test_a_blocked_address_is_refused_even_with_a_valid_key(client, world):
    for n in range(LIMIT):
        assert list_releases(client, world, wrong_key(world, n), ATTACKER).status_code == 401

    # No oracle: a right key from the address looks like a wrong one until the window ends.
    assert_too_many(list_releases(client, world, world.key, ATTACKER))


def test_another_address_with_a_valid_key_is_not_affected(client, world):
    for n in range(60):
        list_releases(client, world, wrong_key(world, n), ATTACKER)

    response = list_releases(client, world, world.key, BYSTANDER)

    assert response.status_code == 200, response.content
    assert response.json()["result"]["details"] == "Releases found"


def test_the_next_window_lets_the_address_in_again(client, world, frozen_clock):
    for n in range(LIMIT + 1):
        list_releases(client, world, wrong_key(world, n), ATTACKER)
    assert_too_many(list_releases(client, world, world.key, ATTACKER))

    frozen_clock.now = WINDOW_START + 60

    assert list_releases(client, world, world.key, ATTACKER).status_code == 200


def test_a_key_of_another_team_counts_as_a_failure(client, world, outsider):
    for _ in range(LIMIT):
        response = list_releases(client, world, outsider.key, ATTACKER)
        assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")

    assert_too_many(list_releases(client, world, outsider.key, ATTACKER))


def test_a_request_without_credentials_is_not_counted(client, world):
    for _ in range(LIMIT + 5):
        assert client.get(releases_url(world.team.id), REMOTE_ADDR=ATTACKER).status_code == 401

    assert list_releases(client, world, world.key, ATTACKER).status_code == 200


def test_ipv6_failures_count_by_the_64(client, world):
    for n in range(LIMIT):
        # Every failure from another address of one /64.
        address = f"2001:db8:1:2::{n + 1:x}"
        assert list_releases(client, world, wrong_key(world, n), address).status_code == 401

    assert_too_many(list_releases(client, world, world.key, "2001:db8:1:2:ffff::9"))
    assert list_releases(client, world, world.key, "2001:db8:1:3::1").status_code == 200


def test_forwarded_for_is_ignored_without_trusted_proxies(client, world):
    """With NUM_PROXIES 0 a client cannot spread its failures over addresses it names."""
    for n in range(LIMIT):
        list_releases(
            client, world, wrong_key(world, n), ATTACKER, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}"
        )

    assert_too_many(list_releases(client, world, world.key, ATTACKER))


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis: set REDIS_URL")
def test_the_failures_are_counted_in_redis_and_shared(client, world, settings):
    import redis

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    name = f"lukittu:1:ratelimit:{throttling.AUTH_FAILURES}:{ATTACKER}:{NOW // 60}"
    server = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert list_releases(client, world, wrong_key(world, 0), ATTACKER).status_code == 401
        assert server.get(name) == b"1"
        # Failures another worker counted block this one, valid key or not.
        server.set(name, LIMIT, ex=61)
        assert_too_many(list_releases(client, world, world.key, ATTACKER))
    finally:
        server.delete(name)
        server.close()


@pytest.mark.parametrize("value", ["fast", "0/minute"])
def test_a_bad_failure_rate_stops_the_settings_naming_it(value):
    result = load_settings({**GOOD, "DEV_API_AUTH_FAILURE_RATE": value})

    assert result.returncode != 0
    assert "DEV_API_AUTH_FAILURE_RATE" in result.stderr.strip().splitlines()[-1], result.stderr
