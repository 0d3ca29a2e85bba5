"""Configuration from the environment fails loudly: a bad value stops the settings from loading
with an ImproperlyConfigured that names the variable.

The settings module is imported in a fresh interpreter with a controlled environment, since it
reads the environment once, at import."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from lukittu.env import env_bool, env_int, env_rate
from lukittu.throttling import parse_rate

PROJECT = Path(__file__).resolve().parent.parent
GOOD = {
    "SECRET_KEY": "a-test-secret",
    "TEAM_KEYS_SECRET": "a-test-keys-secret",
    "DATABASE_URL": "sqlite:///:memory:",
}


def load_settings(env, code="import lukittu.settings"):
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("MAX_RELEASE_FILE_MB", "ten"),
        ("MAX_RELEASE_FILE_MB", "0"),
        ("DEV_API_RATE", "fast"),
        ("DEV_API_RATE", "0/minute"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://x"),
    ],
)
def test_a_bad_value_stops_the_settings_naming_the_variable(name, value):
    result = load_settings({**GOOD, name: value})

    assert result.returncode != 0
    # The exception's own message, not the traceback's source lines, must name the variable.
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert name in last_line, last_line


@pytest.mark.parametrize("secret", ["SECRET_KEY", "TEAM_KEYS_SECRET"])
def test_a_missing_secret_with_debug_off_stops_the_settings(secret):
    env = {key: value for key, value in GOOD.items() if key != secret}

    result = load_settings({**env, "DEBUG": "false"})

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert f"{secret} must be set" in last_line, last_line


def test_good_values_load():
    env = {
        **GOOD,
        "DEBUG": "off",
        "MAX_RELEASE_FILE_MB": "25",
        "DEV_API_RATE": "30 / Second",
        "DATABASE_URL": "postgres://app@db.internal:5433/releases",
        "REDIS_URL": "redis://cache.internal:6379/2",
    }
    code = (
        "import lukittu.settings as s; "
        "print(s.DEBUG, s.MAX_RELEASE_FILE_MB, s.DEV_API_RATE, "
        "s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], "
        "s.CACHES['default']['LOCATION'])"
    )

    result = load_settings(env, code)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "25",
        "30/second",
        "django.db.backends.postgresql",
        "releases",
        "redis://cache.internal:6379/2",
    ]


def test_debug_without_secrets_loads_with_development_ones():
    env = {k: v for k, v in GOOD.items() if k not in ("SECRET_KEY", "TEAM_KEYS_SECRET")}

    result = load_settings(
        {**env, "DEBUG": "true"},
        "import lukittu.settings as s; "
        "print(s.DEBUG, bool(s.SECRET_KEY), bool(s.TEAM_KEYS_SECRET))",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


# --- the helpers ---------------------------------------------------------------------------

VARIABLE = "LUKITTU_TEST_SETTING"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("1", True),
        (" Yes ", True),
        ("ON", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("Off", False),
    ],
)
def test_env_bool_reads_true_and_false(monkeypatch, raw, expected):
    monkeypatch.setenv(VARIABLE, raw)
    assert env_bool(VARIABLE, not expected) is expected


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_helpers_use_the_default_when_unset_or_blank(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, raw)
    assert env_bool(VARIABLE, True) is True
    assert env_int(VARIABLE, 7, minimum=1) == 7
    assert env_rate(VARIABLE, "60/minute") == "60/minute"


def test_env_bool_rejects_anything_else(monkeypatch):
    monkeypatch.setenv(VARIABLE, "maybe")
    with pytest.raises(ImproperlyConfigured, match=f"{VARIABLE} must be true or false"):
        env_bool(VARIABLE, False)


def test_env_int_reads_whole_numbers_and_enforces_the_minimum(monkeypatch):
    monkeypatch.setenv(VARIABLE, " 42 ")
    assert env_int(VARIABLE, 1, minimum=1) == 42
    monkeypatch.setenv(VARIABLE, "-3")
    assert env_int(VARIABLE, 1) == -3
    with pytest.raises(ImproperlyConfigured, match=f"{VARIABLE} must be at least 0"):
        env_int(VARIABLE, 1, minimum=0)
    for bad in ("ten", "1.5", "1e3"):
        monkeypatch.setenv(VARIABLE, bad)
        with pytest.raises(ImproperlyConfigured, match=f"{VARIABLE} must be a whole number"):
            env_int(VARIABLE, 1)


@pytest.mark.parametrize(
    ("raw", "limit", "period"),
    [
        ("1000/minute", 1000, 60),
        ("5/s", 5, 1),
        ("10 / hour", 10, 3600),
        (" 1/day ", 1, 86400),
        ("3/Min", 3, 60),
    ],
)
def test_env_rate_accepts_rates_the_throttle_can_use(monkeypatch, raw, limit, period):
    monkeypatch.setenv(VARIABLE, raw)
    # Whatever the helper accepts must work in the throttle, or every request would fail.
    assert parse_rate(env_rate(VARIABLE, "1/minute")) == (limit, period)


@pytest.mark.parametrize("raw", ["fast", "0/minute", "10/fortnight", "10", "-1/minute"])
def test_env_rate_rejects_anything_else(monkeypatch, raw):
    monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{VARIABLE} must look like"):
        env_rate(VARIABLE, "1/minute")


def test_env_rate_checks_its_default_too(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    with pytest.raises(ImproperlyConfigured, match=VARIABLE):
        env_rate(VARIABLE, "often")


def test_a_bad_url_is_named_without_echoing_its_credentials(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from lukittu.env import env_url

    monkeypatch.setenv("REDIS_URL", "http://user:s3cret@cache.internal:6379/2")
    with pytest.raises(ImproperlyConfigured) as raised:
        env_url("REDIS_URL", ("redis", "rediss"))
    assert "REDIS_URL" in str(raised.value) and "'http'" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_manage_py_names_a_bad_setting_without_a_traceback(tmp_path):
    """An operator's command with a wrong value in the environment says which and how to fix
    it, in one line."""
    env = {"PATH": "/usr/bin:/bin", **GOOD, "DEV_API_RATE": "fast"}
    env["UPLOAD_TEMP_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "Configuration error: DEV_API_RATE must look like '1000/minute'" in done.stderr
    assert "Traceback" not in done.stderr
