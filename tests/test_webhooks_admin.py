"""Webhooks in the admin: added with the secret shown once, why one is off, test events,
rotation, the delivery log and redelivery, all audited with the operator."""

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from teams.models import AuditLog
from tests.test_webhooks_helpers import make_endpoint, running_receiver
from webhooks import sender, services
from webhooks.events import emit
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint

URL = "https://hooks.example.com/in"


@pytest.fixture
def staff(db):
    user = User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_adding_a_webhook_shows_its_secret_once(staff, world):
    response = staff.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"team": world.team.pk, "url": URL, "events": ["release.updated"], "active": "on"},
        follow=True,
    )

    assert response.status_code == 200
    shown = next(m for m in messages_of(response) if "Copy its secret now" in m)
    endpoint = WebhookEndpoint.objects.get()
    assert shown.endswith(endpoint.secret)
    assert (endpoint.url, endpoint.events, endpoint.team) == (URL, ["release.updated"], world.team)
    page = staff.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page
    assert AuditLog.objects.get(action="webhook.create").actor == "operator:operator"


def test_plain_http_is_refused_outside_debug(staff, world, settings):
    settings.DEBUG = False
    response = staff.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"team": world.team.pk, "url": "http://hooks.example.com/", "events": ["release.updated"]},
    )

    assert "Must be an https:// URL." in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_says_why_a_webhook_is_off(staff, world):
    endpoint, _ = make_endpoint(world.team, URL)
    reason = "The endpoint answered 410 Gone on 2026-01-02 03:04 UTC"
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False, disabled_reason=reason)

    listing = staff.get("/admin/webhooks/webhookendpoint/").content.decode()
    page = staff.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()

    assert reason in listing
    assert reason in page


def test_send_test_event_and_rotate_actions(staff, world):
    endpoint, old = make_endpoint(world.team, URL)
    changelist = "/admin/webhooks/webhookendpoint/"

    tested = staff.post(
        changelist, {"action": "send_test_event", "_selected_action": [endpoint.pk]}, follow=True
    )
    rotated = staff.post(
        changelist, {"action": "rotate_secret", "_selected_action": [endpoint.pk]}, follow=True
    )

    assert f"Test event queued for {URL}." in messages_of(tested)
    assert WebhookDelivery.objects.get().event.type == "webhook.test"
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert any(m.endswith(endpoint.secret) for m in messages_of(rotated))
    actions = set(AuditLog.objects.values_list("action", "actor"))
    assert {
        ("webhook.test", "operator:operator"),
        ("webhook.rotate_secret", "operator:operator"),
    } <= actions


def test_the_delivery_log_shows_attempts_and_redelivers(staff, world):
    make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=1,
        attempted_at=timezone.now(),
        status_code=503,
        duration_ms=42,
        error="HTTP 503",
        response_body="try later",
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.FAILED, next_attempt_at=None
    )

    page = staff.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/").content.decode()
    redelivered = staff.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [delivery.pk]},
        follow=True,
    )

    for shown in ("try later", "HTTP 503", "42", delivery.event.message_id):
        assert shown in page
    assert redelivered.status_code == 200
    again = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    assert again.event_id == delivery.event_id
    assert again.state == DeliveryState.PENDING
    assert AuditLog.objects.get(action="webhook.redeliver").actor == "operator:operator"


def test_deleting_in_the_admin_is_audited(staff, world):
    endpoint, _ = make_endpoint(world.team, URL)

    staff.post(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/delete/", {"post": "yes"})

    assert not WebhookEndpoint.objects.exists()
    assert AuditLog.objects.get(action="webhook.delete").actor == "operator:operator"


def test_a_webhook_links_to_its_own_delivery_log(staff, world):
    mine, _ = make_endpoint(world.team, URL, ("release.updated",))
    make_endpoint(world.team, "https://other.example.com/in", ("release.deleted",))
    emit(world.team, "release.updated", {"id": "a"})
    emit(world.team, "release.deleted", {"id": "b"})
    link = f"/admin/webhooks/webhookdelivery/?endpoint__id__exact={mine.pk}"

    listing = staff.get("/admin/webhooks/webhookendpoint/").content.decode()
    log = staff.get(link)

    assert link.replace("&", "&amp;") in listing
    assert log.status_code == 200
    assert [row.pk for row in log.context["cl"].result_list] == [
        WebhookDelivery.objects.get(endpoint=mine).pk
    ]


def test_a_delivery_shows_the_url_it_was_sent_to_not_the_webhooks_current_one(
    staff, world, settings
):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = True
    receiver = running_receiver()
    running = next(receiver)
    try:
        endpoint, _ = make_endpoint(world.team, running.url)
        emit(world.team, "release.updated", {"id": "a"})
        assert sender.sweep() == 1
    finally:
        receiver.close()
    moved = "https://hooks.example.com/moved-here"
    services.endpoint_update(endpoint=endpoint, changes={"url": moved})
    delivery = WebhookDelivery.objects.get()

    listing = staff.get("/admin/webhooks/webhookdelivery/").content.decode()
    page = staff.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/").content.decode()

    assert list(delivery.attempts.values_list("url", flat=True)) == [running.url]
    assert f'<span title="{running.url}" style="word-break: break-all">{running.url}</span>' in (
        listing
    )
    assert moved not in listing
    assert running.url in page.split('id="attempts-group"')[1]  # the attempt's own row


def test_a_long_url_and_error_are_cut_in_the_list_and_whole_on_hover(staff, world):
    url = "https://hooks.example.com/" + "a-very-long-path/" * 8
    make_endpoint(world.team, url)
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()
    error = "ConnectError: " + "the receiver said something long " * 6
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=1,
        url=url,
        attempted_at=timezone.now(),
        duration_ms=3,
        error=error,
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempt_count=1, last_error=error)

    listing = staff.get("/admin/webhooks/webhookdelivery/").content.decode()

    assert f'<span title="{url}" style="word-break: break-all">{url[:47]}…</span>' in listing
    assert f'<span title="{error}">{error[:39]}…</span>' in listing


def test_an_unsent_delivery_says_so(staff, world):
    make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})

    listing = staff.get("/admin/webhooks/webhookdelivery/").content.decode()

    assert '<td class="field-sent_to">not yet</td>' in listing
