"""A hung PostgreSQL costs a request a bounded wait and a 503 in the envelope, never a thread
held for ever: on a connection already open (its statement goes unanswered) and on a new one
(its connect goes unanswered). Needs PostgreSQL: the proxy speaks to a database server."""

import pytest
import requests
from django.db import connection

from tests.helpers import release_url
from tests.live import live_server
from tests.tcp_proxy import TcpProxy

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: the proxy speaks to a database server (set DATABASE_URL)",
    ),
]

# Well past the bound below (statement 1 s + grace 1 s, then a connect of 2 s), well short of
# "for ever": a request still unanswered then was held by the hung database.
CLIENT_TIMEOUT = 20
UNAVAILABLE = {
    "valid": False,
    "details": "Database unavailable; retry the request",
    "code": "INTERNAL_SERVER_ERROR",
}


def test_the_bounds_reach_every_connection(db):
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        statement = cursor.fetchone()[0]
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        idle = cursor.fetchone()[0]
    options = connection.settings_dict["OPTIONS"]

    assert (statement, idle) == ("30s", "1min")
    assert options["connect_timeout"] == 5
    assert options["keepalives"] == 1 and options["keepalives_idle"] == 30


def test_a_hung_database_fails_requests_within_the_bound(world, tmp_path):
    settings = connection.settings_dict
    with TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)) as proxy:
        env = {
            "DATABASE_URL": f"postgres://{settings['USER']}@127.0.0.1:{proxy.port}/"
            f"{settings['NAME']}",
            "DATABASE_STATEMENT_TIMEOUT": "1",
            "DATABASE_ANSWER_GRACE": "1",
            "DATABASE_CONNECT_TIMEOUT": "2",
            "READINESS_TIMEOUT": "1",
        }
        with live_server(tmp_path, threads=2, extra_env=env) as server:

            def get(path=None):
                path = path or release_url(world.team.id, world.release.id)
                return requests.get(
                    server.url + path,
                    headers={"Authorization": f"Bearer {world.key}"},
                    timeout=CLIENT_TIMEOUT,
                )

            # The worker keeps this connection open for the next requests.
            assert get().status_code == 200
            proxy.stall_upstream()
            try:
                on_the_open_connection = get()
                on_a_new_connection = get()
                readiness = get("/readyz")
            finally:
                proxy.release()
            assert get().status_code == 200  # and it serves again once the database answers

    for response in (on_the_open_connection, on_a_new_connection):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        body = response.json()
        assert body["data"] is None
        assert {k: v for k, v in body["result"].items() if k != "timestamp"} == UNAVAILABLE
    assert readiness.status_code == 503
    assert readiness.json()["checks"]["database"] in ("down", "timeout")
