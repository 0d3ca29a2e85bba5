"""Webhooks in the admin: endpoints (added with their secret shown once, changed, deleted,
tested, rotated, and why one is off), and the delivery log with its attempts and redelivery.
Every write goes through ``webhooks.services`` with the operator as the audit log's actor; each
action needs its own permission (``Meta.permissions``), not merely "change"."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from lukittu.admin import (
    AuditHistoryMixin,
    ViewOnlyAdmin,
    ViewOnlyInline,
    adopt,
    clipped,
    holds,
    operator_actor,
    short_id,
    timestamp,
)
from lukittu.api import ApiError
from webhooks import services
from webhooks.destinations import url_problem
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in EVENT_TYPES], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("team", "url", "events", "active")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        problem = url_problem(url)
        if problem:
            raise forms.ValidationError(problem)
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditHistoryMixin, admin.ModelAdmin):
    audit_target_type = "webhook"
    form = WebhookEndpointForm
    list_display = (
        "url",
        "team",
        "active",
        "event_list",
        "failing_since",
        "disabled_reason",
        "delivery_log",
    )
    list_filter = ("active", "team")
    list_select_related = ("team",)
    search_fields = ("url", "team__name")
    actions = ("send_test_event", "rotate_secret")
    readonly_fields = (
        "id",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
        "delivery_log",
    )

    def get_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> tuple:
        if obj is None:
            return ("team", "url", "events", "active")
        return ("id", "team", "url", "events", "active", *self.readonly_fields[1:])

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        # A webhook stays with the team it was made for.
        return self.readonly_fields + (("team",) if obj is not None else ())

    @admin.display(description="Events")
    def event_list(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="Delivery log")
    def delivery_log(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.pk is None:
            return "-"
        url = reverse("admin:webhooks_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">Deliveries</a>', url, endpoint.pk)

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        actor = operator_actor(request)
        fields = {name: form.cleaned_data[name] for name in ("url", "events", "active")}
        if change:
            adopt(obj, services.endpoint_update(endpoint=obj, changes=fields, actor=actor))
            return
        endpoint, secret = services.endpoint_create(team=obj.team, actor=actor, **fields)
        adopt(obj, endpoint)
        messages.warning(
            request, f"Webhook created. Copy its secret now, it will not be shown again: {secret}"
        )

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        services.endpoint_delete(endpoint=obj, actor=operator_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = operator_actor(request)
        for endpoint in queryset:
            services.endpoint_delete(endpoint=endpoint, actor=actor)

    def has_send_test_event_permission(self, request: HttpRequest) -> bool:
        return holds(request, self.opts, "send_test_event")

    def has_rotate_secret_permission(self, request: HttpRequest) -> bool:
        return holds(request, self.opts, "rotate_webhook_secret")

    @admin.action(description="Send a test event", permissions=["send_test_event"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = operator_actor(request)
        for endpoint in queryset:
            try:
                services.send_test_event(endpoint=endpoint, actor=actor)
            except ApiError as error:
                self.message_user(request, f"{endpoint.url}: {error.details}", messages.ERROR)
            else:
                self.message_user(request, f"Test event queued for {endpoint.url}.")

    @admin.action(
        description="Rotate the secret (the old one signs for 24 more hours)",
        permissions=["rotate_secret"],
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = operator_actor(request)
        for endpoint in queryset:
            _, secret = services.endpoint_rotate_secret(endpoint=endpoint, actor=actor)
            messages.warning(request, f"New secret for {endpoint.url} (shown only now): {secret}")


class AttemptInline(ViewOnlyInline):
    model = WebhookAttempt
    fields = (
        "number",
        "attempted_at",
        "url",
        "status_code",
        "duration_ms",
        "error",
        "response_body",
    )
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyAdmin):
    # Short columns, long texts cut with the whole on hover: the list fits a 1280 px screen.
    list_display = (
        "created",
        "event_type",
        "sent_to",
        "state",
        "attempts",
        "last_result",
        "next_attempt",
        "message_id",
    )
    list_filter = ("state", "event__type", ("endpoint", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("event", "endpoint")
    search_fields = ("endpoint__url", "event__type")
    fields = (
        "id",
        "endpoint",
        "event_type",
        "message_id",
        "state",
        "attempt_count",
        "last_sent_to",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "body",
    )
    readonly_fields = fields
    inlines = (AttemptInline,)
    actions = ("redeliver",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The URL of the newest attempt, recorded when it was sent: where the delivery went,
        # whatever the endpoint's URL is now.
        newest_attempt = WebhookAttempt.objects.filter(delivery=OuterRef("pk")).order_by(
            "-number", "-id"
        )
        return (
            super()
            .get_queryset(request)
            .annotate(sent_url=Subquery(newest_attempt.values("url")[:1]))
        )

    # The timestamps may wrap between date and time (Django's own date columns never do).
    @admin.display(description="Created", ordering="created_at")
    def created(self, delivery: WebhookDelivery) -> str:
        return timestamp(delivery.created_at)

    @admin.display(description="Next attempt", ordering="next_attempt_at")
    def next_attempt(self, delivery: WebhookDelivery) -> str:
        return timestamp(delivery.next_attempt_at)

    @admin.display(description="Attempts", ordering="attempt_count")
    def attempts(self, delivery: WebhookDelivery) -> int:
        return delivery.attempt_count

    @admin.display(description="Sent to")
    def sent_to(self, delivery: WebhookDelivery) -> Any:
        if delivery.attempt_count == 0:
            return "not yet"
        url = getattr(delivery, "sent_url", None) or "-"
        # A URL has no spaces to wrap at: it may break anywhere, over two lines at most.
        shown = url if len(url) <= 48 else f"{url[:47]}…"
        return format_html('<span title="{}" style="word-break: break-all">{}</span>', url, shown)

    @admin.display(description="Sent to (the newest attempt)")
    def last_sent_to(self, delivery: WebhookDelivery) -> str:
        if delivery.attempt_count == 0:
            return f"Not sent yet. The webhook's URL now: {delivery.endpoint.url}"
        return getattr(delivery, "sent_url", None) or "-"

    @admin.display(description="Last result", ordering="last_status_code")
    def last_result(self, delivery: WebhookDelivery) -> Any:
        if delivery.last_error:
            return clipped(delivery.last_error, 40)
        return delivery.last_status_code or "-"

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.display(description="webhook-id")
    def message_id(self, delivery: WebhookDelivery) -> Any:
        return short_id(delivery.event.message_id)

    @admin.display(description="Body sent")
    def body(self, delivery: WebhookDelivery) -> str:
        return delivery.event.body

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return holds(request, self.opts, "redeliver")

    @admin.action(description="Redeliver (same webhook-id)", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = operator_actor(request)
        for delivery in queryset.select_related("event", "endpoint"):
            try:
                services.delivery_redeliver(delivery=delivery, actor=actor)
            except ApiError as error:
                self.message_user(request, f"{delivery}: {error.details}", messages.ERROR)
            else:
                self.message_user(request, f"Redelivery queued: {delivery}.")
