"""The admin is safe to expose: with DEBUG off the settings are secure by default (HTTPS
redirect, HSTS, secure cookies) and ``check --deploy`` finds nothing; admin logins are locked
out per username and address after repeated failures, and the API's keys are not affected.

Settings are read once, at import, so the environment's effect is checked in a fresh
interpreter (``load_settings``); the behaviour is checked in process with the ``settings``
fixture."""

import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tests.helpers import put_release, update_data
from tests.test_settings_env import GOOD, PROJECT, load_settings

PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(64),
    "TEAM_KEYS_SECRET": secrets.token_urlsafe(32),
    "DEBUG": "false",
    "ALLOWED_HOSTS": "releases.example.com",
    "DATABASE_URL": "sqlite:///:memory:",
}
SECURITY = (
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
)


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def security_values(env: dict[str, str]) -> dict[str, str]:
    code = "import lukittu.settings as s; " + "; ".join(
        f"print({name!r}, repr(s.{name}))" for name in SECURITY
    )
    result = load_settings(env, code)
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


# --- check --deploy ---------------------------------------------------------------------------


def test_deploy_check_is_clean_with_production_settings():
    result = deploy_check(PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_deploy_check_fails_when_a_protection_is_turned_off():
    # The CI step would catch a deployment that turns the redirect off.
    result = deploy_check({**PRODUCTION, "SECURE_SSL_REDIRECT": "false"})

    assert result.returncode != 0
    assert "security.W008" in result.stderr


def test_production_defaults_are_secure():
    assert security_values(PRODUCTION) == {
        "SECURE_SSL_REDIRECT": "True",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
        "SECURE_HSTS_PRELOAD": "True",
        "SESSION_COOKIE_SECURE": "True",
        "CSRF_COOKIE_SECURE": "True",
    }


def test_debug_defaults_are_plain_http():
    assert security_values({**GOOD, "DEBUG": "true"}) == {
        "SECURE_SSL_REDIRECT": "False",
        "SECURE_HSTS_SECONDS": "0",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "False",
        "SECURE_HSTS_PRELOAD": "False",
        "SESSION_COOKIE_SECURE": "False",
        "CSRF_COOKIE_SECURE": "False",
    }


def test_each_knob_comes_from_the_environment():
    env = {
        **PRODUCTION,
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "3600",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false",
        "SECURE_HSTS_PRELOAD": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
    }
    assert security_values(env) == {
        "SECURE_SSL_REDIRECT": "False",
        "SECURE_HSTS_SECONDS": "3600",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "False",
        "SECURE_HSTS_PRELOAD": "False",
        "SESSION_COOKIE_SECURE": "False",
        "CSRF_COOKIE_SECURE": "False",
    }


def test_proxy_header_and_trusted_origins_and_lockout_settings():
    env = {
        **PRODUCTION,
        "TRUST_X_FORWARDED_PROTO": "true",
        "CSRF_TRUSTED_ORIGINS": "https://releases.example.com, https://admin.example.com",
        "AXES_FAILURE_LIMIT": "3",
        "AXES_COOLOFF_MINUTES": "2.5",
    }
    code = (
        "import lukittu.settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER); print(s.CSRF_TRUSTED_ORIGINS); "
        "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds())"
    )
    result = load_settings(env, code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "['https://releases.example.com', 'https://admin.example.com']",
        "3 150.0",
    ]
    unset = load_settings(
        PRODUCTION, "import lukittu.settings as s; print(s.SECURE_PROXY_SSL_HEADER)"
    )
    assert unset.stdout.strip() == "None"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECURE_SSL_REDIRECT", "maybe"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("SECURE_HSTS_SECONDS", "a year"),
        ("SESSION_COOKIE_SECURE", "sure"),
        ("TRUST_X_FORWARDED_PROTO", "https"),
        ("CSRF_TRUSTED_ORIGINS", "releases.example.com"),
        ("AXES_FAILURE_LIMIT", "0"),
        ("AXES_COOLOFF_MINUTES", "0"),
        ("READINESS_TIMEOUT", "0"),
        ("METRICS_ALLOWED_IPS", "127.0.0.1,prometheus.internal"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/prometheus"),
    ],
)
def test_a_bad_value_stops_the_settings_naming_the_variable(name, value):
    result = load_settings({**PRODUCTION, name: value})

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert name in last_line, last_line


# --- What the settings do to requests --------------------------------------------------------


@pytest.fixture
def https_on(settings):
    """The production values the test settings turn off (the test client speaks plain HTTP)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_plain_http_is_redirected_to_https_except_the_probes(https_on, db):
    client = Client()

    response = client.get("/admin/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/admin/login/"
    # Probes and scrapers call the process over plain HTTP; a 301 would look healthy to them.
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    assert client.get("/metrics").status_code == 200


def test_https_through_a_trusted_proxy_gets_hsts_and_secure_cookies(https_on, db):
    response = Client().get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response.cookies["csrftoken"]["secure"] is True


def test_the_session_cookie_is_secure(db):
    User.objects.create_superuser("operator", "op@example.com", "right-password")

    response = Client().post(
        "/admin/login/", {"username": "operator", "password": "right-password"}
    )

    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"] is True
    assert response.cookies["sessionid"]["httponly"] is True


# --- Admin login lockout (django-axes) --------------------------------------------------------

ATTACKER = "203.0.113.7"
OPERATOR = "198.51.100.9"


def login(client: Client, password: str):
    return client.post("/admin/login/", {"username": "operator", "password": password})


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser("operator", "op@example.com", "right-password")


def test_failed_logins_lock_out_that_username_from_that_address(operator, settings):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5
    attacker = Client(REMOTE_ADDR=ATTACKER)

    for _ in range(limit - 1):
        response = login(attacker, "guess")
        assert response.status_code == 200  # the form again, with its error
        assert "_auth_user_id" not in attacker.session
    locked = login(attacker, "guess")
    assert locked.status_code == 429
    assert b"too many login attempts" in locked.content

    # Locked out even with the right password: the guessing has to stop here.
    assert login(attacker, "right-password").status_code == 429
    assert "_auth_user_id" not in attacker.session

    # The operator, from another address, is not locked out by the attacker.
    colleague = Client(REMOTE_ADDR=OPERATOR)
    response = login(colleague, "right-password")
    assert response.status_code == 302
    assert colleague.session["_auth_user_id"] == str(operator.pk)

    # The lockout is on record in the admin, with the username and the address.
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address) == ("operator", ATTACKER)
    assert attempt.failures_since_start >= limit
    page = colleague.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert ATTACKER in page.content.decode() and "operator" in page.content.decode()


def test_the_lockout_ends_after_the_cool_off(operator, settings):
    attacker = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(attacker, "guess")
    assert login(attacker, "right-password").status_code == 429

    # As if the cool-off had passed since the last failure.
    earlier = timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=earlier)

    assert login(attacker, "right-password").status_code == 302


def test_the_lockout_follows_the_address_num_proxies_selects(operator, settings):
    settings.NUM_PROXIES = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # Every request comes from the proxy's address; the callers differ in X-Forwarded-For.
    via_proxy = Client(REMOTE_ADDR="127.0.0.1")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        via_proxy.post(
            "/admin/login/",
            {"username": "operator", "password": "guess"},
            HTTP_X_FORWARDED_FOR=ATTACKER,
        )

    assert AccessAttempt.objects.get().ip_address == ATTACKER
    response = via_proxy.post(
        "/admin/login/",
        {"username": "operator", "password": "right-password"},
        HTTP_X_FORWARDED_FOR=OPERATOR,
    )
    assert response.status_code == 302


def test_api_keys_are_not_subject_to_the_admin_lockout(world, settings):
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        response = put_release(
            client, world.team.id, world.release.id, key="lk_wrong", data=update_data(world.release)
        )
        assert response.status_code == 401

    response = put_release(
        client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
    )
    assert response.status_code == 200
    assert not AccessAttempt.objects.exists()
