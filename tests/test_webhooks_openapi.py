"""The webhook operations in the OpenAPI document: each documented with its error table, and
real answers valid against the documented shapes."""

import pytest
from django.utils import timezone

from tests.test_openapi import assert_valid, response_schema, table_in
from tests.test_webhooks_helpers import make_endpoint
from webhooks.events import emit
from webhooks.models import WebhookAttempt, WebhookDelivery

HOOKS = "/api/v1/dev/teams/{teamId}/webhooks"
ONE = f"{HOOKS}/{{webhookId}}"
OPERATIONS = {
    "listWebhooks": (HOOKS, "get", "200"),
    "createWebhook": (HOOKS, "post", "201"),
    "getWebhook": (ONE, "get", "200"),
    "updateWebhook": (ONE, "put", "200"),
    "deleteWebhook": (ONE, "delete", "200"),
    "rotateWebhookSecret": (f"{ONE}/rotate-secret", "post", "200"),
    "testWebhook": (f"{ONE}/test", "post", "201"),
    "listWebhookDeliveries": (f"{ONE}/deliveries", "get", "200"),
    "redeliverWebhookDelivery": (f"{ONE}/deliveries/{{deliveryId}}/redeliver", "post", "201"),
}


@pytest.fixture
def document(client):
    return client.get("/api/schema/?format=json").json()


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_every_webhook_operation_is_documented(document, operation_id):
    path, method, success = OPERATIONS[operation_id]
    operation = document["paths"][path][method]

    assert operation["operationId"] == operation_id
    assert operation["summary"]
    assert operation["tags"] == ["Dev - Webhooks"]
    assert operation["security"] == [{"bearerAuth": []}]
    table = table_in(operation["description"])
    assert table[0] == (400, "BAD_REQUEST", "Invalid teamId")
    assert table[-1] == (500, "INTERNAL_SERVER_ERROR", "Internal server error")
    statuses = sorted({str(status) for status, _, _ in table} | {success})
    assert [status for status in operation["responses"] if status[0] != "3"] == [
        *statuses,
        "4XX",
        "5XX",
    ]
    if path != HOOKS:
        assert (404, "BAD_REQUEST", "Webhook not found") in table


def test_real_answers_match_the_document(client, document, world):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.key}"}
    base = f"/api/v1/dev/teams/{world.team.id}/webhooks"
    body = {"url": "https://hooks.example.com/in", "events": ["release.updated"]}
    created = client.post(base, data=body, content_type="application/json", **auth)
    webhook_id = created.json()["data"]["id"]
    endpoint, _ = make_endpoint(world.team, "https://hooks.example.com/other")
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).get()
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=1,
        attempted_at=timezone.now(),
        status_code=None,
        duration_ms=3,
        error="ConnectError: refused",
    )
    one = f"{base}/{endpoint.id}"
    answers = {
        "createWebhook": created,
        "listWebhooks": client.get(base, **auth),
        "getWebhook": client.get(f"{base}/{webhook_id}", **auth),
        "updateWebhook": client.put(
            f"{base}/{webhook_id}", data=body, content_type="application/json", **auth
        ),
        "rotateWebhookSecret": client.post(
            f"{one}/rotate-secret", content_type="application/json", **auth
        ),
        "testWebhook": client.post(f"{one}/test", **auth),
        "listWebhookDeliveries": client.get(f"{one}/deliveries", **auth),
        "redeliverWebhookDelivery": client.post(
            f"{one}/deliveries/{delivery.id}/redeliver", **auth
        ),
        "deleteWebhook": client.delete(f"{base}/{webhook_id}", **auth),
    }

    for operation_id, response in answers.items():
        path, method, status = OPERATIONS[operation_id]
        assert str(response.status_code) == status, (operation_id, response.json())
        assert_valid(document, response_schema(document, path, method, status), response.json())
    bad = client.get(f"{base}/not-a-uuid", **auth)
    assert_valid(document, response_schema(document, ONE, "get", "400"), bad.json())
