"""Emitting events: called by the write services inside their transaction, next to the audit
entry, so the event and its deliveries commit or roll back with the change.

``emit`` writes nothing when no active endpoint of the team wants the event (one ``SELECT``);
otherwise one event row and one delivery per endpoint that wants it. After commit each
delivery's task is enqueued; if that never happens (the process dies first), the worker's
sweep finds the delivery by ``next_attempt_at`` all the same.
"""

import json
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from lukittu.api import iso_utc
from lukittu.sql import Output, Statement, Writer, instance, param
from teams.models import Team
from webhooks.models import (  # noqa: F401 (the event names, imported from here too)
    EVENT_TYPES,
    TEST_EVENT,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.tasks import enqueue_deliveries


def event_body(event_type: str, data: dict[str, Any]) -> str:
    """The exact JSON sent (and signed): compact, ASCII only, so its bytes are unambiguous."""
    payload = {"type": event_type, "timestamp": iso_utc(timezone.now()), "data": data}
    return json.dumps(payload, separators=(",", ":"))


_ENDPOINT_FIELDS = tuple(field.name for field in WebhookEndpoint._meta.concrete_fields)


def _write_active_endpoints(sql: Writer, variant: object) -> tuple[str, list[Output]]:
    """``WebhookEndpoint.objects.filter(team=..., active=True)`` in the model's order: every
    write of a release, product or branch asks it inside its transaction, and building it with
    the ORM cost more than running it (a team with no endpoint gets no row)."""
    outputs = sql.columns("e", _ENDPOINT_FIELDS)
    # S608: only the model's quoted table and column names; the values are parameters.
    text = (
        f"SELECT {sql.select(outputs)} FROM {sql.table('e')} "  # noqa: S608
        f"WHERE {sql.col('e.team')} = %s AND {sql.col('e.active')} = %s "
        f"ORDER BY {sql.col('e.created_at')} ASC, {sql.col('e.id')} ASC"
    )
    return text, outputs


_ACTIVE_ENDPOINTS = Statement({"e": WebhookEndpoint}, _write_active_endpoints)


def active_endpoints(team: Team) -> list[WebhookEndpoint]:
    rows = _ACTIVE_ENDPOINTS.rows(
        [param(WebhookEndpoint, "team", team.pk), param(WebhookEndpoint, "active", True)]
    )
    endpoints = [instance(WebhookEndpoint, _ENDPOINT_FIELDS, row) for row in rows]
    return [endpoint for endpoint in endpoints if endpoint is not None]


def record_event(
    team: Team, event_type: str, data: dict[str, Any], endpoints: Iterable[WebhookEndpoint]
) -> list[WebhookDelivery]:
    """The event and one pending delivery per endpoint, each enqueued once committed."""
    endpoints = list(endpoints)
    if not endpoints:
        return []
    event = WebhookEvent.objects.create(
        team=team, type=event_type, body=event_body(event_type, data)
    )
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now)
        for endpoint in endpoints
    )
    enqueue_on_commit([delivery.pk for delivery in deliveries])
    return deliveries


def enqueue_on_commit(delivery_ids: list[uuid.UUID]) -> None:
    # robust: the change is committed whatever happens here; a delivery whose task could not
    # be enqueued is found by the worker's sweep.
    transaction.on_commit(lambda: enqueue_deliveries(delivery_ids), robust=True)


def emit(team: Team, event_type: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Record ``event_type`` with ``data`` (the object as the API returns it) for every active
    endpoint of ``team`` that subscribes to it. Call it inside the change's transaction."""
    subscribers = (e for e in active_endpoints(team) if event_type in e.events)
    return record_event(team, event_type, data, subscribers)
