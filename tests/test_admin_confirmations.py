"""Revoking a key, suspending a license and deleting a team ask first: the action shows a
confirmation page listing the objects and changes nothing; only its "Yes" (which posts the
action again with ``post=yes``) does it. As Django's own delete does."""

import pytest

from teams.models import ApiKey, AuditLog, License, Team

ACTIONS = [
    ("teams/apikey", "revoke", "Revoke these API keys?"),
    ("teams/license", "suspend", "Suspend these licenses?"),
    ("teams/team", "soft_delete", "Delete these teams?"),
]


def target(world, model: str):
    return {
        "teams/apikey": lambda: ApiKey.objects.get(team=world.team),
        "teams/license": lambda: world.licenses[0],
        "teams/team": lambda: world.team,
    }[model]()


def state(world) -> tuple:
    key = ApiKey.objects.get(team=world.team)
    return (
        key.revoked_at,
        License.objects.get(pk=world.licenses[0].pk).suspended,
        Team.objects.get(pk=world.team.pk).deleted_at,
        AuditLog.objects.count(),
    )


@pytest.mark.parametrize(("model", "action", "question"), ACTIONS)
def test_the_action_asks_first_and_changes_nothing(staff, world, model, action, question):
    obj = target(world, model)
    before = state(world)

    response = staff.post(f"/admin/{model}/", {"action": action, "_selected_action": [obj.pk]})

    assert response.status_code == 200
    page = response.content.decode()
    assert question in page
    assert str(obj) in page
    # The form posts the same action and objects back, confirmed.
    assert f'name="action" value="{action}"' in page
    assert f'name="_selected_action" value="{obj.pk}"' in page
    assert 'name="post" value="yes"' in page
    assert "No, take me back" in page
    assert state(world) == before


@pytest.mark.parametrize(("model", "action", "question"), ACTIONS)
def test_yes_does_it(staff, world, model, action, question):
    obj = target(world, model)

    response = staff.post(
        f"/admin/{model}/", {"action": action, "_selected_action": [obj.pk], "post": "yes"}
    )

    assert response.status_code == 302
    revoked_at, suspended, deleted_at, _ = state(world)
    done = {
        "teams/apikey": revoked_at is not None,
        "teams/license": suspended,
        "teams/team": deleted_at is not None,
    }
    assert done[model]
    assert AuditLog.objects.filter(actor="operator:operator").count() == 1


def test_reinstating_does_not_ask(staff, world):
    license = world.licenses[0]
    License.objects.filter(pk=license.pk).update(suspended=True)

    response = staff.post(
        "/admin/teams/license/", {"action": "reinstate", "_selected_action": [license.pk]}
    )

    assert response.status_code == 302
    assert not License.objects.get(pk=license.pk).suspended
