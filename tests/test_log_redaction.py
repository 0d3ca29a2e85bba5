"""No credential reaches a log: gunicorn's access and error logs and Django's handlers write
URLs with the values of ``licenseKey``, ``hardwareIdentifier``, ``sessionKey`` and of any
parameter named like a key, token, secret, password or signature replaced by ``[REDACTED]``,
and never a credential header. The paths themselves are still logged.

The live test runs gunicorn with the repository's config and greps every log it wrote for
every secret it sent."""

import io
import logging
import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from lukittu.log_redaction import REDACTED, RedactingFilter, is_secret_name, redact
from teams.keys import key_pair_for
from teams.services import license_create
from tests.conftest import World
from tests.helpers import attach_file, make_jar
from tests.live import PROJECT_ROOT, live_server
from tests.loader import Loader, classloader_url, download_url, latest_url

GUNICORN_CONF = PROJECT_ROOT / "lukittu" / "gunicorn_conf.py"
# Gunicorn's default access-log format (the repository's config keeps it), plus the atoms an
# operator might add that could carry a credential: the raw query, the Referer, the
# Authorization header and the raw URI from the environ.
ACCESS_FORMAT = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    ' q="%(q)s" auth="%({authorization}i)s" uri="%({raw_uri}e)s"'
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "GET /api/v1/client/teams/t/releases/latest?licenseKey=AB-CD&productId=p"
            "&hardwareIdentifier=hw HTTP/1.1",
            "GET /api/v1/client/teams/t/releases/latest?licenseKey=[REDACTED]&productId=p"
            "&hardwareIdentifier=[REDACTED] HTTP/1.1",
        ),
        ("sessionKey=0a1b&branch=beta", "sessionKey=[REDACTED]&branch=beta"),
        ('"https://s3/x?X-Amz-Signature=f00&a=1"', '"https://s3/x?X-Amz-Signature=[REDACTED]&a=1"'),
        ("/x?api_key=k1;access-token=t1", "/x?api_key=[REDACTED];access-token=[REDACTED]"),
        ("/x?PASSWORD=p&clientSecret=s", "/x?PASSWORD=[REDACTED]&clientSecret=[REDACTED]"),
        # A percent-encoded name is the same parameter to Django's query parser.
        ("/x?lic%65nseKey=zz", "/x?lic%65nseKey=[REDACTED]"),
        # A query inside a value (a ``next`` link) is redacted too.
        ("/x?next=/y?licenseKey=zz", "/x?next=/y?licenseKey=[REDACTED]"),
        ("/api/v1/dev/teams/t/releases?page=2&version=1.0", None),
        ("no query at all", None),
    ],
)
def test_credential_values_are_redacted_and_the_rest_kept(line, expected):
    assert redact(line) == (line if expected is None else expected)


@pytest.mark.parametrize("name", ["licenseKey", "LICENSEKEY", "hwid", "sessionkey", "authToken"])
def test_names_that_say_credential(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["productId", "branch", "version", "page", "search"])
def test_ordinary_names_are_kept(name):
    assert not is_secret_name(name)


def test_the_filter_redacts_arguments_and_tracebacks():
    record_filter = RedactingFilter()
    try:
        raise ValueError("fetching /x?licenseKey=in-the-exception")
    except ValueError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "Failed %s", ("/x?sessionKey=in-args",), None
        )
        record.exc_info = sys.exc_info()

    assert record_filter.filter(record) is True
    text = logging.Formatter().format(record)
    assert "in-the-exception" not in text
    assert "in-args" not in text
    assert f"/x?sessionKey={REDACTED}" in text


@pytest.fixture
def captured_console() -> Iterator[io.StringIO]:
    """What the project's console handler (Django's logging config) writes."""
    handler = next(
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.get_name() == "console"
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


@pytest.mark.parametrize("logger_name", ["django.request", "django.server", "lukittu.delivery"])
def test_djangos_handlers_write_urls_redacted(captured_console, logger_name):
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["redact"]

    logging.getLogger(logger_name).error(
        '"GET %s HTTP/1.1" 500', "/api/v1/client/teams/t/releases/download?licenseKey=K-1-2"
    )

    written = captured_console.getvalue()
    assert "K-1-2" not in written
    assert f"/releases/download?licenseKey={REDACTED}" in written


# --- Live: gunicorn with the repository's config --------------------------------------------


def raw_request(url: str, request_line: str) -> bytes:
    """Send one malformed request over a socket and return whatever comes back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"{request_line}\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def client_api_calls(server: Any, world: World, secrets_used: list[str]) -> list[int]:
    """Client API requests carrying a license key, hardware ids and session keys in the
    query, valid and refused; every value sent is added to ``secrets_used``."""
    _, key = license_create(team=world.team, products=[world.product])
    attach_file(world.other_release, "app.jar", make_jar(), main_class_name="com.ex.Main")
    loader = Loader(key_pair_for(world.team).public_key_pem)
    hwid, session_key = f"hw-{secrets.token_hex(8)}", loader.session_key_hex()
    wrong_key = "-".join(secrets.token_hex(3).upper()[:5] for _ in range(5))
    secrets_used += [key, hwid, session_key, wrong_key]
    base = {"productId": str(world.product.id), "hardwareIdentifier": hwid}
    calls = [
        (classloader_url(world.team.id), {**base, "licenseKey": key, "sessionKey": session_key}),
        (download_url(world.team.id), {**base, "licenseKey": key}),
        (latest_url(world.team.id), {**base, "licenseKey": key}),
        (latest_url(world.team.id), {**base, "licenseKey": wrong_key}),
    ]
    statuses = []
    for url, params in calls:
        response = requests.get(
            server.url + url,
            params=params,
            # A Referer that repeats the query, as a browser's would.
            headers={"Referer": f"{server.url}{url}?licenseKey={key}"},
            timeout=60,
        )
        statuses.append(response.status_code)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_a_live_run_logs_paths_but_no_secret(world, tmp_path):
    secrets_used: list[str] = []
    bad_bearer = f"lk_{secrets.token_urlsafe(24)}"
    secrets_used.append(bad_bearer)
    malformed_secret = f"M{secrets.token_hex(10)}"
    secrets_used.append(malformed_secret)
    env = {"LOG_LEVEL": "DEBUG", "CLIENT_IP_RATE": "1000/minute"}
    args = ("--access-logformat", ACCESS_FORMAT, "--log-level", "debug")
    with live_server(tmp_path, config_file=GUNICORN_CONF, extra_env=env, extra_args=args) as server:
        statuses = client_api_calls(server, world, secrets_used)
        dev = requests.get(
            f"{server.url}/api/v1/dev/teams/{world.team.id}/releases?token=t{bad_bearer}",
            headers={"Authorization": f"Bearer {bad_bearer}"},
            timeout=60,
        )
        secrets_used.append(f"t{bad_bearer}")
        # A request line gunicorn cannot parse: its error log quotes the line.
        refused = raw_request(server.url, f"GET /api/v1/client/x?licenseKey={malformed_secret}")

    assert statuses == [200, 200, 200, 404], statuses
    assert dev.status_code == 401
    assert refused.startswith(b"HTTP/1.1 400")
    logs = {
        path.name: path.read_text(errors="replace")
        for path in Path(tmp_path).glob("*.log")
        if path.is_file()
    }
    everything = "\n".join(logs.values())
    assert "/releases/latest?" in logs["gunicorn-access.log"], logs
    assert f"licenseKey={REDACTED}" in logs["gunicorn-access.log"]
    assert "/verification/classloader?" in logs["gunicorn-access.log"]
    assert "Invalid" in logs["gunicorn.log"], logs["gunicorn.log"]
    found = [secret for secret in secrets_used if secret in everything]
    assert found == [], {name: text[-3000:] for name, text in logs.items()}
