"""``check --deploy`` warns (lukittu.W001) once requests have come with ``X-Forwarded-For``
while ``NUM_PROXIES`` is 0: behind a proxy every client would share the proxy's address, so
anyone could use up a per-address limit or lock an operator out of the admin. The serving
process notes the sighting in the shared cache (for the check) and in its log."""

import logging
import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.core.checks import Tags, run_checks

from lukittu import checks
from tests.test_deploy_settings import PRODUCTION
from tests.test_settings_env import PROJECT


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """As if this process had noted nothing yet."""
    monkeypatch.setattr(checks, "_last_note", float("-inf"))


def w001() -> list:
    messages = run_checks(tags=[Tags.security], include_deployment_checks=True)
    return [message for message in messages if message.id == "lukittu.W001"]


def test_no_warning_before_any_forwarded_request(client, settings):
    settings.NUM_PROXIES = 0
    assert client.get("/healthz").status_code == 200

    assert w001() == []


def test_a_forwarded_request_without_proxies_is_warned_about(client, settings, caplog):
    settings.NUM_PROXIES = 0

    with caplog.at_level(logging.WARNING, logger="lukittu.checks"):
        for _ in range(3):
            client.get("/healthz", HTTP_X_FORWARDED_FOR="203.0.113.7")

    [warning] = w001()
    assert warning.level == logging.WARNING
    assert "NUM_PROXIES is 0" in warning.msg
    assert "set NUM_PROXIES" in warning.hint
    # One log line for the three requests: a process notes at most once per interval.
    notes = [record for record in caplog.records if record.name == "lukittu.checks"]
    assert len(notes) == 1
    assert "X-Forwarded-For while NUM_PROXIES is 0" in notes[0].getMessage()


def test_with_proxies_configured_nothing_is_noted(client, settings):
    settings.NUM_PROXIES = 1
    client.get("/healthz", HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert cache.get(checks.FORWARDED_FOR_SEEN) is None
    settings.NUM_PROXIES = 0
    assert w001() == []


def test_a_broken_cache_still_logs_and_serves(client, settings, caplog, monkeypatch):
    settings.NUM_PROXIES = 0

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(checks.cache, "set", broken)
    with caplog.at_level(logging.WARNING, logger="lukittu.checks"):
        response = client.get("/healthz", HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert response.status_code == 200
    assert "X-Forwarded-For while NUM_PROXIES is 0" in caplog.text


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis: set REDIS_URL")
def test_manage_py_check_deploy_sees_what_a_server_noted(client, settings):
    """End to end, as an operator runs it: another process, the same Redis."""
    settings.NUM_PROXIES = 0
    client.get("/healthz", HTTP_X_FORWARDED_FOR="203.0.113.7")

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", **PRODUCTION, "REDIS_URL": os.environ["REDIS_URL"]},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "lukittu.W001" in result.stderr, result.stderr
