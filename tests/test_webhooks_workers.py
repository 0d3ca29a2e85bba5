"""Delivery across processes, against the test database: a write whose process is killed right
after COMMIT (before its task is enqueued) is still delivered by the worker; a write that rolls
back sends nothing; a worker killed mid-send leaves the delivery to be sent again once its
lease ends; and two worker processes running at once never send one attempt twice."""

import signal
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from releases.models import Release
from releases.services import Actor, release_update
from tests.live import PROJECT_ROOT, server_env
from tests.test_webhooks_helpers import (
    Answer,
    Boom,
    changes_of,
    make_due,
    make_endpoint,
    running_receiver,
    wait_until,
)
from webhooks import events, sender
from webhooks.events import emit
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery

WORKER_TIMEOUT = 120

# Runs Release Update as the service does, with an on_commit hook registered first: it runs
# right after COMMIT, before the webhook's own hook (which enqueues the delivery's task), and
# kills the process there.
KILLED_AFTER_COMMIT = textwrap.dedent(
    """
    import os, signal, sys
    import django
    django.setup()
    from django.db import transaction
    from releases.models import Release
    from releases.services import Actor, ReleaseChanges, release_update

    release = Release.objects.select_related("team").get(pk=sys.argv[1])
    changes = ReleaseChanges(
        version="9.9.9", product_id=release.product_id, status=release.status,
        set_as_latest=False, keep_existing_file=True, branch_id=release.branch_id,
        metadata=[], license_ids=[],
    )
    with transaction.atomic():
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        release_update(
            actor=Actor(team=release.team, label="operator:test"), release_id=release.pk,
            changes=changes, upload=None, max_file_bytes=1,
        )
    print("not killed")
    """
)


@pytest.fixture
def receiver():
    yield from running_receiver()


@pytest.fixture
def env(tmp_path):
    # The receiver is on 127.0.0.1, which only development and tests may send to.
    return server_env(tmp_path / "media", {"WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS": "true"})


def run_worker(env, *extra):
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", *extra],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(process):
    output, _ = process.communicate(timeout=WORKER_TIMEOUT)
    assert process.returncode == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


class Output:
    """A process's output, read in a thread as it comes, so a test can wait for a line."""

    def __init__(self, process):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.decode(errors="replace"))

    def wait_for(self, text, timeout=WORKER_TIMEOUT):
        wait_until(lambda: any(text in line for line in self.lines), timeout)

    def text(self):
        self._thread.join(timeout=10)
        return "".join(self.lines)


def enqueued_tasks():
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(task_path="webhooks.tasks.deliver").count()


@pytest.mark.django_db(transaction=True)
def test_a_process_killed_right_after_commit_still_delivers(world, receiver, env):
    make_endpoint(world.team, receiver.url)

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT, str(world.release.pk)],
        cwd=PROJECT_ROOT,
        env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        timeout=WORKER_TIMEOUT,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode(errors="replace")
    world.release.refresh_from_db()
    assert world.release.version == "9.9.9"  # committed
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING
    assert enqueued_tasks() == 0  # the process died before enqueueing
    assert receiver.received == []

    finish(run_worker(env))

    (request,) = receiver.received
    assert request.headers["webhook-id"] == delivery.event.message_id
    assert b'"version":"9.9.9"' in request.body
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_an_attempt_twice(world, receiver, env):
    """30 deliveries, each with its task enqueued, some failing once: two worker processes
    race for the tasks and sweep the table at once. Every attempt reaches the receiver exactly
    once."""
    make_endpoint(world.team, receiver.url)
    count = 30
    for index in range(count):
        with transaction.atomic():
            emit(world.team, "release.updated", {"index": index})
    assert enqueued_tasks() == count
    receiver.delay = 0.02  # long enough for the two workers' attempts to overlap
    # Due again an hour later (not the schedule's 5 s, which a loaded machine's two workers can
    # outlast, sending them twice in one run); brought to now, a third worker's sweep sends them.
    receiver.answer(*[Answer(500, headers={"Retry-After": "3600"})] * 5)

    first, second = run_worker(env), run_worker(env)
    outputs = finish(first) + finish(second)
    failed_once = WebhookDelivery.objects.filter(state=DeliveryState.PENDING)
    assert failed_once.count() == 5, outputs
    make_due(*failed_once)
    finish(run_worker(env))

    ids = receiver.ids()
    assert len(ids) == count + 5, outputs
    assert len(set(ids)) == count
    states = sorted(WebhookDelivery.objects.values_list("state", "attempt_count"))
    assert states == [(DeliveryState.DELIVERED, 1)] * 25 + [(DeliveryState.DELIVERED, 2)] * 5
    retried = [message_id for message_id in set(ids) if ids.count(message_id) == 2]
    assert len(retried) == 5


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_sweeps_deliveries_no_task_announced(world, receiver, env, monkeypatch):
    """A long-running worker finds, on its periodic sweep, a delivery whose task was never
    enqueued (or was lost), and stops cleanly on SIGTERM."""
    make_endpoint(world.team, receiver.url)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-startup-delay"],
        cwd=PROJECT_ROOT,
        env={**env, "WEBHOOKS_SWEEP_SECONDS": "0.5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = Output(worker)
    try:
        # Logged after the first sweep, once the sweeper thread runs.
        output.wait_for("Starting worker")
        # As if the process had died before enqueueing: no task will ever name it.
        monkeypatch.setattr(events, "enqueue_on_commit", lambda delivery_ids: None)
        with transaction.atomic():
            emit(world.team, "release.updated", {"late": True})
        assert enqueued_tasks() == 0
        wait_until(lambda: receiver.received)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=WORKER_TIMEOUT)
    assert worker.returncode == 0, output.text()
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_update_sends_nothing(world, receiver, env):
    """Against a real worker: the rolled-back update is never sent, the committed one after it
    is, once."""
    make_endpoint(world.team, receiver.url)
    actor = Actor(team=world.team, label="operator:test")

    with pytest.raises(Boom), transaction.atomic():
        release_update(
            actor=actor,
            release_id=world.release.id,
            changes=changes_of(world.release, version="7.7.7"),
            upload=None,
            max_file_bytes=1,
        )
        raise Boom
    release_update(
        actor=actor,
        release_id=world.release.id,
        changes=changes_of(world.release, version="8.8.8"),
        upload=None,
        max_file_bytes=1,
    )
    finish(run_worker(env))

    (request,) = receiver.received
    assert b'"version":"8.8.8"' in request.body
    assert Release.objects.get(pk=world.release.pk).version == "8.8.8"
    assert enqueued_tasks() == 1
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_is_retried_once_its_lease_ends(world, receiver, env):
    """SIGKILL while the receiver holds the request: the claim stays, so no worker sends it
    again before the lease ends; after it, one does, with the same webhook-id."""
    make_endpoint(world.team, receiver.url)
    with transaction.atomic():
        emit(world.team, "release.updated", {"id": "a"})
    receiver.gate.clear()  # the receiver holds every request until told to answer

    killed = run_worker(env)
    wait_until(lambda: receiver.received)
    claimed_at = timezone.now()
    killed.kill()
    killed.wait(timeout=WORKER_TIMEOUT)
    receiver.gate.set()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempt_count) == (DeliveryState.PENDING, 1)
    assert delivery.claim_token is not None
    lease_left = delivery.next_attempt_at - claimed_at
    assert sender.LEASE - timedelta(seconds=30) < lease_left <= sender.LEASE
    assert not WebhookAttempt.objects.exists()  # nothing was recorded
    # Within the lease, another worker (its task, its sweep) leaves it alone.
    finish(run_worker(env))
    assert len(receiver.received) == 1
    # The lease ends (brought to now, as five minutes passing would): sent again, same id.
    make_due(delivery)
    finish(run_worker(env))

    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count) == (DeliveryState.DELIVERED, 2)
    assert list(delivery.attempts.values_list("number", "status_code")) == [(2, 200)]
