"""Bounds on every wait for PostgreSQL, so a hung database costs a request an error, not a
thread held for ever.

The server enforces what it can (``statement_timeout``, ``idle_in_transaction_session_timeout``)
and TCP keepalives notice a peer that vanished. Neither helps when the server, or something in
between, accepts the connection and then says nothing: libpq waits for an answer without any
limit. So each statement, commit, rollback and health check of a PostgreSQL connection is
watched: one still unanswered ``DATABASE_ANSWER_GRACE`` seconds after the server's own
statement timeout would have cancelled it has its socket shut down, which ends the wait with
an ``OperationalError`` (a 503 in the API's envelope) and makes Django drop the connection.

Free of Django's settings at import: the settings module imports ``postgresql_options``.
"""

import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.signals import connection_created
from django.dispatch import receiver

logger = logging.getLogger("lukittu.db_deadline")


def postgresql_options(
    *,
    connect_timeout: int,
    statement_timeout: float,
    idle_in_transaction_timeout: float,
    keepalive_seconds: int,
) -> dict[str, Any]:
    """libpq connection parameters for these bounds (seconds; a timeout of 0 is none)."""
    server_settings = (
        f"-c statement_timeout={round(statement_timeout * 1000)} "
        f"-c idle_in_transaction_session_timeout={round(idle_in_transaction_timeout * 1000)}"
    )
    return {
        "connect_timeout": connect_timeout,
        "keepalives": 1,
        "keepalives_idle": keepalive_seconds,
        "keepalives_interval": max(1, keepalive_seconds // 3),
        "keepalives_count": 3,
        # Also bounds data sent but never acknowledged, where keepalives do not apply.
        "tcp_user_timeout": keepalive_seconds * 1000,
        "options": server_settings,
    }


class _Watchdog:
    """One thread per process that shuts down the socket of any statement past its deadline.
    A deadline is armed for exactly as long as its statement runs, under one lock, so the
    socket cut is always that of a connection still waiting."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}
        self._tokens = itertools.count()
        self._pid = 0
        # When the thread wakes next on its own (it recomputes this then), and how far ahead
        # the latest deadline was: an idle thread still wakes after that long.
        self._wake_at = -math.inf
        self._idle_wait = 0.0

    @contextmanager
    def watch(self, fd: int, seconds: float) -> Iterator[None]:
        token = next(self._tokens)
        deadline = time.monotonic() + seconds
        with self._changed:
            self._start_if_needed()
            self._armed[token] = (deadline, fd)
            self._idle_wait = seconds
            # The thread wakes by ``_wake_at`` anyway, and then sees this deadline: only an
            # earlier one needs to wake it now. Deadlines are mostly the same distance ahead,
            # and the thread, idle, waits that long, so a busy process does not wake it on
            # every statement.
            if deadline < self._wake_at:
                self._wake_at = -math.inf  # woken: every deadline is seen when it runs
                self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._armed.pop(token, None)

    def _start_if_needed(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._wake_at = -math.inf
            threading.Thread(target=self._run, name="db-deadline", daemon=True).start()

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for token, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        _cut(fd)
                earliest = min((deadline for deadline, _ in self._armed.values()), default=None)
                if earliest is None:
                    earliest = now + self._idle_wait if self._idle_wait else math.inf
                self._wake_at = earliest
                self._changed.wait(None if earliest == math.inf else max(0.0, earliest - now))


def _cut(fd: int) -> None:
    logger.error("A database statement went unanswered past its deadline; dropping the connection")
    try:
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


_watchdog = _Watchdog()


def answer_deadline() -> float:
    """Seconds a statement may go unanswered; 0 when the statement timeout is off."""
    from django.conf import settings

    if not settings.DATABASE_STATEMENT_TIMEOUT:
        return 0.0
    return settings.DATABASE_STATEMENT_TIMEOUT + settings.DATABASE_ANSWER_GRACE


def _watched(wrapper: Any, call: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            fd = wrapper.connection.fileno()
        except Exception:
            # No connection, or a closed one: nothing can wait on its socket, and the call
            # itself reports what is wrong.
            return call(*args, **kwargs)
        with _watchdog.watch(fd, seconds):
            return call(*args, **kwargs)

    return watched


@receiver(connection_created, dispatch_uid="lukittu.db_deadline")
def _watch_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    seconds = answer_deadline()
    if connection.vendor != "postgresql" or not seconds or getattr(connection, "_watched", False):
        return
    connection._watched = True

    def execute(run: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
        return _watched(connection, run, seconds)(sql, params, many, context)

    # First, so that a wrapper a caller pushes and pops around its own code stays the last.
    connection.execute_wrappers.insert(0, execute)
    # Django calls these on itself, so the instance's own attributes take their place.
    for name in ("is_usable", "_commit", "_rollback"):
        setattr(connection, name, _watched(connection, getattr(connection, name), seconds))
