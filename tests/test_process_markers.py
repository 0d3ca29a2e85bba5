"""The ``live`` marker: found from a test's code, and enforced when a hidden start slips past;
and the Redis database each pytest-xdist worker is given."""

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.browser import start_chromium
from tests.live import live_server
from tests.process_tests import require_live, running, starts_processes
from tests.settings import _redis_url_of_this_worker

STARTERS = (live_server, start_chromium)


def _serve(folder: Path) -> None:
    with live_server(folder):
        pass


def _through_a_helper(tmp_path: Path) -> None:
    _serve(tmp_path)


def _a_command() -> None:
    subprocess.run(["true"], check=True)


def _a_browser(tmp_path: Path) -> None:
    start_chromium(tmp_path)


def _in_process(client: object) -> None:
    assert client is not None


class _Steps:
    def run(self, folder: Path) -> None:
        _serve(folder)


def _through_a_class(tmp_path: Path) -> None:
    _Steps().run(tmp_path)


def _through_a_lambda(tmp_path: Path) -> None:
    (lambda: _serve(tmp_path))()


# Looked up in a dict, so the scan of this file's own tests does not follow them (it would
# mark these tests live).
SAMPLES = {
    "helper": _through_a_helper,
    "command": _a_command,
    "browser": _a_browser,
    "in process": _in_process,
    "class": _through_a_class,
    "lambda": _through_a_lambda,
}


def item(function: object = None, fixtures: tuple = (), params: dict | None = None) -> object:
    definitions = {f"fixture{n}": [SimpleNamespace(func=f)] for n, f in enumerate(fixtures)}
    return SimpleNamespace(
        function=function,
        _fixtureinfo=SimpleNamespace(name2fixturedefs=definitions),
        callspec=SimpleNamespace(params=params or {}),
    )


@pytest.mark.parametrize("sample", ["helper", "command", "browser", "class", "lambda"])
def test_a_test_that_starts_a_process_at_any_depth_is_live(sample):
    assert starts_processes(item(SAMPLES[sample]), STARTERS)


def test_a_test_that_starts_nothing_is_not_live():
    assert not starts_processes(item(SAMPLES["in process"]), STARTERS)


def test_a_fixture_that_starts_a_process_makes_its_tests_live():
    in_process = SAMPLES["in process"]
    assert starts_processes(item(in_process, fixtures=(SAMPLES["command"],)), STARTERS)
    assert not starts_processes(item(in_process, fixtures=(in_process,)), STARTERS)


def test_the_s3_backend_is_live_and_local_files_are_not():
    in_process = SAMPLES["in process"]
    assert starts_processes(item(in_process, params={"backend": "s3"}), STARTERS)
    assert not starts_processes(item(in_process, params={"backend": "local"}), STARTERS)


def test_the_suites_own_process_tests_are_found():
    """A gunicorn test, a manage.py test and an in-process test of the suite, as written."""
    from tests import test_deploy_settings, test_envelope, test_metrics

    assert starts_processes(
        item(test_metrics.test_multiprocess_mode_adds_up_every_worker), STARTERS
    )
    deploy_check = test_deploy_settings.test_deploy_check_is_clean_with_production_settings
    assert starts_processes(item(deploy_check), STARTERS)
    assert not any(
        starts_processes(item(getattr(test_envelope, name)), STARTERS)
        for name in dir(test_envelope)
        if name.startswith("test_")
    )


def test_an_unmarked_test_that_starts_a_process_fails_saying_so(request):
    assert request.node.get_closest_marker("live") is None
    with pytest.raises(pytest.fail.Exception, match="starts gunicorn but is not marked 'live'"):
        require_live("gunicorn")


def test_a_marked_test_may_start_one(request):
    marked = SimpleNamespace(get_closest_marker=lambda name: name == "live" or None)
    running.append(marked)
    try:
        require_live("gunicorn")
    finally:
        running.remove(marked)


@pytest.mark.parametrize(
    ("worker", "expected"),
    [("gw0", "redis://127.0.0.1:6379/15"), ("gw1", "redis://127.0.0.1:6379/14")],
)
def test_each_xdist_worker_clears_a_redis_database_of_its_own(worker, expected):
    assert _redis_url_of_this_worker("redis://127.0.0.1:6379/15", worker) == expected


def test_a_worker_with_no_redis_database_left_is_refused():
    with pytest.raises(ValueError, match="no Redis database for xdist gw2"):
        _redis_url_of_this_worker("redis://127.0.0.1:6379/1", "gw2")
