"""A release write's webhook events: ``release.created`` or ``release.updated`` for the
release, and ``release.updated`` for each release of its line that lost ``latest`` to it.
Recorded through ``webhooks.events``, inside the write's transaction."""

import uuid
from typing import Any

from releases.models import Release
from releases.serializers import release_payload
from teams.models import Team
from webhooks.events import active_endpoints, record_event


def emit_release_write(
    team: Team, payload: dict[str, Any], *, created: bool, demoted: list[uuid.UUID]
) -> None:
    """After a create or update of the release shown as ``payload``: its event, and one
    ``release.updated`` for each release in ``demoted``, the rows the write itself took
    ``latest`` from, as they are now."""
    endpoints = active_endpoints(team)
    event_type = "release.created" if created else "release.updated"
    record_event(team, event_type, payload, [e for e in endpoints if event_type in e.events])
    subscribers = [endpoint for endpoint in endpoints if "release.updated" in endpoint.events]
    if not demoted or not subscribers:
        return
    releases = (
        Release.objects.filter(pk__in=demoted)
        .select_related("product", "branch", "file")
        .prefetch_related("metadata", "license_links")
        .order_by("created_at", "id")
    )
    for release in releases:
        record_event(team, "release.updated", release_payload(release), subscribers)
