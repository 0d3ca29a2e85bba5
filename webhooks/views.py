"""Webhooks in the Developer API: the envelope, key, team scoping, rate limit, audit trail and
Idempotency-Key of the release and catalog endpoints; JSON bodies.

- ``/teams/{teamId}/webhooks``: list (GET), create (POST; the answer shows the secret, once);
- ``/teams/{teamId}/webhooks/{webhookId}``: get, update (PUT), delete;
- ``.../{webhookId}/rotate-secret`` (POST): a new secret, the old one signing for a grace period;
- ``.../{webhookId}/test`` (POST): a ``webhook.test`` event for this endpoint;
- ``.../{webhookId}/deliveries`` (GET): the delivery log, newest first;
- ``.../{webhookId}/deliveries/{deliveryId}/redeliver`` (POST): the event again, same id.
"""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from lukittu.api import ApiError, Code, success
from lukittu.fields import (
    MAX_PAGE,
    PAGE_SIZES,
    ClosedSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictPageField,
)
from lukittu.views import JsonApiView, json_body, page_of, parse_query
from teams.conditions import Conditions, conditional_get, fingerprint, run_write
from teams.services import api_actor
from webhooks import openapi, services
from webhooks.destinations import url_problem
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import (
    delivery_payload,
    team_webhooks,
    webhook_deliveries,
    webhook_payload,
)
from webhooks.shapes import WebhookDeliveryPage, WebhookPage, WebhookWithSecret

MAX_GRACE_HOURS = 168

# --- Bodies and queries ------------------------------------------------------------------------


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: DRF would also take "24", 24.0 and true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class WebhookBodySerializer(ClosedSerializer):
    url = StrictCharField(min_length=1, max_length=500)
    events = serializers.ListField(
        child=StrictChoiceField(choices=EVENT_TYPES), min_length=1, max_length=len(EVENT_TYPES)
    )
    active = StrictBooleanField(required=False, default=True)

    def validate_url(self, value: str) -> str:
        try:
            URLValidator(schemes=["http", "https"])(value)
        except DjangoValidationError:
            raise serializers.ValidationError("Must be a valid URL.") from None
        problem = url_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_events(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Name each event once.")
        return value


class RotateBodySerializer(ClosedSerializer):
    gracePeriodHours = StrictIntegerField(min_value=0, max_value=MAX_GRACE_HOURS, default=24)


class PageQuerySerializer(serializers.Serializer):
    page = StrictPageField(min_value=1, max_value=MAX_PAGE, default=1)
    pageSize = serializers.ChoiceField(choices=PAGE_SIZES, default=25)


def page_query(request: Request) -> dict[str, Any]:
    """``page`` and ``pageSize``; anything else, or either twice, is a 400 naming it."""
    return parse_query(request, PageQuerySerializer)


# --- Lookups inside the key's team -------------------------------------------------------------


def webhook_in_team(request: Request, webhook_id: Any) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=webhook_id, team=request.auth.team).first()
    if endpoint is None:
        raise services.webhook_not_found()
    return endpoint


def delivery_of(endpoint: WebhookEndpoint, delivery_id: Any) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.filter(pk=delivery_id, endpoint=endpoint)
        .select_related("event", "endpoint")
        .first()
    )
    if delivery is None:
        raise ApiError(404, Code.BAD_REQUEST, "Delivery not found")
    return delivery


def with_secret(endpoint: WebhookEndpoint, secret: str) -> dict[str, Any]:
    return WebhookWithSecret.dump(endpoint, secret=secret)


# --- Views -------------------------------------------------------------------------------------


class WebhookListView(JsonApiView):
    @openapi.list_webhooks
    def get(self, request: Request, **kwargs: Any) -> Response:
        query = page_query(request)
        items, total, has_next = page_of(team_webhooks(request.auth.team), query)
        return success(WebhookPage.data(items, total, has_next), details="Webhooks found")

    @openapi.create_webhook
    def post(self, request: Request, **kwargs: Any) -> Response:
        body = json_body(request, WebhookBodySerializer)

        def write(conditions: Conditions) -> dict[str, Any]:
            endpoint, secret = services.endpoint_create(
                team=request.auth.team,
                url=body["url"],
                events=body["events"],
                active=body["active"],
                actor=api_actor(request),
            )
            return with_secret(endpoint, secret)

        return run_write(
            request, lambda: fingerprint(body), write, status=201, details="Webhook created"
        )


class WebhookDetailView(JsonApiView):
    path_ids = {"teamId": "team_id", "webhookId": "webhook_id"}

    @openapi.get_webhook
    def get(self, request: Request, **kwargs: Any) -> Response:
        endpoint = webhook_in_team(request, self.webhook_id)
        return conditional_get(request, webhook_payload(endpoint), "Webhook found")

    @openapi.update_webhook
    def put(self, request: Request, **kwargs: Any) -> Response:
        body = json_body(request, WebhookBodySerializer)

        def write(conditions: Conditions) -> dict[str, Any]:
            updated = services.endpoint_update(
                endpoint=webhook_in_team(request, self.webhook_id),
                changes=body,
                actor=api_actor(request),
                conditions=conditions,
            )
            return webhook_payload(updated)

        return run_write(
            request, lambda: fingerprint(body), write, status=200, details="Webhook updated"
        )

    @openapi.delete_webhook
    def delete(self, request: Request, **kwargs: Any) -> Response:
        def write(conditions: Conditions) -> dict[str, Any]:
            return services.endpoint_delete(
                endpoint=webhook_in_team(request, self.webhook_id),
                actor=api_actor(request),
                conditions=conditions,
            )

        return run_write(
            request, lambda: fingerprint(None), write, status=200, details="Webhook deleted"
        )


class WebhookRotateSecretView(JsonApiView):
    path_ids = {"teamId": "team_id", "webhookId": "webhook_id"}
    http_method_names = ["post"]

    @openapi.rotate_webhook_secret
    def post(self, request: Request, **kwargs: Any) -> Response:
        body = json_body(request, RotateBodySerializer)

        def write(conditions: Conditions) -> dict[str, Any]:
            endpoint, secret = services.endpoint_rotate_secret(
                endpoint=webhook_in_team(request, self.webhook_id),
                grace=timedelta(hours=body["gracePeriodHours"]),
                actor=api_actor(request),
                conditions=conditions,
            )
            return with_secret(endpoint, secret)

        return run_write(
            request, lambda: fingerprint(body), write, status=200, details="Webhook secret rotated"
        )


class WebhookTestView(JsonApiView):
    path_ids = {"teamId": "team_id", "webhookId": "webhook_id"}
    http_method_names = ["post"]

    @openapi.test_webhook
    def post(self, request: Request, **kwargs: Any) -> Response:
        def write(conditions: Conditions) -> dict[str, Any]:
            delivery = services.send_test_event(
                endpoint=webhook_in_team(request, self.webhook_id), actor=api_actor(request)
            )
            return delivery_payload(delivery)

        return run_write(
            request, lambda: fingerprint(None), write, status=201, details="Test event queued"
        )


class WebhookDeliveryListView(JsonApiView):
    path_ids = {"teamId": "team_id", "webhookId": "webhook_id"}
    http_method_names = ["get", "head"]

    @openapi.list_webhook_deliveries
    def get(self, request: Request, **kwargs: Any) -> Response:
        endpoint = webhook_in_team(request, self.webhook_id)
        query = page_query(request)
        items, total, has_next = page_of(webhook_deliveries(endpoint), query)
        return success(WebhookDeliveryPage.data(items, total, has_next), details="Deliveries found")


class WebhookRedeliverView(JsonApiView):
    path_ids = {"teamId": "team_id", "webhookId": "webhook_id", "deliveryId": "delivery_id"}
    http_method_names = ["post"]

    @openapi.redeliver_webhook
    def post(self, request: Request, **kwargs: Any) -> Response:
        def write(conditions: Conditions) -> dict[str, Any]:
            endpoint = webhook_in_team(request, self.webhook_id)
            again = services.delivery_redeliver(
                delivery=delivery_of(endpoint, self.delivery_id), actor=api_actor(request)
            )
            return delivery_payload(again)

        return run_write(
            request, lambda: fingerprint(None), write, status=201, details="Redelivery queued"
        )
