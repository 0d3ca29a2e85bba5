"""A release write's webhook events: ``release.created`` or ``release.updated`` for the
release, and ``release.updated`` for each release of its line that lost ``latest`` to it.
Recorded through ``webhooks.events``, inside the write's transaction."""

import uuid
from dataclasses import dataclass, field
from typing import Any

from releases.models import Branch, Product, Release
from releases.serializers import release_payload
from teams.models import Team
from webhooks.events import active_endpoints, record_event
from webhooks.models import WebhookEndpoint


@dataclass
class ReleaseWrite:
    """A release write's events: ``release.created`` or ``release.updated`` for the release,
    and ``release.updated`` for each release of its line that lost ``latest`` to it. Made
    before the write (when it can still see which releases are latest), emitted after it."""

    team: Team
    endpoints: list[WebhookEndpoint]
    latest_before: list[uuid.UUID] = field(default_factory=list)

    def emit(self, payload: dict[str, Any], *, created: bool) -> None:
        event_type = "release.created" if created else "release.updated"
        record_event(self.team, event_type, payload, self.wanting(event_type))
        if self.latest_before:
            self._emit_demoted()

    def wanting(self, event_type: str) -> list[WebhookEndpoint]:
        """The team's active endpoints that subscribe to ``event_type``."""
        return [endpoint for endpoint in self.endpoints if event_type in endpoint.events]

    def _emit_demoted(self) -> None:
        demoted = (
            Release.objects.filter(pk__in=self.latest_before, latest=False)
            .select_related("product", "branch", "file")
            .prefetch_related("metadata", "license_links")
            .order_by("created_at", "id")
        )
        subscribers = self.wanting("release.updated")
        for release in demoted:
            record_event(self.team, "release.updated", release_payload(release), subscribers)


def release_write(
    team: Team, release: Release, product: Product, branch: Branch | None
) -> ReleaseWrite:
    """Before a create or update of ``release`` onto ``product`` and ``branch``: the team's
    active endpoints and, only when one wants ``release.updated``, the other releases of that
    line that are latest now, so ``ReleaseWrite.emit`` can report those the write demoted."""
    write = ReleaseWrite(team=team, endpoints=active_endpoints(team))
    if write.wanting("release.updated"):
        write.latest_before = list(
            Release.objects.filter(product=product, branch=branch, latest=True)
            .exclude(pk=release.pk)
            .values_list("pk", flat=True)
        )
    return write
