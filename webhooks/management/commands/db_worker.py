"""``manage.py db_worker``: django-tasks-db's worker (same options), which also sweeps the
webhook delivery table.

The worker runs the tasks enqueued after each commit. The sweep covers what no task will: a
delivery whose process died between its commit and the enqueue, or whose task row was lost. It
runs once before the first task (so ``--batch`` delivers what is due, too), then every
``WEBHOOKS_SWEEP_SECONDS`` in a thread of the worker, taking deliveries overdue by more than
that interval (a delivery whose task is about to run is left to it). A delivery is claimed
before it is sent, so the sweep and the tasks of any number of workers never send one attempt
twice.
"""

import logging
import os
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker

from webhooks.sender import TIMEOUT, sweep

logger = logging.getLogger("webhooks")


class Sweeper(threading.Thread):
    """Sweeps every ``interval`` seconds until stopped."""

    def __init__(self, interval: float) -> None:
        # A daemon: a worker told to stop does not wait for it beyond ``stop``'s join. An
        # attempt cut short that way is sent again once its lease ends (at least once).
        super().__init__(name="webhook-sweeper", daemon=True)
        self.interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                sweep(overdue=timedelta(seconds=self.interval))
            except Exception:
                logger.exception("webhook sweep failed; trying again in %ss", self.interval)
            finally:
                close_old_connections()

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=TIMEOUT * 3)


class Command(db_worker.Command):
    help = "Run the task worker, and sweep the webhook delivery table for due deliveries"

    def handle(self, *args: Any, **options: Any) -> None:
        reloading = options["reload"] and not options["batch"]
        if reloading and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":
            # The autoreloader's parent only watches files; its child runs the worker (and
            # passes through here again, sweeping).
            return super().handle(*args, **options)
        sent = sweep()
        if sent:
            logger.info("webhook sweep at start: %d sent", sent)
        if options["batch"]:
            return super().handle(*args, **options)
        sweeper = Sweeper(settings.WEBHOOKS_SWEEP_SECONDS)
        sweeper.start()
        try:
            return super().handle(*args, **options)
        finally:
            sweeper.stop()
