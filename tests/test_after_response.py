"""Work scheduled with ``after_response`` runs once the response has been sent inside a request,
at once outside one, and never turns a sent response into an error."""

import logging

from django.core.signals import request_finished, request_started

from lukittu.after_response import after_response


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
