"""The admin's HISTORY button opens the object's audit trail: every write to it, made through
the API, a command or the admin, with who made it. (Django's own history, which knows only
this admin's saves, said a release made through the API had none.)"""

import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from releases.catalog import branch_update, product_update
from releases.models import Release
from teams.models import ApiKey, AuditLog
from teams.roles import VIEWER
from teams.services import Actor, license_update, team_update
from tests.helpers import put_release, update_data


def trail(page: str) -> list[tuple[str, str]]:
    """(actor, action) of each row of the history table, newest first."""
    return re.findall(
        r'<td class="field-actor">([^<]*)</td>\s*<td class="field-action">([^<]*)</td>', page
    )


def test_a_releases_history_is_its_audit_trail(staff, world, client):
    for version in ("1.0.1", "1.0.2"):
        response = put_release(
            client,
            world.team.id,
            world.release.id,
            key=world.key,
            data=update_data(world.release, version=version),
        )
        assert response.status_code == 200
    key_label = ApiKey.objects.get(team=world.team).prefix

    page = staff.get(f"/admin/releases/release/{world.release.pk}/history/").content.decode()

    assert trail(page) == [(key_label, "release.update"), (key_label, "release.update")]
    assert "have a change history" not in page
    # The newest first, each linked to its entry in the audit log, and a link to all of them.
    newest = AuditLog.objects.filter(target_id=str(world.release.pk)).latest("created_at")
    assert f"/admin/teams/auditlog/{newest.pk}/change/" in page
    assert f"?target_type=release&amp;target_id={world.release.pk}" in page
    # Another release's entries are not in it.
    assert str(world.other_release.pk) not in page


def test_a_keys_history_shows_the_operators_writes(staff, world):
    key = ApiKey.objects.get(team=world.team)
    staff.post(
        "/admin/teams/apikey/",
        {"action": "revoke", "_selected_action": [str(key.pk)], "post": "yes"},
    )
    staff.post(f"/admin/teams/apikey/{key.pk}/change/", {"name": "renamed"})

    page = staff.get(f"/admin/teams/apikey/{key.pk}/history/").content.decode()

    assert trail(page) == [
        ("operator:operator", "api_key.update"),
        ("operator:operator", "api_key.revoke"),
    ]


ACTOR = Actor(label="operator:someone")

WRITES = {
    "teams/team": lambda w: (w.team, team_update(team=w.team, changes={"name": "N"}, actor=ACTOR)),
    "teams/license": lambda w: (
        w.licenses[0],
        license_update(license=w.licenses[0], changes={"suspended": True}, actor=ACTOR),
    ),
    "releases/product": lambda w: (
        w.product,
        product_update(product=w.product, changes={"name": "N", "url": None}, actor=ACTOR),
    ),
    "releases/branch": lambda w: (
        w.branch,
        branch_update(branch=w.branch, changes={"name": "n"}, actor=ACTOR),
    ),
}


@pytest.mark.parametrize("model", sorted(WRITES))
def test_every_audited_object_has_its_trail(staff, world, model):
    obj, _ = WRITES[model](world)
    target_type = {"teams/team": "team", "teams/license": "license"}.get(model, model.split("/")[1])

    page = staff.get(f"/admin/{model}/{obj.pk}/history/").content.decode()

    assert trail(page) == [("operator:someone", f"{target_type}.update")]


def test_a_viewer_sees_the_trail_and_an_outsider_to_the_admin_does_not(world, client):
    Release.objects.filter(pk=world.release.pk).update(version="1.0.0")
    viewer = User.objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWER))
    viewing = Client()
    viewing.force_login(viewer)
    nobody = User.objects.create_user("nobody", password="pw-for-tests-only", is_staff=True)
    outsider = Client()
    outsider.force_login(nobody)
    url = f"/admin/releases/release/{world.release.pk}/history/"

    assert viewing.get(url).status_code == 200
    assert outsider.get(url).status_code == 403


def test_an_unknown_object_leads_back_to_the_list(staff, db):
    response = staff.get("/admin/releases/release/00000000-0000-0000-0000-000000000000/history/")

    assert response.status_code == 302
