"""Endpoints a team registers, the events its writes emit, one delivery per event and endpoint,
and every attempt to send it.

An event and its deliveries are written in the transaction of the change they report, so a
rolled-back change sends nothing and a committed one is never forgotten: ``next_attempt_at``
is the only thing a worker needs to find what is due (see ``webhooks/sender.py``).
"""

import uuid

from django.db import models
from django.db.models import Q

from teams.models import Team

# The events a webhook can subscribe to.
EVENT_TYPES = (
    "release.created",
    "release.updated",
    "release.deleted",
    "product.created",
    "product.updated",
    "product.deleted",
    "branch.created",
    "branch.updated",
    "branch.deleted",
)
# Sent only to the endpoint it tests, whatever it subscribes to.
TEST_EVENT = "webhook.test"


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    # The event types it receives (``EVENT_TYPES``), never empty.
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    # ``whsec_`` + base64 of 32 random bytes. Shown once, when made or rotated; the sender
    # needs it in clear to sign.
    secret = models.CharField(max_length=100, editable=False)
    # After a rotation, the replaced secret signs too until it expires (a grace period).
    previous_secret = models.CharField(max_length=100, blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set on the first failed attempt after a success (or ever); cleared by a success. An
    # endpoint failing for WEBHOOKS_DISABLE_AFTER_DAYS is disabled.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=255, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["team", "active"], name="webhook_endpoint_team")]
        permissions = [
            ("rotate_webhook_secret", "Can rotate a webhook's secret"),
            ("send_test_event", "Can send a webhook a test event"),
        ]

    def __str__(self) -> str:
        return self.url


class WebhookEvent(models.Model):
    """One thing that happened, as sent: ``body`` is the exact JSON every delivery and retry
    sends, and its id is the ``webhook-id`` receivers deduplicate on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=64)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.message_id}"

    @property
    def message_id(self) -> str:
        """The ``webhook-id`` header: the same for every attempt and redelivery."""
        return f"msg_{self.id.hex}"


class DeliveryState(models.TextChoices):
    PENDING = "PENDING", "Pending"
    DELIVERED = "DELIVERED", "Delivered"
    FAILED = "FAILED", "Failed"


class WebhookDelivery(models.Model):
    """An event on its way to one endpoint. ``next_attempt_at`` is when a worker may claim it
    (pending only); a claim moves it one lease ahead, so a worker that dies mid-attempt leaves
    it due again once the lease ends."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    # The current claim: only its holder records the attempt's outcome.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        permissions = [("redeliver", "Can redeliver a webhook delivery")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="PENDING"),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state="PENDING", next_attempt_at__isnull=False)
                | (~Q(state="PENDING") & Q(next_attempt_at__isnull=True)),
                name="webhook_delivery_due_iff_pending",
            )
        ]

    def __str__(self) -> str:
        # Not the endpoint's URL: it may have changed since; each attempt keeps where it went.
        return f"{self.event.type} {self.event.message_id}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, as the delivery log shows it."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    # Where this attempt was sent: the endpoint's URL at that moment (it may change later).
    # Empty on attempts recorded before it was kept.
    url = models.URLField(max_length=500, blank=True, default="")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=500, blank=True, default="")
    # The first KiB of the response body, decoded as UTF-8 (undecodable bytes replaced).
    response_body = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error}"
