"""Every call that leaves the process has a bound: a hung Redis costs a request one short wait
and the request still succeeds; S3 calls have connect and read timeouts and a fixed number of
attempts, and presigned links are SigV4; gunicorn runs with the project's configuration file.

A "hung" dependency here is a TCP listener that accepts connections and never answers: the
connect succeeds, so only the read timeout can end the wait."""

import os
import runpy
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore.exceptions import BotoCoreError
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from gunicorn.app.base import Application

from lukittu.env import env_float
from lukittu.storage_settings import redis_cache, s3_storage
from releases.storage import release_storage
from tests.conftest import S3_CREDENTIALS
from tests.helpers import releases_url
from tests.live import PROJECT_ROOT, live_server
from tests.test_settings_env import GOOD, load_settings

GUNICORN_CONF = PROJECT_ROOT / "lukittu" / "gunicorn_conf.py"
# A hang guard, not a speed claim: the bounded waits take well under a second, while without
# them a single call to a hung server waits 5 s (redis-py's default socket timeout) or 60 s
# (botocore's default read timeout), times their retries.
# Margins are wide so a loaded CI machine cannot trip them, and still far from the unbounded
# waits: under redis-py's 5 s for Redis, and under botocore's 60 s per call for S3.
HANG_GUARD_SECONDS = 3.0
S3_HANG_GUARD_SECONDS = 6.0


class HungServer:
    """Accepts TCP connections on 127.0.0.1, reads nothing and answers nothing."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    server = HungServer()
    try:
        yield server
    finally:
        server.close()


# --- Redis ----------------------------------------------------------------------------------


def test_a_hung_redis_costs_one_short_wait_and_the_request_succeeds(
    client, world, settings, hung_server
):
    # The project's Redis cache entry (its default timeouts), pointed at the hung server.
    # Changing CACHES makes Django drop its cache connections, so the limiter uses this one.
    settings.CACHES = {"default": redis_cache(url=f"redis://127.0.0.1:{hung_server.port}/0")}

    started = time.monotonic()
    response = client.get(releases_url(world.team.id), HTTP_AUTHORIZATION=f"Bearer {world.key}")
    elapsed = time.monotonic() - started

    # The limiter fails open: the request is served, without rate-limit headers.
    assert response.status_code == 200, response.content
    assert "X-RateLimit-Limit" not in response
    assert elapsed < HANG_GUARD_SECONDS, elapsed
    # One connection: the first cache call timed out and was neither retried nor followed by
    # the limiter's second call.
    assert len(hung_server.accepted) == 1


def test_the_redis_pool_gets_the_timeouts_and_no_retry(settings):
    settings.CACHES = {"default": redis_cache(url="redis://127.0.0.1:1/0", socket_timeout=0.4)}
    from django.core.cache import caches

    pool = caches["default"]._cache._get_connection_pool(write=True)
    connection = pool.connection_class(**pool.connection_kwargs)

    assert connection.socket_timeout == 0.4
    assert connection.socket_connect_timeout == 0.25
    assert connection.retry.get_retries() == 0


# --- S3 -------------------------------------------------------------------------------------


def test_the_s3_client_has_timeouts_a_fixed_number_of_attempts_and_sigv4(s3):
    config = release_storage().connection.meta.client.meta.config

    assert config.connect_timeout == 5
    assert config.read_timeout == 30
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.signature_version == "s3v4"


def test_a_presigned_url_is_sigv4_and_serves_the_object(s3):
    key = "releases/presign-check/object.bin"
    content = b"the object's bytes"
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=content)

    url = release_storage().url(key)

    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    assert "Signature" not in query and "AWSAccessKeyId" not in query
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == content


def hung_s3(settings, server: HungServer) -> None:
    """The default storage pointed at ``server``, with 0.3 s timeouts and 3 attempts."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket_name="hung",
            endpoint_url=f"http://127.0.0.1:{server.port}",
            connect_timeout=0.3,
            read_timeout=0.3,
            max_attempts=3,
            **S3_CREDENTIALS,
        ),
    }


def test_a_hung_s3_is_given_up_on_after_the_set_attempts(settings, hung_server):
    hung_s3(settings, hung_server)

    started = time.monotonic()
    with pytest.raises(BotoCoreError):
        release_storage().exists("releases/hung/object.bin")
    elapsed = time.monotonic() - started

    # Three attempts of 0.3 s and two backoffs of at most 0.15 s together: about 1 s.
    assert elapsed < S3_HANG_GUARD_SECONDS, elapsed
    assert len(hung_server.accepted) == 3


def test_a_write_to_a_hung_s3_is_given_up_on_too(settings, hung_server):
    hung_s3(settings, hung_server)

    started = time.monotonic()
    with pytest.raises(BotoCoreError):
        release_storage().save("releases/hung/object.bin", ContentFile(b"bytes"))
    elapsed = time.monotonic() - started

    # A PUT also waits botocore's fixed 1 s for "100 Continue" before sending the body, so
    # each attempt costs up to 0.3 + 1 + 0.3 s: about 5 s for three, not minutes.
    assert elapsed < 3 * (0.3 + 1 + 0.3) + S3_HANG_GUARD_SECONDS, elapsed
    assert len(hung_server.accepted) == 3


# --- Settings from the environment ----------------------------------------------------------

PRINT_WAITS = (
    "import lukittu.settings as s; "
    "options = s.CACHES['default']['OPTIONS']; "
    "config = s.STORAGES['default']['OPTIONS']['client_config']; "
    "print(options['socket_timeout'], options['socket_connect_timeout'], "
    "options['retry'].get_retries(), config.connect_timeout, config.read_timeout, "
    "config.retries['total_max_attempts'], config.retries['mode'], config.signature_version)"
)
WITH_REDIS_AND_S3 = {
    **GOOD,
    "REDIS_URL": "redis://cache.internal:6379/0",
    "AWS_STORAGE_BUCKET_NAME": "b",
}


def test_the_settings_default_to_short_redis_waits_and_bounded_s3_calls():
    result = load_settings(WITH_REDIS_AND_S3, PRINT_WAITS)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "0.25", "0.25", "0", "5.0", "30.0", "3", "standard", "s3v4"
    ]  # fmt: skip


def test_the_settings_read_the_waits_from_the_environment():
    env = {
        **WITH_REDIS_AND_S3,
        "REDIS_SOCKET_TIMEOUT": "0.5",
        "REDIS_CONNECT_TIMEOUT": "0.1",
        "AWS_S3_CONNECT_TIMEOUT": "2",
        "AWS_S3_READ_TIMEOUT": "7.5",
        "AWS_S3_MAX_ATTEMPTS": "1",
    }

    result = load_settings(env, PRINT_WAITS)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.5", "0.1", "0", "2.0", "7.5", "1", "standard", "s3v4"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_SOCKET_TIMEOUT", "fast"),
        ("REDIS_SOCKET_TIMEOUT", "0"),
        ("REDIS_CONNECT_TIMEOUT", "-1"),
        ("REDIS_CONNECT_TIMEOUT", "nan"),
        ("AWS_S3_CONNECT_TIMEOUT", "inf"),
        ("AWS_S3_READ_TIMEOUT", "0"),
        ("AWS_S3_MAX_ATTEMPTS", "0"),
        ("AWS_S3_MAX_ATTEMPTS", "2.5"),
    ],
)
def test_a_bad_wait_stops_the_settings_naming_the_variable(name, value):
    result = load_settings({**WITH_REDIS_AND_S3, name: value})

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert name in last_line, last_line


VARIABLE = "LUKITTU_TEST_SETTING"


@pytest.mark.parametrize(("raw", "expected"), [("0.25", 0.25), (" 5 ", 5.0), ("1e-1", 0.1)])
def test_env_float_reads_decimal_numbers(monkeypatch, raw, expected):
    monkeypatch.setenv(VARIABLE, raw)
    assert env_float(VARIABLE, 9.0, above=0) == expected


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_env_float_uses_the_default_when_unset_or_blank(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, raw)
    assert env_float(VARIABLE, 0.25, above=0) == 0.25


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("soon", "must be a number"),
        ("nan", "must be a finite number"),
        ("-inf", "must be a finite number"),
        ("0", "must be greater than 0"),
        ("-0.5", "must be greater than 0"),
    ],
)
def test_env_float_rejects_anything_else(monkeypatch, raw, message):
    monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{VARIABLE} {message}"):
        env_float(VARIABLE, 1.0, above=0)


# --- Gunicorn -------------------------------------------------------------------------------

GUNICORN_VARIABLES = (
    "GUNICORN_WORKERS",
    "GUNICORN_THREADS",
    "GUNICORN_BIND",
    "PORT",
    "FORWARDED_ALLOW_IPS",
)


class ConfigFileOnly(Application):
    """Gunicorn's own loading and validation of a configuration file, without a command line."""

    def load_config(self) -> None:
        pass

    def init(self, parser, opts, args):
        return None

    def load(self):
        raise AssertionError("not started")


def gunicorn_config(monkeypatch, **env):
    for name in GUNICORN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    application = ConfigFileOnly()
    application.load_config_from_file(str(GUNICORN_CONF))
    return application.cfg


def test_the_gunicorn_configuration_defaults(monkeypatch):
    cfg = gunicorn_config(monkeypatch)

    assert cfg.worker_class_str == "gthread"
    assert cfg.workers == min(2 * (os.cpu_count() or 1) + 1, 8)
    assert cfg.threads == 4
    assert cfg.bind == ["127.0.0.1:8000"]
    assert cfg.timeout == 60
    assert cfg.graceful_timeout == 30
    assert cfg.keepalive == 5
    assert (cfg.limit_request_line, cfg.limit_request_fields) == (4094, 50)
    assert cfg.limit_request_field_size == 8190
    # Gunicorn recycles nothing itself: lukittu/recycling.py does (tests/test_worker_recycling.py).
    assert (cfg.max_requests, cfg.max_requests_jitter) == (0, 0)
    assert cfg.forwarded_allow_ips == ["127.0.0.1"]
    assert cfg.accesslog == "-"


def test_the_gunicorn_configuration_reads_the_environment(monkeypatch):
    cfg = gunicorn_config(
        monkeypatch,
        GUNICORN_WORKERS="3",
        GUNICORN_THREADS="8",
        GUNICORN_BIND="10.0.0.5:9000, unix:/run/lukittu.sock",
        FORWARDED_ALLOW_IPS="10.0.0.1,10.0.0.2",
    )

    assert (cfg.workers, cfg.threads) == (3, 8)
    assert cfg.bind == ["10.0.0.5:9000", "unix:/run/lukittu.sock"]
    assert cfg.forwarded_allow_ips == ["10.0.0.1", "10.0.0.2"]


def test_a_platform_port_binds_every_interface(monkeypatch):
    assert gunicorn_config(monkeypatch, PORT="5000").bind == ["0.0.0.0:5000"]
    assert gunicorn_config(monkeypatch, PORT="5000", GUNICORN_BIND="127.0.0.1:7000").bind == [
        "127.0.0.1:7000"
    ]


@pytest.mark.parametrize(
    ("name", "value"), [("GUNICORN_WORKERS", "many"), ("GUNICORN_THREADS", "0"), ("PORT", "x")]
)
def test_a_bad_gunicorn_value_names_the_variable(monkeypatch, name, value):
    for variable in GUNICORN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        runpy.run_path(str(GUNICORN_CONF))


def test_gunicorn_serves_with_the_configuration_file(transactional_db, world, tmp_path: Path):
    with live_server(tmp_path, config_file=GUNICORN_CONF) as server:
        response = requests.get(
            server.url + releases_url(world.team.id),
            headers={"Authorization": f"Bearer {world.key}"},
            timeout=30,
        )

    assert response.status_code == 200, response.text
    assert response.json()["result"]["details"] == "Releases found"
    # One thread on the command line would mean the sync worker: gthread came from the file.
    assert "Using worker: gthread" in server.log_text(), server.log_text()
    assert [status for _, status in server.served_by()] == [200]


def test_gunicorns_own_refusals_are_in_the_envelope(transactional_db, world, tmp_path: Path):
    """A request line over limit_request_line, or too many headers, never reaches Django:
    gunicorn answers it, and in the service's JSON envelope rather than an HTML page."""
    long_query = "search=" + "a" * 5000
    too_many = {f"X-Extra-{number}": "1" for number in range(60)}
    with live_server(tmp_path, config_file=GUNICORN_CONF) as server:
        path = releases_url(world.team.id)
        long_line = requests.get(f"{server.url}{path}?{long_query}", timeout=30)
        headers = requests.get(server.url + path, headers=too_many, timeout=30)
        served = requests.get(
            server.url + path, headers={"Authorization": f"Bearer {world.key}"}, timeout=30
        )

    for response, status in ((long_line, 414), (headers, 431)):
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/json"
        result = response.json()["result"]
        assert response.json()["data"] is None
        assert result["valid"] is False and result["code"] == "BAD_REQUEST"
    assert "4094" in long_line.json()["result"]["details"]
    assert "Shorten the query string" in long_line.json()["result"]["details"]
    # The workers still serve after refusing.
    assert served.status_code == 200
