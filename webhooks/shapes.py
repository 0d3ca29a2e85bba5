"""The webhook endpoints' wire shapes: what the API sends for a webhook, a delivery and an
attempt, declared once for the answers and the OpenAPI document (``lukittu.shapes``). The
secret is never part of a webhook's shape: it is shown once, by the create and rotate answers
(``WebhookWithSecret``)."""

from lukittu.shapes import Boolean, Choice, Integer, Many, One, Shape, Text, Time, Uuid, page
from webhooks.models import EVENT_TYPES, TEST_EVENT, DeliveryState


class WebhookData(
    Shape, description="An endpoint that receives the team's events (never with its secret)."
):
    id = Uuid("id")
    url = Text("url", schema={"format": "uri"})
    events = Many(Choice(EVENT_TYPES), "events")
    active = Boolean("active")
    teamId = Uuid("team_id")
    disabledReason = Text(
        lambda endpoint: endpoint.disabled_reason or None,
        nullable=True,
        description="Why it is off: 410 Gone, failing for 3 days, or who turned it off",
    )
    disabledAt = Time("disabled_at", nullable=True)
    failingSince = Time(
        "failing_since",
        nullable=True,
        description="The first failed attempt since the last success",
    )
    previousSecretExpiresAt = Time(
        "previous_secret_expires_at",
        nullable=True,
        description="Until then the secret replaced by the last rotation signs too",
    )
    createdAt = Time("created_at")
    updatedAt = Time("updated_at")


class WebhookWithSecret(WebhookData, extends=True):
    secret = Text(
        schema={"pattern": "^whsec_[A-Za-z0-9+/]{43}=$"},
        description="The signing secret, shown this once",
    )


class WebhookAttempt(Shape):
    number = Integer("number", schema={"minimum": 1})
    attemptedAt = Time("attempted_at")
    statusCode = Integer("status_code", nullable=True)
    durationMs = Integer("duration_ms", schema={"minimum": 0})
    error = Text(lambda attempt: attempt.error or None, nullable=True)
    responseBody = Text("response_body", description="The answer's first KiB")


class WebhookDelivery(Shape):
    """``webhookMessageId`` is the ``webhook-id`` header every attempt of it carries."""

    id = Uuid("id")
    webhookId = Uuid("endpoint_id")
    eventId = Uuid("event.id")
    webhookMessageId = Text(
        "event.message_id",
        description="The `webhook-id` header: the same for every attempt and redelivery",
    )
    type = Choice([*EVENT_TYPES, TEST_EVENT], "event.type")
    state = Choice(DeliveryState.values, "state")
    attemptCount = Integer("attempt_count", schema={"minimum": 0})
    nextAttemptAt = Time("next_attempt_at", nullable=True)
    createdAt = Time("created_at")
    attempts = Many(One(WebhookAttempt), lambda delivery: delivery.attempts.all())


WebhookPage = page(WebhookData, "webhooks")
WebhookDeliveryPage = page(WebhookDelivery, "deliveries")
