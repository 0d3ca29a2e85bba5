"""The per-request health check of a kept PostgreSQL connection (``lukittu.db_health``): no
round trip while the connection has nothing to say, and a session the server ended is still
found and replaced before a statement fails on it. Needs PostgreSQL: the sessions are real."""

import os
import subprocess
import sys
import time

import psycopg
import pytest
from django.db import connection, connections

from lukittu.db_health import quiet

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: a server ends the session (set DATABASE_URL)",
    ),
]


@pytest.fixture
def checked():
    """The connection open, due its health check, with each ``SELECT 1`` counted."""
    connection.ensure_connection()
    wrapper = connections["default"]
    enabled, is_usable = wrapper.health_check_enabled, wrapper.is_usable
    calls = []

    def counted():
        calls.append(1)
        return is_usable()

    wrapper.health_check_enabled, wrapper.is_usable = True, counted
    wrapper.health_check_done = False
    try:
        yield calls
    finally:
        wrapper.health_check_enabled, wrapper.is_usable = enabled, is_usable


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_quiet_connection_is_kept_without_a_round_trip(checked):
    pid = backend_pid()
    connection.health_check_done = False

    connection.close_if_health_check_failed()

    assert checked == []
    assert connection.health_check_done
    assert backend_pid() == pid


def test_a_session_the_server_ended_is_replaced_before_the_next_statement(checked):
    pid = backend_pid()
    connection.health_check_done = False
    settings = connection.get_connection_params()
    with psycopg.connect(**settings, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while quiet(connection.connection) and time.monotonic() < deadline:
        time.sleep(0.01)

    connection.close_if_health_check_failed()

    assert checked == [1]  # the socket had something to say: SELECT 1 decided
    assert connection.connection is None
    assert backend_pid() != pid  # a new session, and the statement ran


def test_a_closed_driver_connection_is_not_quiet():
    connection.ensure_connection()
    raw = connection.connection
    assert quiet(raw)
    connection.close()
    assert not quiet(raw)
    assert not quiet(None)


def test_the_service_connects_the_probe_at_setup():
    # In its own process: this module's import connects the receiver here whatever happens.
    script = (
        "import django; django.setup(); "
        "from django.db.backends.signals import connection_created as signal; "
        "print(any(key[0] == 'lukittu.db_health' for key, *_ in signal.receivers))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "lukittu.settings", "SECRET_KEY": "x" * 50}
    answer = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "True"
