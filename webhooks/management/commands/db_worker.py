"""``manage.py db_worker``: django-tasks-db's worker (same options), which also sweeps the
webhook delivery table.

The sweep sends every due delivery, up to ``WEBHOOKS_CONCURRENCY`` at once and at most
``WEBHOOKS_TEAM_CONCURRENCY`` of one team's (``webhooks.sender.sweep``). It runs in a thread of
the worker, at once, whenever a task wakes it (the tasks enqueued after each commit and for
each retry do nothing else here), and every ``WEBHOOKS_SWEEP_SECONDS``, which covers what no
task will: a delivery whose process died between its commit and the enqueue, or whose task row
was lost. With ``--batch`` it runs once before the tasks, which then send their own. A delivery
is claimed before it is sent, so the sweeps and tasks of any number of workers never send one
attempt twice.
"""

import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker

from webhooks.sender import TIMEOUT, sweep
from webhooks.tasks import schedule_retry, wake_on_tasks

logger = logging.getLogger("webhooks")


class Sweeper(threading.Thread):
    """Sweeps when woken by a task, and every ``interval`` seconds, until stopped."""

    def __init__(self, interval: float) -> None:
        # A daemon: a worker told to stop does not wait for it beyond ``stop``'s join. An
        # attempt cut short that way is sent again once its lease ends (at least once).
        super().__init__(name="webhook-sweeper", daemon=True)
        self.interval = interval
        self.wake = threading.Event()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            # Cleared before the sweep: a task's wake during it starts the next one at once.
            self.wake.clear()
            try:
                sweep(stop=self._stopped, schedule_retry=schedule_retry)
            except Exception:
                logger.exception("webhook sweep failed; trying again in %ss", self.interval)
            finally:
                close_old_connections()
            self.wake.wait(self.interval)

    def stop(self) -> None:
        """Start no more attempts, and wait for those in flight to be recorded."""
        self._stopped.set()
        self.wake.set()
        self.join(timeout=TIMEOUT * 3)


class Command(db_worker.Command):
    help = "Run the task worker, and sweep the webhook delivery table for due deliveries"

    def handle(self, *args: Any, **options: Any) -> None:
        reloading = options["reload"] and not options["batch"]
        if reloading and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":
            # The autoreloader's parent only watches files; its child runs the worker (and
            # passes through here again, sweeping).
            return super().handle(*args, **options)
        if options["batch"]:
            sent = sweep(schedule_retry=schedule_retry)
            if sent:
                logger.info("webhook sweep at start: %d sent", sent)
            return super().handle(*args, **options)
        sweeper = Sweeper(settings.WEBHOOKS_SWEEP_SECONDS)
        sweeper.start()
        wake_on_tasks(sweeper.wake)
        try:
            return super().handle(*args, **options)
        finally:
            wake_on_tasks(None)
            sweeper.stop()
