"""Delivering events to a real HTTP receiver on 127.0.0.1: the signatures (Standard Webhooks
and Lukittu's), retries with the same webhook-id, Retry-After, 410, days of failures, the
delivery log, the attempt's overall timeout, claims that lapse or are used up, the request
made outside any transaction, test events and redeliveries, and a secret's rotation."""

import base64
import hashlib
import hmac
import io
import json
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from teams.models import AuditLog
from tests.helpers import put_release, release_url, update_data
from tests.test_webhooks_helpers import Answer, make_due, make_endpoint, running_receiver
from webhooks import sender, services, tasks
from webhooks.events import emit
from webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.signing import new_secret


@pytest.fixture
def receiver():
    yield from running_receiver()


@pytest.fixture(autouse=True)
def _private_destinations_allowed(settings):
    # The receiver is on 127.0.0.1, which only development and tests may send to.
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = True


def update_release(client, world, **overrides):
    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, **overrides),
    )
    assert response.status_code == 200, response.json()
    return response.json()["data"]


def lukittu_hmac(key: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def test_a_release_update_arrives_signed_both_ways(client, world, receiver):
    _, secret = make_endpoint(world.team, receiver.url)
    released = update_release(client, world, version="1.0.1")

    assert sender.sweep() == 1

    (request,) = receiver.received
    headers = request.headers
    # Standard Webhooks: the package's own verifier accepts it.
    payload = Webhook(secret).verify(request.body, headers)
    assert payload["type"] == "release.updated"
    assert payload["data"] == released
    got = client.get(
        release_url(world.team.id, world.release.id), HTTP_AUTHORIZATION=f"Bearer {world.key}"
    )
    assert payload["data"] == got.json()["data"]
    assert headers["webhook-id"].startswith("msg_")
    # Lukittu: hex HMAC-SHA256 of "<ms>.<body>", keyed with the secret's text as shown.
    assert headers["X-Lukittu-Event"] == "RELEASE_UPDATED"
    millis = headers["X-Lukittu-Timestamp"]
    assert abs(int(millis) - int(headers["webhook-timestamp"]) * 1000) < 1000
    assert headers["X-Lukittu-Signature"] == lukittu_hmac(secret.encode(), millis, request.body)
    # ... and not with the decoded bytes Standard Webhooks keys with: the test tells them apart.
    decoded = base64.b64decode(secret.removeprefix("whsec_"))
    assert headers["X-Lukittu-Signature"] != lukittu_hmac(decoded, millis, request.body)
    assert headers["Content-Type"] == "application/json"


def test_a_tampered_body_or_another_secret_does_not_verify(client, world, receiver):
    _, secret = make_endpoint(world.team, receiver.url)
    update_release(client, world)
    sender.sweep()
    (request,) = receiver.received

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"1.0.0", b"6.6.6"), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.body, request.headers)


def test_500_then_200_sends_the_event_twice_with_the_same_id(client, world, receiver):
    _, secret = make_endpoint(world.team, receiver.url)
    receiver.answer(Answer(500, body=b"boom"))
    update_release(client, world)

    before = timezone.now()
    sender.sweep()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING
    assert delivery.attempt_count == 1
    # The first retry comes 5 s later, give or take the 10% jitter.
    wait = delivery.next_attempt_at - before
    assert timedelta(seconds=4.4) <= wait <= timedelta(seconds=5.6), wait
    assert sender.sweep() == 0  # not due yet

    make_due(delivery)
    assert sender.sweep() == 1

    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    for request in (first, second):
        Webhook(secret).verify(request.body, request.headers)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count, delivery.next_attempt_at) == (
        DeliveryState.DELIVERED,
        2,
        None,
    )
    attempts = list(delivery.attempts.values_list("number", "status_code", "response_body"))
    assert attempts == [(1, 500, "boom"), (2, 200, "ok")]


def test_the_retry_schedule_and_its_end(world, receiver):
    receiver.default = Answer(502)
    make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "x"})
    delivery = WebhookDelivery.objects.get()
    waits = []
    for _ in range(sender.MAX_ATTEMPTS):
        make_due(delivery)
        before = timezone.now()
        assert sender.sweep() == 1
        delivery.refresh_from_db()
        if delivery.next_attempt_at:
            waits.append((delivery.next_attempt_at - before).total_seconds())

    assert delivery.state == DeliveryState.FAILED
    assert delivery.attempt_count == 8 == len(receiver.received)
    assert len(set(receiver.ids())) == 1
    expected = [5, 300, 1800, 7200, 18000, 36000, 86400]
    assert len(waits) == len(expected)
    for wait, base in zip(waits, expected, strict=True):
        assert base * 0.89 <= wait <= base * 1.11, (wait, base)
    assert delivery.next_attempt_at is None
    assert sender.sweep() == 0  # a failed delivery is never due again


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_honoured(world, receiver, status):
    receiver.answer(Answer(status, {"Retry-After": "120"}))
    make_endpoint(world.team, receiver.url)
    emit(world.team, "product.updated", {"id": "x"})

    before = timezone.now()
    sender.sweep()

    delivery = WebhookDelivery.objects.get()
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 119 <= wait <= 122, wait


def test_retry_after_as_a_date_is_honoured(world, receiver):
    when = timezone.now() + timedelta(minutes=30)
    http_date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    receiver.answer(Answer(503, {"Retry-After": http_date}))
    make_endpoint(world.team, receiver.url)
    emit(world.team, "product.updated", {"id": "x"})

    sender.sweep()

    delivery = WebhookDelivery.objects.get()
    assert abs((delivery.next_attempt_at - when).total_seconds()) <= 2
    # Without Retry-After the same answer is retried on the schedule (5 min after attempt 2).
    make_due(delivery)
    receiver.answer(Answer(503))
    before = timezone.now()
    sender.sweep()
    delivery.refresh_from_db()
    assert 270 <= (delivery.next_attempt_at - before).total_seconds() <= 330


def test_a_failed_attempt_from_its_task_enqueues_the_retry_for_when_it_is_due(
    world, receiver, django_capture_on_commit_callbacks
):
    """The sender only records and says when the delivery is due again; the task that ran it
    enqueues the retry's task for that time, once the record commits."""
    from django_tasks_db.models import DBTaskResult

    make_endpoint(world.team, receiver.url)
    receiver.answer(Answer(500, body=b"boom"))
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.deliver.call(str(delivery.pk)) is True

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING
    retry = DBTaskResult.objects.get(task_path="webhooks.tasks.deliver")
    assert retry.args_kwargs["args"] == [str(delivery.pk)]
    assert retry.run_after == delivery.next_attempt_at


def test_a_sweep_hands_each_retry_to_its_scheduler_and_a_delivered_one_not(world, receiver):
    make_endpoint(world.team, receiver.url)
    receiver.answer(Answer(500, body=b"boom"))
    emit(world.team, "release.updated", {"id": "a"})
    scheduled = []

    assert sender.sweep(schedule_retry=lambda *retry: scheduled.append(retry)) == 1
    delivery = WebhookDelivery.objects.get()
    assert scheduled == [(delivery.pk, delivery.next_attempt_at)]

    receiver.answer(Answer(200))
    make_due(delivery)
    assert sender.sweep(schedule_retry=lambda *retry: scheduled.append(retry)) == 1
    assert len(scheduled) == 1  # delivered: nothing more to schedule


def test_410_disables_the_endpoint_and_says_why(world, receiver):
    endpoint, _ = make_endpoint(world.team, receiver.url)
    receiver.answer(Answer(410, body=b"gone"))
    emit(world.team, "release.updated", {"id": "a"})
    emit(world.team, "release.updated", {"id": "b"})
    first, second = WebhookDelivery.objects.order_by("created_at")
    assert sender.attempt(first.pk)

    endpoint.refresh_from_db()
    first.refresh_from_db()
    assert endpoint.active is False
    assert "410 Gone" in endpoint.disabled_reason
    assert endpoint.disabled_at is not None
    assert (first.state, first.next_attempt_at) == (DeliveryState.FAILED, None)
    entry = AuditLog.objects.get(action="webhook.disable")
    assert entry.actor == "system:webhooks"
    # What was still queued for it is not sent.
    assert sender.sweep() == 0
    second.refresh_from_db()
    assert second.state == DeliveryState.FAILED
    assert "disabled" in second.last_error
    assert len(receiver.received) == 1
    # And a disabled endpoint gets no new events.
    emit(world.team, "release.updated", {"id": "c"})
    assert WebhookDelivery.objects.count() == 2


def test_three_days_of_failures_disable_the_endpoint(world, receiver):
    endpoint, _ = make_endpoint(world.team, receiver.url)
    receiver.default = Answer(500)
    emit(world.team, "release.updated", {"id": "a"})
    sender.sweep()
    endpoint.refresh_from_db()
    assert endpoint.active is True
    assert endpoint.failing_since is not None
    # Still failing three days later (it was failing all along).
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(days=3, minutes=1)
    )
    make_due(*WebhookDelivery.objects.all())
    sender.sweep()

    endpoint.refresh_from_db()
    assert endpoint.active is False
    assert "failed for 3 days" in endpoint.disabled_reason
    assert "HTTP 500" in endpoint.disabled_reason


def test_a_success_ends_a_failing_streak(world, receiver):
    endpoint, _ = make_endpoint(world.team, receiver.url)
    receiver.answer(Answer(500))
    emit(world.team, "release.updated", {"id": "a"})
    sender.sweep()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None

    make_due(*WebhookDelivery.objects.all())
    sender.sweep()

    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert endpoint.active is True


def test_the_delivery_log_keeps_the_first_kib_and_the_error(world, receiver):
    receiver.answer(Answer(500, body=b"x" * 5000))
    receiver.delay = 0.3
    make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "a"})

    before = timezone.now()
    sender.sweep()
    after = timezone.now()

    attempt = WebhookAttempt.objects.get()
    assert attempt.response_body == "x" * 1024
    assert attempt.status_code == 500
    assert attempt.error == "HTTP 500"
    assert 300 <= attempt.duration_ms <= (after - before).total_seconds() * 1000
    assert before <= attempt.attempted_at <= after


@pytest.fixture
def dripping_port():
    """A receiver that answers a status line, then one header byte every 0.2 s, for 30 s."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    stop = threading.Event()

    def serve():
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(150):
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(b"X")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(timeout=5)


def test_an_attempt_ends_at_its_timeout_even_if_the_receiver_keeps_talking(
    world, dripping_port, monkeypatch
):
    """httpx's read timeout never fires on a receiver that sends a byte now and then: the
    whole exchange has ``TIMEOUT``, so an attempt cannot outlive its claim."""
    monkeypatch.setattr(sender, "TIMEOUT", 1.0)
    make_endpoint(world.team, f"http://127.0.0.1:{dripping_port}/hooks")
    emit(world.team, "release.updated", {"id": "a"})

    started = time.monotonic()
    assert sender.sweep() == 1
    took = time.monotonic() - started

    assert took < 5, took
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.error) == (None, "Timeout: no answer within 1 s")
    assert 1000 <= attempt.duration_ms < 5000
    assert WebhookDelivery.objects.get().state == DeliveryState.PENDING


def test_a_late_outcome_of_a_lapsed_claim_changes_nothing(world, receiver):
    """A worker whose claim lapsed (it hung past the lease) records its attempt in the log,
    but the delivery follows the claim that replaced it."""
    make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()
    stale_delivery, stale_token = sender.claim(delivery.pk)
    assert sender.claim(delivery.pk) is None  # claimed: not due for anyone else
    make_due(delivery)  # the lease ends
    assert sender.sweep() == 1  # another worker sends and records it

    failed = sender.Outcome(timezone.now(), 5, status_code=500, error="HTTP 500")
    assert sender.record(stale_delivery, stale_token, failed) is None

    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code) == (DeliveryState.DELIVERED, 200)
    assert delivery.next_attempt_at is None


def test_claims_used_up_by_dead_workers_end_the_delivery(world, receiver):
    make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "a"})
    # Every attempt's worker died before recording it.
    WebhookDelivery.objects.update(attempt_count=sender.MAX_ATTEMPTS)

    assert sender.sweep() == 0

    assert receiver.received == []
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.next_attempt_at) == (DeliveryState.FAILED, None)
    assert delivery.last_error == f"Not sent: {sender.MAX_ATTEMPTS} attempts were claimed"


def test_a_test_event_arrives_signed(world, receiver):
    endpoint, secret = make_endpoint(world.team, receiver.url, ("release.deleted",))

    services.send_test_event(endpoint=endpoint)
    assert sender.sweep() == 1

    (request,) = receiver.received
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test"
    assert payload["data"]["webhookId"] == str(endpoint.id)
    assert request.headers["X-Lukittu-Event"] == "WEBHOOK_TEST"


def test_a_redelivery_arrives_with_the_same_webhook_id(world, receiver):
    _, secret = make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "a"})
    assert sender.sweep() == 1
    delivered = WebhookDelivery.objects.get()

    services.delivery_redeliver(delivery=delivered)
    assert sender.sweep() == 1

    first, again = receiver.received
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    Webhook(secret).verify(again.body, again.headers)
    assert WebhookDelivery.objects.filter(state=DeliveryState.DELIVERED).count() == 2


def test_a_connection_refused_is_an_attempt_with_an_error(world, receiver):
    port = receiver.port
    receiver.server.shutdown()
    receiver.server.server_close()
    make_endpoint(world.team, f"http://127.0.0.1:{port}/hooks")
    emit(world.team, "release.updated", {"id": "a"})

    sender.sweep()

    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert attempt.error.startswith("ConnectError")
    assert WebhookDelivery.objects.get().state == DeliveryState.PENDING


def test_redirects_are_not_followed(world, receiver):
    receiver.answer(Answer(302, {"Location": "http://127.0.0.1:1/elsewhere"}))
    make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "a"})

    sender.sweep()

    assert len(receiver.received) == 1
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code == 302
    assert "Redirect not followed" in attempt.error
    assert WebhookDelivery.objects.get().state == DeliveryState.PENDING


def test_during_a_rotation_both_secrets_sign(world, receiver):
    endpoint, old = make_endpoint(world.team, receiver.url)
    endpoint, new = services.endpoint_rotate_secret(endpoint=endpoint, grace=timedelta(hours=24))
    emit(world.team, "release.updated", {"id": "a"})

    sender.sweep()

    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, request.headers)
    Webhook(new).verify(request.body, request.headers)
    millis = request.headers["X-Lukittu-Timestamp"]
    assert request.headers["X-Lukittu-Signature"] == lukittu_hmac(
        new.encode(), millis, request.body
    )
    assert request.headers["X-Lukittu-Previous-Signature"] == lukittu_hmac(
        old.encode(), millis, request.body
    )


def test_after_the_grace_period_only_the_new_secret_signs(world, receiver):
    endpoint, old = make_endpoint(world.team, receiver.url)
    endpoint, new = services.endpoint_rotate_secret(endpoint=endpoint, grace=timedelta(hours=1))
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    emit(world.team, "release.updated", {"id": "a"})

    sender.sweep()

    (request,) = receiver.received
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)
    assert "X-Lukittu-Previous-Signature" not in request.headers


def test_a_rotation_without_grace_stops_the_old_secret_at_once(world, receiver):
    endpoint, old = make_endpoint(world.team, receiver.url)
    services.endpoint_rotate_secret(endpoint=endpoint, grace=timedelta(0))
    emit(world.team, "release.updated", {"id": "a"})

    sender.sweep()

    (request,) = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


def test_the_body_is_the_type_timestamp_and_data(world, receiver):
    make_endpoint(world.team, receiver.url)
    emit(world.team, "branch.created", {"id": "b", "name": "beta"})

    sender.sweep()

    body = json.loads(receiver.received[0].body)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "branch.created"
    assert body["data"] == {"id": "b", "name": "beta"}
    assert body["timestamp"].endswith("Z")
    assert receiver.received[0].headers["X-Lukittu-Event"] == "BRANCH_CREATED"


def test_purging_keeps_pending_and_recent_deliveries(world):
    make_endpoint(world.team, "https://hooks.example.com/in")
    for name in ("old-done", "old-pending", "new-done"):
        emit(world.team, "release.updated", {"id": name})
    old_done, old_pending, new_done = WebhookDelivery.objects.order_by("created_at")
    long_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.filter(pk__in=[old_done.pk, new_done.pk]).update(
        state=DeliveryState.DELIVERED, next_attempt_at=None
    )
    WebhookDelivery.objects.filter(pk__in=[old_done.pk, old_pending.pk]).update(updated_at=long_ago)
    WebhookEvent.objects.update(created_at=long_ago)
    out = io.StringIO()

    call_command("purge_webhook_deliveries", stdout=out)

    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {
        old_pending.pk,
        new_done.pk,
    }
    assert WebhookEvent.objects.count() == 2
    assert out.getvalue().strip() == "1 deliveries and 1 events deleted"


@pytest.mark.django_db(transaction=True)
def test_the_request_is_sent_outside_any_transaction(world, receiver, monkeypatch):
    """Outside the test's own transaction, so an atomic block around the send would show."""
    make_endpoint(world.team, receiver.url)
    with transaction.atomic():
        emit(world.team, "release.updated", {"id": "a"})
    in_transaction = []
    post = sender._post
    # The sweeping thread's connection: the one that claims and records.
    sweeping = transaction.get_connection()

    def watched(delivery, now):
        in_transaction.append(sweeping.in_atomic_block)
        return post(delivery, now)

    monkeypatch.setattr(sender, "_post", watched)

    assert sender.sweep() == 1

    assert in_transaction == [False]
    assert len(receiver.received) == 1
