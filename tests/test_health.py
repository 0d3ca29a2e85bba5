"""/healthz answers without touching anything; /readyz checks the database, the cache and the
storage, each bounded by READINESS_TIMEOUT, and names what is down. Neither needs an API key
or counts against a rate limit.

"Down" here is real: a cache or S3 endpoint on a port nothing listens on, a database the
connection settings cannot reach, a storage folder that does not exist, a server that accepts
connections and never answers."""

import os
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

from lukittu.storage_settings import redis_cache, s3_storage
from tests.conftest import S3_CREDENTIALS, free_port
from tests.helpers import releases_url
from tests.test_bounded_waits import hung_server  # noqa: F401  (a fixture)

ALL_OK = {"database": "ok", "cache": "ok", "storage": "ok"}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path: Path) -> Path:
    """The storage folder exists, as it does once the service has stored a file."""
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True, exist_ok=True)
    return media


def wait_for_probe_threads(seconds: float = 10) -> None:
    """A late probe goes on in its thread after /readyz answered; the next test must not meet
    it (a check still running past the deadline is reported without running it again)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(thread.name.startswith("readyz-") for thread in threading.enumerate()):
            return
        time.sleep(0.02)
    pytest.fail("a readiness probe thread did not finish")


def readyz(client):
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    return response


# --- /healthz ---------------------------------------------------------------------------------


def test_healthz_answers_without_the_database(client):
    # No `db` fixture: any database access would fail the test.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_probes_need_no_key_and_are_not_rate_limited(client, world, settings):
    settings.DEV_API_RATE = "2/minute"
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert readyz(client).status_code == 200
    # The API itself is limited, and these requests did not use up its count.
    api = client.get(releases_url(world.team.id), HTTP_AUTHORIZATION=f"Bearer {world.key}")
    assert api.status_code == 200
    assert api["X-RateLimit-Remaining"] == "1"


# --- /readyz: everything up -------------------------------------------------------------------


def test_readyz_is_ok_when_everything_answers(client, db):
    response = readyz(client)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": ALL_OK, "degraded": []}


def test_readyz_checks_s3_with_a_head_bucket(client, db, s3):
    response = readyz(client)

    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ok", "checks": ALL_OK, "degraded": []}


def test_readyz_on_redis_when_configured(client, db, settings):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    settings.CACHES = {"default": redis_cache(url=url)}

    assert readyz(client).json() == {"status": "ok", "checks": ALL_OK, "degraded": []}


# --- /readyz: one thing down ------------------------------------------------------------------


def assert_down(response, name: str, result: str = "down") -> None:
    """The database is required: without it the instance is taken out of service. Anything
    else only degrades it: an S3 outage must not pull every instance at once."""
    checks = {**ALL_OK, name: result}
    if name == "database":
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "checks": checks, "degraded": []}
    else:
        assert response.status_code == 200
        assert response.json() == {"status": "degraded", "checks": checks, "degraded": [name]}


def test_readyz_names_an_unreachable_database(client, db, monkeypatch):
    settings_dict = connections["default"].settings_dict
    if connections["default"].vendor == "sqlite":
        monkeypatch.setitem(settings_dict, "NAME", "/nonexistent/folder/db.sqlite3")
    else:
        monkeypatch.setitem(settings_dict, "HOST", "127.0.0.1")
        monkeypatch.setitem(settings_dict, "PORT", str(free_port()))

    assert_down(readyz(client), "database")


def test_readyz_names_an_unreachable_cache(client, db, settings):
    settings.CACHES = {"default": redis_cache(url=f"redis://127.0.0.1:{free_port()}/0")}

    assert_down(readyz(client), "cache")


def test_readyz_names_a_missing_storage_folder(client, db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "not-mounted")

    assert_down(readyz(client), "storage")


def test_readyz_names_an_unreachable_s3_endpoint(client, db, settings, s3):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket_name=s3.bucket, endpoint_url=f"http://127.0.0.1:{free_port()}", **S3_CREDENTIALS
        ),
    }

    started = time.monotonic()
    response = readyz(client)

    assert_down(response, "storage")
    # One attempt, not the storage's three with backoff (a wide margin for a loaded machine).
    assert time.monotonic() - started < 3
    wait_for_probe_threads()


def test_readyz_names_a_missing_bucket(client, db, settings, s3):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket_name="no-such-bucket", endpoint_url=s3.endpoint, **S3_CREDENTIALS
        ),
    }

    assert_down(readyz(client), "storage")


# --- /readyz: bounded -------------------------------------------------------------------------


def test_a_hung_s3_endpoint_is_a_timeout_within_the_deadline(
    client,
    db,
    settings,
    s3,
    hung_server,  # noqa: F811
):
    settings.READINESS_TIMEOUT = 0.5
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket_name=s3.bucket,
            endpoint_url=f"http://127.0.0.1:{hung_server.port}",
            **S3_CREDENTIALS,
        ),
    }

    started = time.monotonic()
    response = readyz(client)
    elapsed = time.monotonic() - started

    assert_down(response, "storage", "timeout")
    # The deadline, not the storage's own timeouts (30 s read, three attempts).
    assert 0.5 <= elapsed < 5, elapsed
    wait_for_probe_threads()


def test_a_hung_check_is_not_started_again_while_it_hangs(client, db, settings, monkeypatch):
    """A probe stuck in the kernel (a hard-mounted NFS share) cannot be interrupted: the next
    /readyz reports it at once instead of adding another stuck thread."""
    settings.READINESS_TIMEOUT = 2.0
    release = threading.Event()
    calls = []
    real_access = os.access

    def stuck_access(path, mode, **kwargs):
        if str(path) == settings.MEDIA_ROOT:
            calls.append(path)
            release.wait(10)
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", stuck_access)
    try:
        first = readyz(client)
        started = time.monotonic()
        second = readyz(client)
        second_took = time.monotonic() - started
    finally:
        release.set()
    wait_for_probe_threads()

    assert_down(first, "storage", "timeout")
    assert_down(second, "storage", "timeout")
    # Far below the 2 s a check that was started again would wait.
    assert second_took < 1.0, second_took
    assert len(calls) == 1
    # Once the dependency answers again, so does the check.
    assert readyz(client).json() == {"status": "ok", "checks": ALL_OK, "degraded": []}
