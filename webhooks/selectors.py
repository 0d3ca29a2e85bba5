"""Webhooks as the API and the admin show them. The secret is never part of these: it is shown
once, by the create and rotate answers."""

from typing import Any

from django.db.models import Prefetch, QuerySet

from lukittu.api import iso_utc
from teams.models import Team
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def _time(moment: Any) -> str | None:
    return iso_utc(moment) if moment is not None else None


def webhook_payload(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "events": list(endpoint.events),
        "active": endpoint.active,
        "teamId": str(endpoint.team_id),
        "disabledReason": endpoint.disabled_reason or None,
        "disabledAt": _time(endpoint.disabled_at),
        "failingSince": _time(endpoint.failing_since),
        "previousSecretExpiresAt": _time(endpoint.previous_secret_expires_at),
        "createdAt": iso_utc(endpoint.created_at),
        "updatedAt": iso_utc(endpoint.updated_at),
    }


def attempt_payload(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "attemptedAt": iso_utc(attempt.attempted_at),
        "statusCode": attempt.status_code,
        "durationMs": attempt.duration_ms,
        "error": attempt.error or None,
        "responseBody": attempt.response_body,
    }


def delivery_payload(delivery: WebhookDelivery) -> dict[str, Any]:
    """``webhookMessageId`` is the ``webhook-id`` header every attempt of it carries."""
    event = delivery.event
    return {
        "id": str(delivery.id),
        "webhookId": str(delivery.endpoint_id),
        "eventId": str(event.id),
        "webhookMessageId": event.message_id,
        "type": event.type,
        "state": delivery.state,
        "attemptCount": delivery.attempt_count,
        "nextAttemptAt": _time(delivery.next_attempt_at),
        "createdAt": iso_utc(delivery.created_at),
        "attempts": [attempt_payload(attempt) for attempt in delivery.attempts.all()],
    }


def team_webhooks(team: Team) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(team=team).order_by("created_at", "id")


def webhook_deliveries(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """Newest first, each with its event and attempts (two queries for a whole page)."""
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .prefetch_related(
            Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number", "id"))
        )
        .order_by("-created_at", "-id")
    )
