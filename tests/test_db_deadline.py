"""The database deadline's watchdog, on plain sockets: a call still unanswered past its deadline
has its socket shut down (which ends libpq's wait), and one that was answered is left alone.
``test_database_timeouts.py`` shows the same against a hung PostgreSQL."""

import socket
import time

from lukittu import db_deadline


def test_a_call_unanswered_past_its_deadline_has_its_socket_shut_down():
    waiting, silent = socket.socketpair()
    with waiting, silent:
        waiting.settimeout(10)
        with db_deadline._watchdog.watch(waiting.fileno(), 0.2):
            # Woken by the shutdown (end of stream), not by the 10 s timeout or an answer.
            assert waiting.recv(1) == b""


def test_an_answered_call_is_left_alone_after_its_deadline():
    waiting, answering = socket.socketpair()
    with waiting, answering:
        waiting.settimeout(10)
        with db_deadline._watchdog.watch(waiting.fileno(), 0.2):
            answering.sendall(b"1")
            assert waiting.recv(1) == b"1"
        time.sleep(0.5)  # past the deadline the call no longer has
        answering.sendall(b"2")
        assert waiting.recv(1) == b"2"


def test_the_libpq_options_carry_every_bound():
    options = db_deadline.postgresql_options(
        connect_timeout=5,
        statement_timeout=30,
        idle_in_transaction_timeout=60,
        keepalive_seconds=30,
    )

    assert options == {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 30000,
        "options": "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000",
    }


def test_no_deadline_when_the_statement_timeout_is_off(settings):
    settings.DATABASE_STATEMENT_TIMEOUT = 0
    assert db_deadline.answer_deadline() == 0
    settings.DATABASE_STATEMENT_TIMEOUT = 30
    settings.DATABASE_ANSWER_GRACE = 5
    assert db_deadline.answer_deadline() == 35


def test_a_nearer_deadline_wakes_a_watchdog_that_waits_for_a_far_one():
    watchdog = db_deadline._Watchdog()
    waiting, silent = socket.socketpair()
    with waiting, silent:
        waiting.settimeout(10)
        with watchdog.watch(waiting.fileno(), 60):  # the thread now waits up to 60 s
            time.sleep(0.05)
        started = time.monotonic()
        with watchdog.watch(waiting.fileno(), 0.2):
            assert waiting.recv(1) == b""
        assert time.monotonic() - started < 5


def test_statements_as_far_ahead_as_the_last_do_not_wake_the_watchdog(monkeypatch):
    watchdog = db_deadline._Watchdog()
    waiting, answering = socket.socketpair()
    with waiting, answering:
        with watchdog.watch(waiting.fileno(), 30):
            time.sleep(0.05)  # the thread runs and settles on its wait
        time.sleep(0.05)
        notified = []
        notify = watchdog._changed.notify
        monkeypatch.setattr(watchdog._changed, "notify", lambda: notified.append(1) or notify())
        for _ in range(100):
            with watchdog.watch(waiting.fileno(), 30):
                pass

        assert notified == []
