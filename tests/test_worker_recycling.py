"""Worker recycling: off gunicorn's own counter, after tens of thousands of requests with a wide
jitter, one worker at a time, each replacement warmed up before it accepts a connection."""

import multiprocessing
import os
import re
import threading
import time
from types import SimpleNamespace

import requests

from lukittu.recycling import FREE, HANDOVER, Baton, Recycling
from tests.live import live_server
from tests.test_bounded_waits import GUNICORN_CONF, gunicorn_config


def recycling_of(cfg) -> Recycling:
    """The configuration file's Recycling (its hooks' module)."""
    return cfg.pre_fork.__globals__["RECYCLING"]


def test_gunicorn_recycles_nothing_itself_and_ours_waits_for_tens_of_thousands(monkeypatch):
    cfg = gunicorn_config(monkeypatch)
    assert (cfg.max_requests, cfg.max_requests_jitter) == (0, 0)
    recycling = recycling_of(cfg)
    assert (recycling.max_requests, recycling.jitter) == (50_000, 25_000)
    assert recycling.baton is not None


def test_recycling_is_set_by_the_environment_and_0_turns_it_off(monkeypatch):
    recycling = recycling_of(
        gunicorn_config(monkeypatch, GUNICORN_MAX_REQUESTS="2000", GUNICORN_MAX_REQUESTS_JITTER="5")
    )
    assert (recycling.max_requests, recycling.jitter) == (2000, 5)
    off = recycling_of(gunicorn_config(monkeypatch, GUNICORN_MAX_REQUESTS="0"))
    assert off.max_requests == 0 and off.baton is None
    worker = fake_worker()
    off.pre_fork(worker)
    worker.nr = 10**9
    off.pre_request(worker)
    assert worker.alive


def fake_worker(pid: int = 0) -> SimpleNamespace:
    return SimpleNamespace(nr=0, alive=True, pid=pid, log=SimpleNamespace(info=lambda *args: None))


def test_each_worker_draws_its_own_count_across_the_whole_jitter():
    recycling = Recycling(max_requests=50_000, jitter=25_000)
    counts = []
    for _ in range(200):
        worker = fake_worker()
        recycling.pre_fork(worker)
        counts.append(worker.recycle_after)
    assert all(50_000 <= count <= 75_000 for count in counts)
    # Spread over the range, not bunched: two workers rarely run out together.
    assert min(counts) < 55_000 and max(counts) > 70_000
    assert len(set(counts)) > 190


def test_a_second_worker_waits_until_the_first_ones_replacement_is_warm():
    recycling = Recycling(max_requests=10, jitter=0)
    first, second = fake_worker(pid=101), fake_worker(pid=102)
    for worker in (first, second):
        recycling.pre_fork(worker)
        recycling.post_fork(worker)
        recycling.ready(worker)
        worker.nr = 10

    recycling.pre_request(first)
    recycling.pre_request(second)
    assert (first.alive, second.alive) == (False, True)

    recycling.child_exit(first)  # the master reaps it, then forks its replacement
    second.recycle_retry_at = 0.0
    recycling.pre_request(second)
    assert second.alive
    replacement = fake_worker(pid=103)
    recycling.pre_fork(replacement)
    recycling.post_fork(replacement)
    second.recycle_retry_at = 0.0
    recycling.pre_request(second)
    assert second.alive  # the replacement is still booting

    recycling.ready(replacement)
    recycling.pre_request(second)
    assert second.alive  # it asks again only a second later
    second.recycle_retry_at = 0.0
    recycling.pre_request(second)
    assert not second.alive


def test_no_worker_recycles_while_another_boots():
    """At start, or while a crashed worker's replacement boots."""
    recycling = Recycling(max_requests=10, jitter=0)
    first, second = fake_worker(pid=201), fake_worker(pid=202)
    for worker in (first, second):
        recycling.pre_fork(worker)
        recycling.post_fork(worker)
    recycling.ready(first)
    first.nr = 10
    recycling.pre_request(first)
    assert first.alive
    recycling.child_exit(second)  # it died booting: nobody waits for it any longer
    first.recycle_retry_at = 0.0
    recycling.pre_request(first)
    assert not first.alive


def hold_the_baton(baton: Baton, taken, done) -> None:
    assert baton.take(os.getpid())
    taken.set()
    done.wait(30)


def test_the_baton_is_one_record_for_every_process_forked_from_the_master():
    baton = Baton()
    context = multiprocessing.get_context("fork")
    taken, done = context.Event(), context.Event()
    child = context.Process(target=hold_the_baton, args=(baton, taken, done))
    child.start()
    try:
        assert taken.wait(30)
        assert baton.state().holder == child.pid
        assert not baton.take(os.getpid())
    finally:
        done.set()
        child.join(30)
    assert child.exitcode == 0
    baton.exited(child.pid)
    assert baton.state().holder == HANDOVER
    assert not baton.take(os.getpid())
    baton.booting(4242)  # the replacement, forked
    assert (baton.state().holder, list(baton.state().booting)) == (FREE, [4242])
    assert not baton.take(os.getpid())
    baton.ready(4242)
    assert baton.state().booting == {}
    assert baton.take(os.getpid())


EVENT = re.compile(r"(Recycling worker|Worker) (\d+) (?:after|warmed up)")


def test_under_load_workers_recycle_one_at_a_time_and_every_request_is_answered(
    tmp_path, transactional_db
):
    """Two workers with a tiny count and no jitter run out at about the same moment; each
    recycle waits until the previous one's replacement has warmed up, and no request fails."""
    env = {"GUNICORN_MAX_REQUESTS": "30", "GUNICORN_MAX_REQUESTS_JITTER": "0"}
    with live_server(
        tmp_path, workers=2, threads=2, extra_env=env, config_file=GUNICORN_CONF
    ) as server:
        server.worker_pids()
        failures: list[str] = []
        answered = 0
        stop = threading.Event()
        lock = threading.Lock()

        def client() -> None:
            nonlocal answered
            with requests.Session() as session:
                while not stop.is_set():
                    try:
                        response = session.get(f"{server.url}/api/v1/nothing", timeout=60)
                    except requests.RequestException as error:
                        failures.append(repr(error))
                        return
                    if response.status_code != 404:
                        failures.append(response.text)
                    with lock:
                        answered += 1
                    time.sleep(0.01)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not failures and len(recycled(server)) < 3:
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == [] and answered > 60
    assert len(recycled(server)) >= 3, server.log_text()
    serving: set[int] = set()  # warmed up and not recycled
    for kind, pid in events(server):
        if kind == "Recycling worker":
            # Every other worker is up and warm when one goes.
            assert serving - {pid} and len(serving - {pid}) == 1, server.log_text()
            serving.discard(pid)
        else:
            serving.add(pid)


def events(server) -> list[tuple[str, int]]:
    return [(match[1], int(match[2])) for match in EVENT.finditer(server.log_text())]


def recycled(server) -> list[int]:
    return [pid for kind, pid in events(server) if kind == "Recycling worker"]
