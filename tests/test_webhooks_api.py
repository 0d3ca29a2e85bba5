"""The webhook endpoints of the Developer API: the secret shown once, the URL and event
rules, team scoping, the audit trail (never with the secret), rotation, Idempotency-Key and
If-Match, the delivery log, test events and redelivery, and bad bodies answered 400 (or 415)
in the envelope, never 500."""

import base64
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from lukittu.api import iso_utc
from teams.models import AuditLog
from tests.test_webhooks_helpers import make_endpoint
from webhooks import sender
from webhooks.events import emit
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint

URL = "https://hooks.example.com/in"
BODY = {"url": URL, "events": ["release.updated", "product.created"]}


def headers(world, **extra):
    return {"HTTP_AUTHORIZATION": f"Bearer {world.key}", **extra}


def hooks(world, path=""):
    return f"/api/v1/dev/teams/{world.team.id}/webhooks{path}"


def post(client, world, path="", body=None, **extra):
    return client.post(
        hooks(world, path), data=body, content_type="application/json", **headers(world, **extra)
    )


def put(client, world, path, body, **extra):
    return client.put(
        hooks(world, path), data=body, content_type="application/json", **headers(world, **extra)
    )


def create(client, world, body=BODY):
    response = post(client, world, body=body)
    assert response.status_code == 201, response.json()
    return response.json()["data"]


def test_create_shows_the_secret_once(client, world):
    response = post(client, world, body=BODY)

    assert response.status_code == 201
    body = response.json()
    assert body["result"]["details"] == "Webhook created"
    data = body["data"]
    secret = data.pop("secret")
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == secret
    assert data == {
        "id": str(endpoint.id),
        "url": URL,
        "events": ["release.updated", "product.created"],
        "active": True,
        "teamId": str(world.team.id),
        "disabledReason": None,
        "disabledAt": None,
        "failingSince": None,
        "previousSecretExpiresAt": None,
        "createdAt": iso_utc(endpoint.created_at),
        "updatedAt": iso_utc(endpoint.updated_at),
    }
    # Never again: not in a get, a list, or the audit log.
    got = client.get(hooks(world, f"/{endpoint.id}"), **headers(world)).json()["data"]
    assert got == data
    listed = client.get(hooks(world), **headers(world)).json()["data"]
    assert listed == {"webhooks": [data], "hasNextPage": False, "totalResults": 1}
    entry = AuditLog.objects.get(action="webhook.create")
    assert entry.actor == world.team.api_keys.get().prefix
    assert secret not in str(entry.request_data) + str(entry.result)


def test_each_webhook_gets_its_own_secret(client, world):
    first = create(client, world)["secret"]
    second = create(client, world)["secret"]

    assert first != second


def test_the_url_must_be_https_outside_debug(client, world, settings):
    settings.DEBUG = False
    response = post(client, world, body={**BODY, "url": "http://hooks.example.com/in"})

    assert response.status_code == 400
    assert response.json()["data"] == {
        "errors": [{"message": "Must be an https:// URL.", "path": ["url"]}]
    }
    settings.DEBUG = True
    assert (
        post(client, world, body={**BODY, "url": "http://hooks.example.com/in"}).status_code == 201
    )


def test_the_body_is_checked_field_by_field(client, world):
    response = post(
        client,
        world,
        body={"url": "not a url", "events": ["release.updated", "nope"], "colour": "red"},
    )

    assert response.status_code == 400
    assert response.json()["data"]["errors"] == [
        {"message": "Must be a valid URL.", "path": ["url"]},
        {"message": '"nope" is not a valid choice.', "path": ["events", 1]},
        {"message": "Unknown field.", "path": ["colour"]},
    ]
    assert post(client, world, body={"url": URL, "events": []}).status_code == 400
    twice = post(client, world, body={"url": URL, "events": ["release.updated"] * 2})
    assert twice.json()["data"]["errors"] == [
        {"message": "Name each event once.", "path": ["events"]}
    ]
    assert WebhookEndpoint.objects.count() == 0


def test_another_teams_webhook_is_not_found(client, world, outsider):
    theirs, _ = make_endpoint(outsider.team, URL)

    for response in (
        client.get(hooks(world, f"/{theirs.id}"), **headers(world)),
        put(client, world, f"/{theirs.id}", BODY),
        client.delete(hooks(world, f"/{theirs.id}"), **headers(world)),
        post(client, world, f"/{theirs.id}/rotate-secret", {}),
        post(client, world, f"/{theirs.id}/test"),
        client.get(hooks(world, f"/{theirs.id}/deliveries"), **headers(world)),
    ):
        assert response.status_code == 404
        assert response.json()["result"]["details"] == "Webhook not found"
    assert client.get(hooks(world), **headers(world)).json()["data"]["totalResults"] == 0
    theirs.refresh_from_db()
    assert theirs.url == URL


def test_update_replaces_the_fields_and_reenabling_forgets_why_it_was_off(client, world):
    endpoint, _ = make_endpoint(world.team, URL)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        active=False,
        disabled_reason="The endpoint answered 410 Gone",
        disabled_at=timezone.now(),
        failing_since=timezone.now(),
    )

    response = put(
        client, world, f"/{endpoint.id}", {"url": URL + "2", "events": ["branch.created"]}
    )

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["url"], data["events"], data["active"]) == (URL + "2", ["branch.created"], True)
    assert (data["disabledReason"], data["disabledAt"], data["failingSince"]) == (None, None, None)
    off = put(client, world, f"/{endpoint.id}", {**BODY, "active": False}).json()["data"]
    assert off["active"] is False
    assert off["disabledReason"] == f"Turned off by {world.team.api_keys.get().prefix}"
    assert AuditLog.objects.filter(action="webhook.update").count() == 2


def test_delete_removes_the_webhook_and_its_log(client, world):
    endpoint, _ = make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})

    response = client.delete(hooks(world, f"/{endpoint.id}"), **headers(world))

    assert response.status_code == 200
    assert response.json()["data"]["id"] == str(endpoint.id)
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert AuditLog.objects.filter(action="webhook.delete", target_id=str(endpoint.id)).exists()


def test_rotate_secret_shows_the_new_one_and_keeps_the_old_for_the_grace_period(client, world):
    endpoint, old = make_endpoint(world.team, URL)

    response = post(client, world, f"/{endpoint.id}/rotate-secret", {"gracePeriodHours": 2})

    assert response.status_code == 200
    data = response.json()["data"]
    endpoint.refresh_from_db()
    assert data["secret"] == endpoint.secret != old
    assert endpoint.previous_secret == old
    expires = endpoint.previous_secret_expires_at
    assert abs(expires - (timezone.now() + timedelta(hours=2))) < timedelta(seconds=5)
    assert data["previousSecretExpiresAt"] == iso_utc(expires)
    entry = AuditLog.objects.get(action="webhook.rotate_secret")
    assert old not in str(entry.result) and data["secret"] not in str(entry.result)
    # No body: 24 hours. Out of range: refused.
    default = post(client, world, f"/{endpoint.id}/rotate-secret").json()["data"]
    endpoint.refresh_from_db()
    assert endpoint.previous_secret == data["secret"]
    assert default["previousSecretExpiresAt"] == iso_utc(endpoint.previous_secret_expires_at)
    too_long = post(client, world, f"/{endpoint.id}/rotate-secret", {"gracePeriodHours": 169})
    assert too_long.status_code == 400
    as_text = post(client, world, f"/{endpoint.id}/rotate-secret", {"gracePeriodHours": "2"})
    assert as_text.status_code == 400


def test_idempotency_key_makes_a_retried_create_safe(client, world):
    first = post(client, world, body=BODY, HTTP_IDEMPOTENCY_KEY="hook-1")
    again = post(client, world, body=BODY, HTTP_IDEMPOTENCY_KEY="hook-1")

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["data"] == first.json()["data"]
    assert WebhookEndpoint.objects.count() == 1
    other = post(client, world, body={**BODY, "active": False}, HTTP_IDEMPOTENCY_KEY="hook-1")
    assert other.status_code == 422


def test_if_match_guards_update_and_delete(client, world):
    endpoint, _ = make_endpoint(world.team, URL)
    etag = client.get(hooks(world, f"/{endpoint.id}"), **headers(world))["ETag"]
    put(client, world, f"/{endpoint.id}", {**BODY, "url": URL + "x"})

    stale = put(client, world, f"/{endpoint.id}", BODY, HTTP_IF_MATCH=etag)
    gone = client.delete(hooks(world, f"/{endpoint.id}"), **headers(world, HTTP_IF_MATCH=etag))

    assert stale.status_code == gone.status_code == 412
    endpoint.refresh_from_db()
    assert endpoint.url == URL + "x"


def test_a_test_event_is_queued_for_that_webhook_alone(client, world):
    endpoint, _ = make_endpoint(world.team, URL, ("release.deleted",))
    make_endpoint(world.team, URL)

    response = post(client, world, f"/{endpoint.id}/test")

    assert response.status_code == 201
    data = response.json()["data"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == endpoint
    assert data["id"] == str(delivery.id)
    assert (data["type"], data["state"], data["attempts"]) == ("webhook.test", "PENDING", [])
    assert data["webhookMessageId"] == f"msg_{delivery.event_id.hex}"


def test_a_disabled_webhook_gets_no_test_event_and_no_redelivery(client, world):
    endpoint, _ = make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)

    tested = post(client, world, f"/{endpoint.id}/test")
    redelivered = post(client, world, f"/{endpoint.id}/deliveries/{delivery.id}/redeliver")

    assert tested.status_code == redelivered.status_code == 409
    assert tested.json()["result"]["details"] == "The webhook is disabled: enable it first"
    assert WebhookDelivery.objects.count() == 1


def test_the_delivery_log_and_redelivery(client, world):
    endpoint, _ = make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=1,
        attempted_at=timezone.now(),
        status_code=500,
        duration_ms=12,
        error="HTTP 500",
        response_body="boom",
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.FAILED, next_attempt_at=None, attempt_count=1
    )

    log = client.get(hooks(world, f"/{endpoint.id}/deliveries"), **headers(world)).json()["data"]
    again = post(client, world, f"/{endpoint.id}/deliveries/{delivery.id}/redeliver")
    unknown = post(client, world, f"/{endpoint.id}/deliveries/{uuid.uuid4()}/redeliver")

    assert log["totalResults"] == 1
    (entry,) = log["deliveries"]
    assert (entry["state"], entry["attemptCount"], entry["type"]) == (
        "FAILED",
        1,
        "release.updated",
    )
    assert entry["attempts"] == [
        {
            "number": 1,
            "attemptedAt": entry["attempts"][0]["attemptedAt"],
            "statusCode": 500,
            "durationMs": 12,
            "error": "HTTP 500",
            "responseBody": "boom",
        }
    ]
    assert again.status_code == 201
    redelivery = WebhookDelivery.objects.get(pk=again.json()["data"]["id"])
    assert redelivery.event_id == delivery.event_id  # so the same webhook-id
    assert redelivery.state == DeliveryState.PENDING
    assert unknown.status_code == 404
    assert unknown.json()["result"]["details"] == "Delivery not found"
    page = client.get(
        hooks(world, f"/{endpoint.id}/deliveries?pageSize=10&page=1"), **headers(world)
    )
    assert [d["id"] for d in page.json()["data"]["deliveries"]] == [
        str(redelivery.id),
        str(delivery.id),
    ]
    bad = client.get(hooks(world, f"/{endpoint.id}/deliveries?sort=x"), **headers(world))
    assert bad.status_code == 400
    assert bad.json()["result"]["details"] == "Invalid query parameter: sort"


def test_a_redelivery_is_sent_with_the_same_webhook_id(client, world, monkeypatch):
    endpoint, _ = make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()
    post(client, world, f"/{endpoint.id}/deliveries/{delivery.id}/redeliver")
    seen = []

    def send(delivery):
        seen.append(delivery.event.message_id)
        return sender.Outcome(timezone.now(), 1, status_code=200)

    monkeypatch.setattr(sender, "send", send)
    assert sender.sweep() == 2
    assert seen == [delivery.event.message_id] * 2


def test_a_team_has_at_most_20_webhooks(client, world):
    for _ in range(20):
        make_endpoint(world.team, URL)

    response = post(client, world, body=BODY)

    assert response.status_code == 403
    assert response.json()["result"]["details"] == "A team has at most 20 webhooks"


def test_the_api_key_and_rate_limit_apply(client, world):
    assert client.get(hooks(world)).status_code == 401
    response = client.get(hooks(world), **headers(world))
    assert "X-RateLimit-Limit" in response
    assert client.get("/api/v1/dev/teams/not-a-uuid/webhooks", **headers(world)).status_code == 400


HTTP_OFF = "Must be an https:// URL."
BAD_BODIES = [
    ({"url": "http://hooks.example.com/in", "events": ["release.updated"]}, ["url"], HTTP_OFF),
    ({"url": "ftp://hooks.example.com/in", "events": ["release.updated"]}, ["url"], None),
    ({"url": "javascript:alert(1)", "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://u:pw@hooks.example.com/", "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://u@hooks.example.com/", "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://hooks.example.com:0/", "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://hooks.example.com:99999/", "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://[::1]/in", "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://169.254.169.254/", "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://e.com/" + "a" * 500, "events": ["release.updated"]}, ["url"], None),
    ({"url": "https://e.com/\x00", "events": ["release.updated"]}, ["url"], None),
    ({"url": 5, "events": ["release.updated"]}, ["url"], None),
    ({"url": None, "events": ["release.updated"]}, ["url"], None),
    ({"url": URL, "events": "release.updated"}, ["events"], None),
    ({"url": URL, "events": [{"type": "release.updated"}]}, ["events", 0], None),
    ({"url": URL, "events": ["webhook.test"]}, ["events", 0], None),
    ({"url": URL, "events": ["release.updated"] * 10}, ["events"], None),
    ({"url": URL, "events": ["release.updated"], "active": "true"}, ["active"], None),
    ({"url": URL, "events": ["release.updated"], "secret": "whsec_x"}, ["secret"], None),
    ([BODY], [], None),
    (5, [], None),  # a JSON number
]


@pytest.mark.parametrize(("body", "path", "message"), BAD_BODIES)
def test_bad_bodies_are_400_with_the_field_named(client, world, settings, body, path, message):
    settings.DEBUG = False
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = False
    endpoint, _ = make_endpoint(world.team, URL)

    for response in (post(client, world, body=body), put(client, world, f"/{endpoint.id}", body)):
        assert response.status_code == 400, response.content
        result = response.json()["result"]
        assert (result["details"], result["code"], result["valid"]) == (
            "Invalid request body",
            "BAD_REQUEST",
            False,
        )
        (error,) = response.json()["data"]["errors"]
        assert error["path"] == path
        if message is not None:
            assert error["message"] == message
    assert WebhookEndpoint.objects.get().url == URL


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "details"),
    [
        (b"{not json", "application/json", 400, "Malformed JSON body"),
        (b'{"url": "\xff"}', "application/json", 400, "Malformed JSON body"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "Malformed JSON body"),
        (b"url=https://e.com", "application/x-www-form-urlencoded", 415, "Unsupported media type"),
    ],
    ids=["syntax", "not-utf8", "nested-too-deep", "form"],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    client, world, raw, content_type, status, details
):
    endpoint, _ = make_endpoint(world.team, URL)
    client.raise_request_exception = False

    for path in ("", f"/{endpoint.id}", f"/{endpoint.id}/rotate-secret"):
        response = client.post(
            hooks(world, path), data=raw, content_type=content_type, **headers(world)
        )
        if path == f"/{endpoint.id}":
            response = client.put(
                hooks(world, path), data=raw, content_type=content_type, **headers(world)
            )
        assert response.status_code == status, (path, response.content)
        assert response.json()["result"]["details"] == details
    assert WebhookEndpoint.objects.count() == 1
