"""Every timestamp in the admin reads one way, to the second and with its zone
(``2026-01-02 03:04:05 UTC``), in lists, forms and the hand-made tables alike; Django's English
default ("Jan. 2, 2026, 3:04 a.m.") appears nowhere."""

import re

from delivery.models import Download
from teams.models import ApiKey
from teams.services import Actor, team_update
from tests.helpers import make_download
from tests.test_webhooks_helpers import make_endpoint
from webhooks.events import emit

OURS = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b")
DJANGOS_DEFAULT = re.compile(
    r"\b(Jan|Feb|March|April|May|June|July|Aug|Sept|Oct|Nov|Dec)\.? \d{1,2}, \d{4}"
    r"|\d(:\d\d)? [ap]\.m\.|\bmidnight\b|\bnoon\b"
)


def test_one_format_everywhere(staff, world):
    team_update(team=world.team, changes={"name": "Renamed"}, actor=Actor(label="op"))
    make_endpoint(world.team, "https://hooks.example.com/in")
    emit(world.team, "release.updated", {"id": "a"})
    make_download(world.release, world.licenses[0], "1.0.0", endpoint=Download.Endpoint.DOWNLOAD)
    key = ApiKey.objects.get(team=world.team)
    pages = [
        f"/admin/teams/team/{world.team.pk}/change/",
        f"/admin/teams/team/{world.team.pk}/history/",
        f"/admin/teams/apikey/{key.pk}/change/",
        f"/admin/teams/license/{world.licenses[0].pk}/change/",
        "/admin/teams/auditlog/",
        "/admin/releases/release/",
        f"/admin/releases/release/{world.release.pk}/change/",
        "/admin/releases/product/",
        "/admin/webhooks/webhookdelivery/",
        "/admin/delivery/download/",
    ]
    for page_path in pages:
        response = staff.get(page_path)
        assert response.status_code == 200, page_path
        page = response.content.decode()

        assert OURS.search(page), f"{page_path}: no timestamp in the admin's format"
        assert not DJANGOS_DEFAULT.search(page), (
            f"{page_path}: {DJANGOS_DEFAULT.search(page).group(0)!r}"
        )
