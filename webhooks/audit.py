"""The audit entry of a change to a webhook endpoint, for the team's writes (services) and the
worker's own (the sender disabling a failing endpoint) alike."""

from collections.abc import Mapping
from typing import Any

from teams.services import AuditActor, log_action
from webhooks.models import WebhookEndpoint
from webhooks.selectors import webhook_payload


def log_endpoint_action(
    actor: AuditActor | None,
    endpoint: WebhookEndpoint,
    action: str,
    request_data: Mapping[str, Any] | None,
    result: Mapping[str, Any] | None = None,
) -> None:
    """``result`` defaults to the endpoint as it is now."""
    log_action(
        actor=actor,
        team=endpoint.team,
        action=action,
        target_id=endpoint.pk,
        request_data=request_data,
        result=webhook_payload(endpoint) if result is None else result,
    )
