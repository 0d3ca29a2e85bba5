"""The webhook endpoints' part of the OpenAPI document: their schemas, JSON bodies, and each
operation's error table in the order the views and services check it."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema

from lukittu import openapi as shared
from lukittu.api import Code
from lukittu.fields import MAX_PAGE, PAGE_SIZES
from lukittu.openapi import (
    BAD_QUERY,
    BODY_ERRORS,
    EXAMPLE_TIMESTAMP,
    IDEMPOTENCY_ERRORS,
    INTERNAL_ERROR,
    INVALID_TEAM_ID,
    PRECONDITION_FAILED,
    RATE_LIMITED,
    UNAUTHORIZED,
    ErrorCase,
    add_errors,
    json_request,
    one,
    page_response,
    path_parameter,
    register,
)
from webhooks import services
from webhooks.events import EVENT_TYPES, TEST_EVENT
from webhooks.shapes import WebhookData, WebhookDelivery, WebhookWithSecret

Schema = dict[str, Any]
TAG = "Dev - Webhooks"
EXAMPLE_TEAM_ID = "123e4567-e89b-12d3-a456-426614174000"
EXAMPLE_WEBHOOK_ID = "3f2b8c1e-5d4a-4b6c-9e7f-1a2b3c4d5e6f"
EXAMPLE_DELIVERY_ID = "8d7c6b5a-4e3f-4a1b-9c8d-7e6f5a4b3c2d"

# Webhook writes honour If-Match (under the row lock) and Idempotency-Key like the catalog's;
# ``lukittu.openapi`` then documents those headers and the ETag they answer with.
shared.CONDITIONAL_READS.add("getWebhook")
shared.CONDITIONAL_WRITES.update(
    {"createWebhook", "updateWebhook", "deleteWebhook", "rotateWebhookSecret"}
)

path_parameter(
    "WebhookIdPath", "webhookId", "The webhook's UUID, one of the team's.", EXAMPLE_WEBHOOK_ID
)
path_parameter(
    "DeliveryIdPath",
    "deliveryId",
    "The delivery's UUID, one of the webhook's.",
    EXAMPLE_DELIVERY_ID,
)

URL_RULE = "http or https (DEBUG)" if settings.DEBUG else "https"
WEBHOOK_BODY = register(
    "schemas",
    "WebhookBody",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "format": "uri",
                "maxLength": 500,
                "pattern": "^https?://" if settings.DEBUG else "^https://",
                "description": f"Where events are POSTed: {URL_RULE}, no credentials",
            },
            "events": {
                "type": "array",
                "items": {"type": "string", "enum": list(EVENT_TYPES)},
                "minItems": 1,
                "maxItems": len(EVENT_TYPES),
                "uniqueItems": True,
            },
            "active": {"type": "boolean", "default": True},
        },
        "required": ["url", "events"],
    },
)
ROTATE_BODY = register(
    "schemas",
    "RotateWebhookSecretBody",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "gracePeriodHours": {
                "type": "integer",
                "minimum": 0,
                "maximum": 168,
                "default": 24,
                "description": "How long the old secret signs too (0: it stops at once)",
            }
        },
    },
)

WEBHOOK_EXAMPLE = {
    "id": EXAMPLE_WEBHOOK_ID,
    "url": "https://example.com/hooks/lukittu",
    "events": ["release.created", "release.updated"],
    "active": True,
    "teamId": EXAMPLE_TEAM_ID,
    "disabledReason": None,
    "disabledAt": None,
    "failingSince": None,
    "previousSecretExpiresAt": None,
    "createdAt": EXAMPLE_TIMESTAMP,
    "updatedAt": EXAMPLE_TIMESTAMP,
}
SECRET_EXAMPLE = {**WEBHOOK_EXAMPLE, "secret": "whsec_" + "A" * 43 + "="}
DELIVERY_EXAMPLE = {
    "id": EXAMPLE_DELIVERY_ID,
    "webhookId": EXAMPLE_WEBHOOK_ID,
    "eventId": "0e1d2c3b-4a59-4687-b6a5-c4d3e2f1a0b9",
    "webhookMessageId": "msg_0e1d2c3b4a594687b6a5c4d3e2f1a0b9",
    "type": "release.updated",
    "state": "DELIVERED",
    "attemptCount": 1,
    "nextAttemptAt": None,
    "createdAt": EXAMPLE_TIMESTAMP,
    "attempts": [
        {
            "number": 1,
            "attemptedAt": EXAMPLE_TIMESTAMP,
            "statusCode": 200,
            "durationMs": 84,
            "error": None,
            "responseBody": "ok",
        }
    ],
}
BODY_EXAMPLE = {"url": "https://example.com/hooks/lukittu", "events": ["release.updated"]}

# --- Errors, in the order they are checked -----------------------------------------------------

INVALID_WEBHOOK_ID = ErrorCase(
    400, Code.BAD_REQUEST, "Invalid webhookId", "`webhookId` is not a UUID"
)
INVALID_DELIVERY_ID = ErrorCase(
    400, Code.BAD_REQUEST, "Invalid deliveryId", "`deliveryId` is not a UUID"
)
NOT_FOUND = ErrorCase.of(services.webhook_not_found(), "not a webhook of the team")
DELIVERY_NOT_FOUND = ErrorCase(
    404, Code.BAD_REQUEST, "Delivery not found", "not a delivery of the webhook"
)
DISABLED = ErrorCase.of(services.webhook_disabled(), "the webhook is not active")
TOO_MANY = ErrorCase.of(
    services.too_many_webhooks(), f"the team has {services.MAX_WEBHOOKS_PER_TEAM} webhooks"
)


def _head(*ids: ErrorCase) -> list[ErrorCase]:
    return [INVALID_TEAM_ID, *ids, UNAUTHORIZED, RATE_LIMITED]


add_errors("listWebhooks", lambda: [*_head(), BAD_QUERY, INTERNAL_ERROR])
add_errors(
    "createWebhook", lambda: [*_head(), *BODY_ERRORS, *IDEMPOTENCY_ERRORS, TOO_MANY, INTERNAL_ERROR]
)
add_errors(
    "getWebhook",
    lambda: [*_head(INVALID_WEBHOOK_ID), NOT_FOUND, shared.MALFORMED_IF_NONE_MATCH, INTERNAL_ERROR],
)
for _operation in ("updateWebhook", "rotateWebhookSecret"):
    add_errors(
        _operation,
        lambda: [
            *_head(INVALID_WEBHOOK_ID),
            *BODY_ERRORS,
            *IDEMPOTENCY_ERRORS,
            NOT_FOUND,
            PRECONDITION_FAILED,
            INTERNAL_ERROR,
        ],
    )
add_errors(
    "deleteWebhook",
    lambda: [
        *_head(INVALID_WEBHOOK_ID),
        *IDEMPOTENCY_ERRORS,
        NOT_FOUND,
        PRECONDITION_FAILED,
        INTERNAL_ERROR,
    ],
)
add_errors(
    "testWebhook",
    lambda: [*_head(INVALID_WEBHOOK_ID), *IDEMPOTENCY_ERRORS, NOT_FOUND, DISABLED, INTERNAL_ERROR],
)
add_errors(
    "listWebhookDeliveries",
    lambda: [*_head(INVALID_WEBHOOK_ID), NOT_FOUND, BAD_QUERY, INTERNAL_ERROR],
)
add_errors(
    "redeliverWebhookDelivery",
    lambda: [
        *_head(INVALID_WEBHOOK_ID, INVALID_DELIVERY_ID),
        *IDEMPOTENCY_ERRORS,
        NOT_FOUND,
        DELIVERY_NOT_FOUND,
        DISABLED,
        INTERNAL_ERROR,
    ],
)

# --- Operations --------------------------------------------------------------------------------

PAGE_PARAMETERS = [
    OpenApiParameter("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, default=1),
    OpenApiParameter("pageSize", {"type": "integer", "enum": list(PAGE_SIZES)}, default=25),
]
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    location=OpenApiParameter.HEADER,
    description="Makes a retry safe: the first answer to this key is stored for 24 hours and "
    "replayed (a second test event or redelivery is not queued).",
)


SIGNING = (
    "Each event is a POST of `{type, timestamp, data}` (`data`: the release, product or branch "
    "as the API returns it) signed with the secret: Standard Webhooks' `webhook-id`, "
    "`webhook-timestamp`, `webhook-signature` headers and Lukittu's `X-Lukittu-Event`, "
    "`X-Lukittu-Timestamp`, `X-Lukittu-Signature` (see docs/webhooks.md)."
)

list_webhooks = extend_schema(
    operation_id="listWebhooks",
    summary="List Webhooks",
    description="The team's webhooks, oldest first, one page at a time.",
    tags=[TAG],
    parameters=PAGE_PARAMETERS,
    responses={200: page_response(WebhookData, "webhooks", "Webhooks found", WEBHOOK_EXAMPLE)},
)
create_webhook = extend_schema(
    operation_id="createWebhook",
    summary="Create Webhook",
    description="A new endpoint for the team's events. The answer carries its `secret`: the "
    f"only time it is shown. {SIGNING}",
    tags=[TAG],
    **json_request(WEBHOOK_BODY, BODY_EXAMPLE),
    responses={
        201: one(
            WebhookWithSecret, "The webhook, with its secret", "Webhook created", SECRET_EXAMPLE
        )
    },
)
get_webhook = extend_schema(
    operation_id="getWebhook",
    summary="Get Webhook",
    tags=[TAG],
    responses={200: one(WebhookData, "The webhook", "Webhook found", WEBHOOK_EXAMPLE)},
)
update_webhook = extend_schema(
    operation_id="updateWebhook",
    summary="Update Webhook",
    description="Replace the URL, the events and the active flag (a missing `active` is true). "
    "Turning a webhook on clears why it was off and its failures.",
    tags=[TAG],
    **json_request(WEBHOOK_BODY, BODY_EXAMPLE),
    responses={200: one(WebhookData, "The webhook as stored", "Webhook updated", WEBHOOK_EXAMPLE)},
)
delete_webhook = extend_schema(
    operation_id="deleteWebhook",
    summary="Delete Webhook",
    description="Delete a webhook with its deliveries. The response is the webhook as it was.",
    tags=[TAG],
    responses={200: one(WebhookData, "The webhook as it was", "Webhook deleted", WEBHOOK_EXAMPLE)},
)
rotate_webhook_secret = extend_schema(
    operation_id="rotateWebhookSecret",
    summary="Rotate Webhook Secret",
    description="A new secret, shown this once. For `gracePeriodHours` (24 by default) the old "
    "secret signs too: `webhook-signature` carries both signatures, and "
    "`X-Lukittu-Previous-Signature` the old one's.",
    tags=[TAG],
    request={"application/json": ROTATE_BODY},
    responses={
        200: one(
            WebhookWithSecret,
            "The webhook, with its new secret",
            "Webhook secret rotated",
            {**SECRET_EXAMPLE, "previousSecretExpiresAt": EXAMPLE_TIMESTAMP},
        )
    },
)
test_webhook = extend_schema(
    operation_id="testWebhook",
    summary="Send Test Event",
    description=f"Queue a `{TEST_EVENT}` event for this webhook alone, whatever its events.",
    tags=[TAG],
    request=None,
    parameters=[IDEMPOTENCY_KEY],
    responses={
        201: one(
            WebhookDelivery,
            "The delivery queued",
            "Test event queued",
            {
                **DELIVERY_EXAMPLE,
                "type": TEST_EVENT,
                "state": "PENDING",
                "attemptCount": 0,
                "nextAttemptAt": EXAMPLE_TIMESTAMP,
                "attempts": [],
            },
        )
    },
)
list_webhook_deliveries = extend_schema(
    operation_id="listWebhookDeliveries",
    summary="List Webhook Deliveries",
    description="The webhook's delivery log, newest first: each attempt's time, status, "
    "duration, error and the first KiB of the answer.",
    tags=[TAG],
    parameters=PAGE_PARAMETERS,
    responses={
        200: page_response(WebhookDelivery, "deliveries", "Deliveries found", DELIVERY_EXAMPLE)
    },
)
redeliver_webhook = extend_schema(
    operation_id="redeliverWebhookDelivery",
    summary="Redeliver",
    description="Send the delivery's event again, as a new delivery with the same `webhook-id`.",
    tags=[TAG],
    request=None,
    parameters=[IDEMPOTENCY_KEY],
    responses={
        201: one(
            WebhookDelivery,
            "The new delivery, queued",
            "Redelivery queued",
            {
                **DELIVERY_EXAMPLE,
                "state": "PENDING",
                "attemptCount": 0,
                "nextAttemptAt": EXAMPLE_TIMESTAMP,
                "attempts": [],
            },
        )
    },
)
