"""One team cannot stall the worker: a sweep sends concurrently, no team holds more than its
share of the attempts in flight, another team's new event goes out while the first team's
receivers hold every request they get, one attempt that cannot be recorded costs the others
nothing, and webhook URLs are logged without their query or credentials."""

import logging
import signal
import subprocess
import sys
import threading

import pytest
from django.db import connection, transaction

from tests.live import PROJECT_ROOT, server_env
from tests.test_webhooks_helpers import make_endpoint, running_receiver, wait_until
from webhooks import sender
from webhooks.events import emit
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.signing import new_secret

# Long enough that a held request never ends by the deadline while a test looks.
HELD = 30.0


@pytest.fixture
def fast():
    yield from running_receiver()


@pytest.fixture
def holding():
    """A receiver that holds every request until its gate is opened."""
    for receiver in running_receiver():
        receiver.gate.clear()
        yield receiver


@pytest.fixture(autouse=True)
def _limits(settings, monkeypatch):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = True
    settings.WEBHOOKS_CONCURRENCY = 6
    settings.WEBHOOKS_TEAM_CONCURRENCY = 3
    monkeypatch.setattr(sender, "TIMEOUT", HELD)


def sweeping() -> threading.Thread:
    """A sweep in a thread of its own (its own database connection, closed after)."""

    def run() -> None:
        try:
            sender.sweep()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def flood(team, url: str, endpoints: int, events: int) -> None:
    for _ in range(endpoints):
        make_endpoint(team, url)
    for _ in range(events):
        with transaction.atomic():
            emit(team, "release.updated", {"id": "b"})


@pytest.mark.django_db(transaction=True)
def test_a_team_that_never_answers_holds_only_its_share(world, outsider, fast, holding):
    flood(outsider.team, holding.url, endpoints=5, events=4)  # 20 deliveries held
    make_endpoint(world.team, fast.url)
    thread = sweeping()
    try:
        wait_until(lambda: len(holding.received) == 3, timeout=10)
        # Written while the other team's attempts hang: sent by the same sweep at once.
        with transaction.atomic():
            emit(world.team, "release.updated", {"id": "a"})
        wait_until(lambda: fast.received, timeout=10)
        delivered = WebhookDelivery.objects.filter(endpoint__team=world.team).get()
        wait_until(lambda: WebhookDelivery.objects.get(pk=delivered.pk).state == "DELIVERED")
        assert len(holding.received) == 3  # never more than its share at once
    finally:
        holding.gate.set()
        thread.join(timeout=120)
    assert not thread.is_alive()
    assert WebhookAttempt.objects.count() == 21
    states = set(WebhookDelivery.objects.values_list("state", flat=True))
    assert states == {DeliveryState.DELIVERED}


@pytest.mark.django_db(transaction=True)
def test_attempts_run_concurrently_up_to_the_limit(world, outsider, holding):
    flood(world.team, holding.url, endpoints=4, events=1)
    flood(outsider.team, holding.url, endpoints=4, events=1)
    thread = sweeping()
    try:
        wait_until(lambda: len(holding.received) == 6, timeout=10)
        assert WebhookDelivery.objects.filter(claim_token__isnull=False).count() == 6
    finally:
        holding.gate.set()
        thread.join(timeout=120)
    assert len(holding.received) == 8
    assert WebhookAttempt.objects.count() == 8


def test_an_attempt_that_cannot_be_recorded_costs_the_others_nothing(world, fast, monkeypatch):
    make_endpoint(world.team, fast.url)
    for _ in range(4):
        emit(world.team, "release.updated", {"id": "a"})
    record = sender.record
    failed = []

    def record_once_failing(delivery, token, outcome):
        if not failed:
            failed.append(delivery.pk)
            raise RuntimeError("the database went away")
        return record(delivery, token, outcome)

    monkeypatch.setattr(sender, "record", record_once_failing)

    assert sender.sweep() == 4

    assert WebhookAttempt.objects.count() == 3
    unrecorded = WebhookDelivery.objects.get(pk=failed[0])
    # Its claim stays: sent again once the lease ends.
    assert (unrecorded.state, unrecorded.attempt_count) == (DeliveryState.PENDING, 1)
    assert unrecorded.claim_token is not None
    others = WebhookDelivery.objects.exclude(pk=failed[0])
    assert set(others.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


def test_a_failed_claim_still_records_the_attempts_in_flight(world, fast, monkeypatch):
    make_endpoint(world.team, fast.url)
    make_endpoint(world.team, fast.url)
    emit(world.team, "release.updated", {"id": "a"})
    claim_to_send = sender._claim_to_send
    calls = []

    def second_claim_failing(delivery_id):
        calls.append(delivery_id)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return claim_to_send(delivery_id)

    monkeypatch.setattr(sender, "_claim_to_send", second_claim_failing)

    with pytest.raises(RuntimeError):
        sender.sweep()

    (attempt,) = WebhookAttempt.objects.all()
    assert attempt.status_code == 200
    assert attempt.delivery.state == DeliveryState.DELIVERED
    assert WebhookDelivery.objects.get(pk=calls[1]).attempt_count == 0  # never claimed


def test_the_log_names_the_url_without_query_or_credentials(world, fast, caplog):
    # Older rows may carry what the URL rule now refuses (credentials).
    # A query parameter whose name says nothing of what it holds.
    url = fast.url.replace("http://", "http://hooker:pa55word@") + "?q=s3cr3t-v4lue#frag"
    WebhookEndpoint.objects.create(
        team=world.team, url=url, events=["release.updated"], secret=new_secret()
    )
    emit(world.team, "release.updated", {"id": "a"})

    with caplog.at_level(logging.INFO, logger="webhooks"):
        assert sender.sweep() == 1

    assert fast.received[0].path == "/hooks?q=s3cr3t-v4lue"  # the receiver still gets it
    assert f"to {fast.url}: attempt 1, 200" in caplog.text
    for secret in ("s3cr3t-v4lue", "pa55word", "hooker", "frag"):
        assert secret not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_sends_while_another_team_holds_its_requests(
    world, outsider, fast, holding, tmp_path
):
    """Against a real ``db_worker``: tasks wake its sweeper, which keeps sending team A's
    events while team B's receivers hold every request."""
    flood(outsider.team, holding.url, endpoints=4, events=3)
    env = server_env(
        tmp_path / "media",
        {
            "WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS": "true",
            "WEBHOOKS_CONCURRENCY": "4",
            "WEBHOOKS_TEAM_CONCURRENCY": "2",
        },
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--interval", "0.1"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    make_endpoint(world.team, fast.url)
    try:
        wait_until(lambda: len(holding.received) == 2, timeout=60)
        for number in range(3):
            with transaction.atomic():
                emit(world.team, "release.updated", {"id": number})
            wait_until(lambda n=number: len(fast.received) == n + 1, timeout=10)
    finally:
        holding.gate.set()
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, output.decode(errors="replace")
    assert WebhookDelivery.objects.filter(endpoint__team=world.team, state="DELIVERED").count() == 3
