"""The per-request health check of a kept PostgreSQL connection, without a round trip when
nothing is wrong.

With ``CONN_HEALTH_CHECKS`` Django runs ``SELECT 1`` before the first statement of every
request that touches the database: a whole round trip, and on a read such as Get Release as
much CPU as the read's own statement. A server that ends a session (a restart, an
administrator's ``pg_terminate_backend``, an idle timeout) tells the client so and closes
the socket, which then has something to read; an idle connection in good order has nothing
to read (no ``LISTEN`` is used). So the socket is polled first: when it has nothing to say,
the connection is taken as usable, and only when it does is ``SELECT 1`` run to decide, as
before. A peer that vanished without a word fails the one check as it fails the other: the
statement goes unanswered and ``lukittu.db_deadline`` bounds the wait.

Free of Django's settings at import: the settings module imports this for its receiver.
"""

import select
from typing import Any

from django.db.backends.signals import connection_created
from django.dispatch import receiver


def quiet(raw: Any) -> bool:
    """Whether the driver's connection ``raw`` is open and its socket has nothing to read."""
    if raw is None or getattr(raw, "closed", True) or getattr(raw, "broken", False):
        return False
    try:
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


@receiver(connection_created, dispatch_uid="lukittu.db_health")
def _probe_before_health_check(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor != "postgresql" or getattr(connection, "_probed", False):
        return
    connection._probed = True
    health_check = connection.close_if_health_check_failed

    def close_if_health_check_failed() -> None:
        if (
            connection.connection is not None
            and connection.health_check_enabled
            and not connection.health_check_done
            and not connection.pool
            and quiet(connection.connection)
        ):
            connection.health_check_done = True
            return
        # Nothing to check, or something to read: Django's own check (SELECT 1) decides.
        health_check()

    # Django calls this on itself, so the instance's own attribute takes its place.
    connection.close_if_health_check_failed = close_if_health_check_failed
