"""Work that must happen after a write but need not delay its answer: inside a request it runs
once the response has been sent (Django's ``request_finished``, sent when the server closes the
response); anywhere else (commands, the admin's own threads, tests calling a service) at once.

Only work that is safe to lose belongs here: the replaced object's delete is recorded in the
storage ledger before it is scheduled, so a process that dies first leaves it to
``reconcile_storage``.
"""

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.core.signals import request_finished, request_started
from django.dispatch import receiver

logger = logging.getLogger("lukittu.after_response")
_local = threading.local()


def after_response(work: Callable[[], Any]) -> None:
    pending = getattr(_local, "pending", None)
    if pending is None:
        work()
    else:
        pending.append(work)


@receiver(request_started, dispatch_uid="lukittu.after_response.start")
def _start(**kwargs: Any) -> None:
    # Work left by a request on this thread whose response never finished (its view raised
    # past every handler) is done now rather than dropped.
    _finish()
    _local.pending = []


@receiver(request_finished, dispatch_uid="lukittu.after_response.finish")
def _finish(**kwargs: Any) -> None:
    pending = getattr(_local, "pending", None) or []
    _local.pending = None
    for work in pending:
        try:
            work()
        except Exception:
            # The response is gone; the work's own records say what is left to do.
            logger.exception("Work after the response failed")


def forget_pending() -> None:
    """Leave the current request's pending work undone (for tests that end mid-request; the
    work's own records make it safe to lose)."""
    _local.pending = None
