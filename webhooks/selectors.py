"""Webhooks as the API and the admin show them. The secret is never part of these: it is shown
once, by the create and rotate answers."""

from django.db.models import Prefetch, QuerySet

from teams.models import Team
from webhooks import shapes
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

# The shapes' own dicts, under the names the services and views call them by.
webhook_payload = shapes.WebhookData.dump
attempt_payload = shapes.WebhookAttempt.dump
delivery_payload = shapes.WebhookDelivery.dump


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
