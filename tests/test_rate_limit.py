"""Rate limiting per API key, in fixed windows kept in Django's cache (Redis in production)."""

import os
from types import SimpleNamespace

import pytest

from releases.models import Release
from teams.models import ApiKey
from teams.services import api_key_create
from tests.helpers import assert_error, put_release, release_url, team_state, update_data

WINDOW_START = 1_800_000_000  # a multiple of 60: the start of a one-minute window
NOW = WINDOW_START + 15
SECONDS_LEFT = "45"


@pytest.fixture(autouse=True)
def three_per_minute(settings, monkeypatch):
    """A limit of 3 a minute, and a clock frozen inside one window so no test straddles two."""
    settings.DEV_API_RATE = "3/minute"
    monkeypatch.setattr("lukittu.throttling.time", SimpleNamespace(time=lambda: NOW))


def put(client, world, key=None, version="1.0.0", **extra):
    data = update_data(world.release, version=version)
    return put_release(
        client, world.team.id, world.release.id, key=key or world.key, data=data, **extra
    )


def rate_headers(response):
    return {
        name: response.get(name)
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
    }


def limit_headers(remaining):
    return {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": SECONDS_LEFT,
    }


def use_up(client, world, key=None, **extra):
    for remaining in (2, 1, 0):
        response = put(client, world, key, **extra)
        assert response.status_code == 200, response.json()
        assert rate_headers(response) == limit_headers(remaining)


def assert_limited(response):
    assert_error(response, 429, "Too many requests", "RATE_LIMIT")
    assert rate_headers(response) == limit_headers(0)
    assert response["Retry-After"] == SECONDS_LEFT


def test_requests_over_the_limit_are_refused(client, world):
    use_up(client, world)
    before = team_state(world.team)

    response = put(client, world, version="4.0.0")

    assert_limited(response)
    assert team_state(world.team) == before
    assert Release.objects.get(pk=world.release.pk).version == "1.0.0"


def test_retry_after_is_a_positive_whole_number_of_seconds(client, world, monkeypatch):
    monkeypatch.setattr(
        "lukittu.throttling.time", SimpleNamespace(time=lambda: WINDOW_START + 59.6)
    )
    for _ in range(3):
        assert put(client, world).status_code == 200

    response = put(client, world)

    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response["X-RateLimit-Reset"] == "1"


def test_the_next_window_has_a_fresh_budget(client, world, monkeypatch):
    use_up(client, world)
    assert put(client, world).status_code == 429

    monkeypatch.setattr("lukittu.throttling.time", SimpleNamespace(time=lambda: NOW + 60))
    response = put(client, world)

    assert response.status_code == 200
    assert rate_headers(response) == limit_headers(2)


def test_forwarded_for_and_client_address_do_not_reset_it(client, world):
    for number, remaining in ((1, 2), (2, 1), (3, 0)):
        response = put(
            client,
            world,
            HTTP_X_FORWARDED_FOR=f"203.0.113.{number}",
            REMOTE_ADDR=f"198.51.100.{number}",
        )
        assert response.status_code == 200
        assert rate_headers(response) == limit_headers(remaining)

    assert_limited(put(client, world, HTTP_X_FORWARDED_FOR="192.0.2.99", REMOTE_ADDR="192.0.2.1"))


def test_each_key_has_its_own_budget(client, world):
    _, second_key = api_key_create(team=world.team, name="second")
    use_up(client, world)

    response = put(client, world, key=second_key)

    assert response.status_code == 200
    assert rate_headers(response) == limit_headers(2)
    assert_limited(put(client, world))


def test_another_teams_key_has_its_own_budget(client, world, outsider):
    use_up(client, world)

    response = put_release(
        client,
        outsider.team.id,
        outsider.release.id,
        key=outsider.key,
        data=update_data(outsider.release),
    )

    assert response.status_code == 200
    assert rate_headers(response) == limit_headers(2)


def test_failed_authentication_is_not_counted(client, world, outsider):
    stem = ApiKey.stem_of(world.key)
    wrong_secret = f"{ApiKey.PREFIX}{stem}_not-the-secret"
    for key in (wrong_secret, "garbage", outsider.key, wrong_secret, outsider.key):
        assert_error(put(client, world, key=key), 401, "Invalid API key", "UNAUTHORIZED")

    use_up(client, world)
    assert_limited(put(client, world))


def test_failed_requests_of_a_valid_key_are_counted(client, world):
    """The budget is for requests, not successes: a refused body still costs one."""
    bad = put_release(client, world.team.id, world.release.id, key=world.key, raw_data="{")
    assert_error(bad, 400, "Invalid JSON in data field")
    assert rate_headers(bad) == limit_headers(2)

    assert rate_headers(put(client, world)) == limit_headers(1)


def test_authentication_is_checked_before_the_limit(client, world, outsider):
    use_up(client, world)

    response = put(client, world, key=outsider.key)

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")


def test_the_limit_is_checked_before_the_content_type(client, world):
    use_up(client, world)

    response = client.put(
        release_url(world.team.id, world.release.id),
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )

    assert_limited(response)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis: set REDIS_URL")
def test_the_count_lives_in_redis(client, world, settings):
    import redis

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    key = ApiKey.objects.get(stem=ApiKey.stem_of(world.key))
    name = f"lukittu:1:ratelimit:dev:{key.pk}:{NOW // 60}"
    server = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert put(client, world).status_code == 200
        assert put(client, world).status_code == 200

        # A separate connection (another worker) sees the count...
        assert server.get(name) == b"2"
        assert 0 < server.ttl(name) <= 61

        # ...and what another worker counted limits this one.
        server.incr(name)
        assert_limited(put(client, world))
    finally:
        server.close()
