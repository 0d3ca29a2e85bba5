"""Webhook write use cases, shared by the admin and the Developer API, each recorded in the
audit log (the secret never is: entries hold the webhook as the API shows it)."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from lukittu.api import ApiError, Code
from teams.conditions import Conditions
from teams.models import Team
from teams.services import Actor, apply_changes, log_action, save_changed
from webhooks.events import TEST_EVENT, enqueue_on_commit, record_event
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import webhook_payload
from webhooks.signing import new_secret

MAX_WEBHOOKS_PER_TEAM = 20
DEFAULT_GRACE = timedelta(hours=24)
EDITABLE = ("url", "events", "active", "disabled_at", "disabled_reason", "failing_since")


def webhook_not_found() -> ApiError:
    return ApiError(404, Code.BAD_REQUEST, "Webhook not found")


def webhook_disabled() -> ApiError:
    return ApiError(409, Code.BAD_REQUEST, "The webhook is disabled: enable it first")


def too_many_webhooks() -> ApiError:
    return ApiError(403, Code.FORBIDDEN, f"A team has at most {MAX_WEBHOOKS_PER_TEAM} webhooks")


def _locked(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return (
        WebhookEndpoint.objects.select_for_update(of=("self",))
        .select_related("team")
        .get(pk=endpoint.pk)
    )


@transaction.atomic
def endpoint_create(
    *,
    team: Team,
    url: str,
    events: list[str],
    active: bool = True,
    actor: Actor | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (shown to the caller once). The team's row lock orders
    creates, so the per-team limit holds under concurrent requests."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    if WebhookEndpoint.objects.filter(team=team).count() >= MAX_WEBHOOKS_PER_TEAM:
        raise too_many_webhooks()
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(
        team=team, url=url, events=list(events), active=active, secret=secret
    )
    fields, result = {"url": url, "events": events, "active": active}, webhook_payload(endpoint)
    log_action(
        actor=actor, action="webhook.create", target=endpoint, request_data=fields, result=result
    )
    return endpoint, secret


def _activity_changes(stored: WebhookEndpoint, active: bool, actor: Actor | None) -> dict[str, Any]:
    """Turning an endpoint on forgets why it was off and its failures; turning it off says who
    did."""
    if active == stored.active:
        return {}
    if active:
        return {"disabled_at": None, "disabled_reason": "", "failing_since": None}
    who = actor.label if actor is not None else "an operator"
    return {"disabled_at": timezone.now(), "disabled_reason": f"Turned off by {who}"}


@transaction.atomic
def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    changes: Mapping[str, Any],
    actor: Actor | None = None,
    conditions: Conditions | None = None,
) -> WebhookEndpoint:
    """Change the URL, the events or the active flag. Returns the endpoint as stored; writes
    (and records) nothing when no value differs."""
    stored = _locked(endpoint)
    (conditions or Conditions()).check_current(lambda: webhook_payload(stored))
    extra = _activity_changes(stored, changes.get("active", stored.active), actor)
    changed = apply_changes(stored, {**changes, **extra}, allowed=EDITABLE)
    if changed:
        save_changed(stored, changed)
        result = webhook_payload(stored)
        log_action(
            actor=actor, action="webhook.update", target=stored, request_data=changed, result=result
        )
    return stored


@transaction.atomic
def endpoint_delete(
    *,
    endpoint: WebhookEndpoint,
    actor: Actor | None = None,
    conditions: Conditions | None = None,
) -> dict[str, Any]:
    """Delete an endpoint with its deliveries and their log. Returns it as it was."""
    stored = _locked(endpoint)
    payload = webhook_payload(stored)
    (conditions or Conditions()).check_current(lambda: payload)
    log_action(actor=actor, action="webhook.delete", target=stored, result=payload)
    stored.delete()
    return payload


@transaction.atomic
def endpoint_rotate_secret(
    *,
    endpoint: WebhookEndpoint,
    grace: timedelta = DEFAULT_GRACE,
    actor: Actor | None = None,
    conditions: Conditions | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new secret (returned, to show once). For ``grace`` the old one signs too; with no
    grace it stops at once. A secret replaced earlier, still in its grace period, stops."""
    stored = _locked(endpoint)
    (conditions or Conditions()).check_current(lambda: webhook_payload(stored))
    secret = new_secret()
    stored.previous_secret = stored.secret if grace > timedelta(0) else ""
    stored.previous_secret_expires_at = timezone.now() + grace if grace > timedelta(0) else None
    stored.secret = secret
    stored.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    asked = {"gracePeriodHours": grace.total_seconds() / 3600}
    result = webhook_payload(stored)
    log_action(
        actor=actor,
        action="webhook.rotate_secret",
        target=stored,
        request_data=asked,
        result=result,
    )
    return stored, secret


@transaction.atomic
def delivery_redeliver(*, delivery: WebhookDelivery, actor: Actor | None = None) -> WebhookDelivery:
    """Send a delivery's event again, as a new delivery with the same ``webhook-id``."""
    endpoint = _locked(delivery.endpoint)
    if not endpoint.active:
        raise webhook_disabled()
    again = WebhookDelivery.objects.create(
        event=delivery.event, endpoint=endpoint, next_attempt_at=timezone.now()
    )
    enqueue_on_commit([again.pk])
    asked = {"deliveryId": delivery.pk}
    result = {"deliveryId": again.pk, "eventId": delivery.event_id, "type": delivery.event.type}
    log_action(
        actor=actor, action="webhook.redeliver", target=endpoint, request_data=asked, result=result
    )
    return again


@transaction.atomic
def send_test_event(*, endpoint: WebhookEndpoint, actor: Actor | None = None) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint alone, whatever it subscribes to."""
    stored = _locked(endpoint)
    if not stored.active:
        raise webhook_disabled()
    data = {
        "webhookId": str(stored.id),
        "message": "A test event: this endpoint receives webhooks.",
    }
    (delivery,) = record_event(stored.team, TEST_EVENT, data, [stored])
    result = {"deliveryId": delivery.pk, "eventId": delivery.event_id}
    log_action(actor=actor, action="webhook.test", target=stored, result=result)
    return delivery
