"""Work scheduled with ``after_response`` runs once the response has been sent inside a request,
at once outside one, and never turns a sent response into an error."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from lukittu.after_response import after_response

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_database_checks_on_the_signals():
    """As Django's test client does while it serves a request: Django's own receiver of these
    signals checks the database connections, and an earlier test in this process may have
    left one open that these tests (no database) may not touch."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


def test_outside_a_request_work_runs_at_once():
    done = []
    after_response(lambda: done.append("now"))
    assert done == ["now"]


def test_inside_a_request_work_waits_for_the_response_to_be_sent():
    done = []
    request_started.send(sender=None)
    try:
        after_response(lambda: done.append("first"))
        after_response(lambda: done.append("second"))
        assert done == []
    finally:
        request_finished.send(sender=None)
    assert done == ["first", "second"]
    after_response(lambda: done.append("after"))  # the request is over: at once again
    assert done == ["first", "second", "after"]


def test_failing_work_is_logged_and_the_rest_still_runs(caplog):
    done = []

    def fails():
        raise RuntimeError("storage is down")

    request_started.send(sender=None)
    after_response(fails)
    after_response(lambda: done.append("still"))
    with caplog.at_level(logging.ERROR, logger="lukittu.after_response"):
        request_finished.send(sender=None)
    assert done == ["still"]
    assert "storage is down" in caplog.text


def test_work_left_by_a_request_that_never_finished_runs_when_the_next_one_starts():
    done = []
    request_started.send(sender=None)
    after_response(lambda: done.append("left over"))
    # No request_finished: the view raised past every handler.
    request_started.send(sender=None)
    assert done == ["left over"]
    request_finished.send(sender=None)


def test_its_receivers_are_connected_once_django_is_set_up():
    """A server's first request starts before the URL map is imported: unless the receivers
    are connected at start-up, whatever happens to import this module, that request's work
    would run before its response is sent (and a hung delete would cost the response)."""
    probe = (
        "import django; django.setup(); "
        "from django.core.signals import request_finished, request_started; "
        "uids = lambda signal: [key[0] for key, *_ in signal.receivers]; "
        "print('lukittu.after_response.start' in uids(request_started), "
        "'lukittu.after_response.finish' in uids(request_finished))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    answer = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["True", "True"]
