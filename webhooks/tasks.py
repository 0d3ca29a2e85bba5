"""The delivery task (django-tasks, database backend), and enqueueing it.

A task only says "look at this delivery now"; the delivery row decides what happens
(``webhooks.sender.attempt`` claims it only if it is still due). So a duplicate task, or a
task that outlives a sweep which already sent the delivery, does nothing, and a task that was
never enqueued is made up for by the sweep.

In a running worker (``manage.py db_worker``) a task only wakes the worker's sweeper, which
sends every due delivery concurrently and fairly between teams (``webhooks.sender.sweep``):
a task that sent its own delivery would hold the worker's only task thread for up to 10 s.
"""

import logging
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django_tasks import task

from webhooks.sender import attempt

logger = logging.getLogger("webhooks")


_sweeper_wake: threading.Event | None = None


def wake_on_tasks(wake: threading.Event | None) -> None:
    """From now on, tasks in this process set ``wake`` instead of sending (None: they send)."""
    global _sweeper_wake
    _sweeper_wake = wake


@task()
def deliver(delivery_id: str) -> bool:
    """Wake this process's sweeper, or send the delivery (``--batch``, no sweeper); whether
    this call sent it."""
    if _sweeper_wake is not None:
        _sweeper_wake.set()
        return False
    delivery = uuid.UUID(delivery_id)
    attempted = attempt(delivery)
    if attempted is None:
        return False
    if attempted.retry_at is not None:
        schedule_retry(delivery, attempted.retry_at)
    return True


def schedule_retry(delivery_id: uuid.UUID, when: datetime) -> None:
    """Enqueue the delivery's next attempt for ``when``, once the attempt's record commits."""
    transaction.on_commit(lambda: enqueue_deliveries([delivery_id], run_after=when), robust=True)


def enqueue_deliveries(
    delivery_ids: Iterable[uuid.UUID], run_after: datetime | None = None
) -> None:
    """One task per delivery, to run at ``run_after`` (now when None). A failure is logged,
    not raised: the sweep will find the delivery by its ``next_attempt_at``."""
    scheduled = deliver.using(run_after=run_after) if run_after is not None else deliver
    for delivery_id in delivery_ids:
        try:
            scheduled.enqueue(str(delivery_id))
        except Exception:
            logger.exception("could not enqueue webhook delivery %s; the sweep will", delivery_id)
