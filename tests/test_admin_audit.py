"""One audit trail: every admin change to teams, keys, licenses, products and branches is an
AuditLog row naming the operator, their address and browser; the log is found from a release
and searched by target id and by version."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client

from releases.models import Branch, Product
from releases.services import Actor, ReleaseChanges, release_update
from teams.models import MEGABYTE, ApiKey, AuditLog, License, Team
from tests.helpers import assert_admin_refuses_names

BROWSER = "Mozilla/5.0 (audit test)"
OPERATOR = "operator:operator"


@pytest.fixture
def staff(db: None) -> Client:
    user = User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client = Client(HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="192.0.2.7")
    client.force_login(user)
    return client


def only_entry(**filters) -> AuditLog:
    """The one entry the admin wrote, checked for what every operator entry carries."""
    entry = AuditLog.objects.get(**filters)
    assert (entry.actor, entry.api_key_id) == (OPERATOR, None)
    assert (entry.ip_address, entry.user_agent) == ("192.0.2.7", BROWSER)
    return entry


def no_secrets(entry: AuditLog, *secrets: str) -> None:
    logged = json.dumps([entry.request_data, entry.result])
    for secret in secrets:
        assert secret not in logged
    for name in ("digest", "key_digest", "key_hint"):
        assert f'"{name}"' not in logged


def action_post(staff: Client, changelist: str, action: str, *pks) -> None:
    """Run the action, confirmed (``post=yes``) where it asks first."""
    response = staff.post(
        changelist,
        {"action": action, "_selected_action": [str(pk) for pk in pks], "post": "yes"},
    )
    assert response.status_code == 302


# --- Teams -----------------------------------------------------------------------------------


def test_adding_a_team(staff, db):
    response = staff.post(
        "/admin/teams/team/add/",
        {
            "name": "Acme",
            "storage_limit_mb": 250,
            "file_uploads_enabled": "on",
            "max_releases_per_product": 10,
            "max_branches_per_product": 10,
            "seat_timeout_minutes": 30,
        },
    )

    assert response.status_code == 302
    team = Team.objects.get(name="Acme")
    entry = only_entry(action="team.create")
    assert (entry.team_id, entry.target_type, entry.target_id) == (team.pk, "team", str(team.pk))
    assert entry.request_data == {
        "name": "Acme",
        "file_uploads_enabled": True,
        "storage_limit_bytes": 250 * MEGABYTE,
        "max_releases_per_product": 10,
        "max_branches_per_product": 10,
        "seat_timeout_minutes": 30,
    }
    assert entry.result["storage_limit_bytes"] == 250 * MEGABYTE


def test_changing_a_team_records_only_the_changed_fields(staff, world):
    response = staff.post(
        f"/admin/teams/team/{world.team.pk}/change/",
        {
            "name": "Renamed",
            "storage_limit_mb": 100,  # unchanged
            "file_uploads_enabled": "on",  # unchanged
            "max_releases_per_product": 100,  # unchanged
            "max_branches_per_product": 10,
        },
    )

    assert response.status_code == 302
    entry = only_entry(action="team.update")
    assert entry.request_data == {"name": "Renamed"}
    assert entry.result["name"] == "Renamed" and entry.target_id == str(world.team.pk)


def test_saving_an_unchanged_team_records_nothing(staff, world):
    staff.post(
        f"/admin/teams/team/{world.team.pk}/change/",
        {
            "name": world.team.name,
            "storage_limit_mb": 100,
            "file_uploads_enabled": "on",
            "max_releases_per_product": 100,
            "max_branches_per_product": 10,
        },
    )

    assert not AuditLog.objects.exists()


def test_soft_deleting_a_team(staff, world):
    action_post(staff, "/admin/teams/team/", "soft_delete", world.team.pk)

    entry = only_entry(action="team.soft_delete")
    assert entry.target_id == str(world.team.pk)
    assert entry.request_data["deleted_at"] and entry.result["deleted_at"]
    # Again: nothing changes, nothing is recorded.
    action_post(staff, "/admin/teams/team/", "soft_delete", world.team.pk)
    assert AuditLog.objects.count() == 1


# --- API keys --------------------------------------------------------------------------------


def test_adding_a_key_records_it_without_the_key(staff, world):
    response = staff.post(
        "/admin/teams/apikey/add/", {"team": world.team.pk, "name": "ci"}, follow=True
    )

    plain = next(m for m in map(str, get_messages(response.wsgi_request)) if "Copy it" in m)
    plain = plain.rsplit(" ", 1)[-1]
    key = ApiKey.objects.get(name="ci")
    entry = only_entry(action="api_key.create")
    assert (entry.team_id, entry.target_type, entry.target_id) == (
        world.team.pk,
        "api_key",
        str(key.pk),
    )
    assert entry.request_data == {"name": "ci", "expires_at": None}
    assert entry.result["prefix"] == key.prefix
    no_secrets(entry, plain, key.digest)


def test_renaming_a_key(staff, world):
    key = ApiKey.objects.get(team=world.team)

    response = staff.post(f"/admin/teams/apikey/{key.pk}/change/", {"name": "deploy"})

    assert response.status_code == 302
    entry = only_entry(action="api_key.update")
    assert entry.request_data == {"name": "deploy"} and entry.target_id == str(key.pk)
    no_secrets(entry, world.key, key.digest)


def test_revoking_a_key(staff, world):
    key = ApiKey.objects.get(team=world.team)

    action_post(staff, "/admin/teams/apikey/", "revoke", key.pk)

    entry = only_entry(action="api_key.revoke")
    assert entry.target_id == str(key.pk) and entry.result["revoked_at"]
    no_secrets(entry, world.key, key.digest)


# --- Licenses --------------------------------------------------------------------------------


def test_adding_a_license_records_it_without_its_key(staff, world):
    response = staff.post(
        "/admin/teams/license/add/",
        {"team": world.team.pk, "products": [world.product.pk], "hwid_limit": 2},
        follow=True,
    )

    plain = next(m for m in map(str, get_messages(response.wsgi_request)) if "Copy its" in m)
    plain = plain.rsplit(" ", 1)[-1]
    license = world.team.licenses.order_by("-created_at").first()
    entry = only_entry(action="license.create")
    assert entry.target_id == str(license.pk)
    assert entry.request_data == {
        "products": [str(world.product.pk)],
        "ip_limit": None,
        "hwid_limit": 2,
        "suspended": False,
        "expires_at": None,
    }
    assert entry.result["products"] == [str(world.product.pk)]
    assert list(license.products.all()) == [world.product]
    no_secrets(entry, plain, license.key_digest, license.key_hint)


def test_suspending_a_license_on_its_page(staff, world):
    license = world.licenses[0]

    response = staff.post(
        f"/admin/teams/license/{license.pk}/change/",
        {"suspended": "on", "expires_at_0": "", "expires_at_1": ""},
    )

    assert response.status_code == 302
    entry = only_entry(action="license.update")
    assert entry.request_data == {"suspended": True} and entry.result["suspended"] is True


def test_suspending_licenses_with_the_action(staff, world):
    first, second, _ = world.licenses

    action_post(staff, "/admin/teams/license/", "suspend", first.pk, second.pk)

    entries = AuditLog.objects.filter(action="license.update", actor=OPERATOR)
    assert {e.target_id for e in entries} == {str(first.pk), str(second.pk)}
    assert all(e.request_data == {"suspended": True} for e in entries)
    assert License.objects.filter(suspended=True).count() == 2


def test_deleting_a_license(staff, world):
    license = world.licenses[0]

    response = staff.post(f"/admin/teams/license/{license.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not License.objects.filter(pk=license.pk).exists()
    entry = only_entry(action="license.delete")
    assert entry.target_id == str(license.pk) and entry.result["id"] == str(license.pk)
    no_secrets(entry, license.key_digest, license.key_hint)


def test_deleting_licenses_with_the_bulk_action(staff, world):
    pks = [license.pk for license in world.licenses[:2]]

    staff.post(
        "/admin/teams/license/",
        {"action": "delete_selected", "_selected_action": [str(pk) for pk in pks], "post": "yes"},
    )

    assert not License.objects.filter(pk__in=pks).exists()
    targets = AuditLog.objects.filter(action="license.delete").values_list("target_id", flat=True)
    assert set(targets) == {str(pk) for pk in pks}


# --- Products and branches -------------------------------------------------------------------

NO_BRANCHES = {"branches-TOTAL_FORMS": "0", "branches-INITIAL_FORMS": "0"}


def test_adding_a_product_with_a_branch_inline(staff, world):
    response = staff.post(
        "/admin/releases/product/add/",
        {
            "team": world.team.pk,
            "name": "Plugin",
            "url": "https://example.com/plugin",
            "branches-TOTAL_FORMS": "1",
            "branches-INITIAL_FORMS": "0",
            "branches-0-name": "nightly",
        },
    )

    assert response.status_code == 302
    product = Product.objects.get(name="Plugin")
    branch = Branch.objects.get(product=product, name="nightly")
    created = only_entry(action="product.create")
    assert (created.team_id, created.target_type, created.target_id) == (
        world.team.pk,
        "product",
        str(product.pk),
    )
    assert created.request_data == {
        "team": str(world.team.pk),
        "name": "Plugin",
        "url": "https://example.com/plugin",
    }
    assert only_entry(action="branch.create").target_id == str(branch.pk)


def test_changing_a_product(staff, world):
    response = staff.post(
        f"/admin/releases/product/{world.product.pk}/change/",
        {"name": "Owner App", "url": "https://example.com/app", **NO_BRANCHES},
    )

    assert response.status_code == 302
    entry = only_entry(action="product.update")
    assert entry.request_data == {"url": "https://example.com/app"}
    assert entry.result["team"] == str(world.team.pk)


def test_renaming_and_deleting_branches_inline(staff, world):
    spare = Branch.objects.create(product=world.product, name="spare")
    response = staff.post(
        f"/admin/releases/product/{world.product.pk}/change/",
        {
            "name": "Owner App",
            "url": "",
            "branches-TOTAL_FORMS": "2",
            "branches-INITIAL_FORMS": "2",
            "branches-0-id": str(world.branch.pk),
            "branches-0-product": str(world.product.pk),
            "branches-0-name": "rc",
            "branches-1-id": str(spare.pk),
            "branches-1-product": str(world.product.pk),
            "branches-1-name": "spare",
            "branches-1-DELETE": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert only_entry(action="branch.update").request_data == {"name": "rc"}
    assert only_entry(action="branch.delete").target_id == str(spare.pk)
    assert list(world.product.branches.values_list("name", flat=True)) == ["rc"]
    assert not AuditLog.objects.filter(action="product.update").exists()


def test_deleting_a_product(staff, world):
    product = Product.objects.create(team=world.team, name="Empty")

    response = staff.post(f"/admin/releases/product/{product.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    entry = only_entry(action="product.delete")
    assert entry.target_id == str(product.pk) and entry.result["name"] == "Empty"


def test_branch_add_change_and_delete(staff, world):
    staff.post("/admin/releases/branch/add/", {"product": world.product.pk, "name": "lts"})
    branch = Branch.objects.get(name="lts")
    staff.post(f"/admin/releases/branch/{branch.pk}/change/", {"name": "lts-2"})
    staff.post(f"/admin/releases/branch/{branch.pk}/delete/", {"post": "yes"})

    entries = AuditLog.objects.filter(target_id=str(branch.pk)).order_by("id")
    assert [(e.action, e.actor, e.request_data) for e in entries] == [
        ("branch.create", OPERATOR, {"product": str(world.product.pk), "name": "lts"}),
        ("branch.update", OPERATOR, {"name": "lts-2"}),
        ("branch.delete", OPERATOR, None),
    ]
    assert all(e.team_id == world.team.pk for e in entries)


def test_the_branch_limit_is_a_form_error_in_the_admin(staff, world):
    world.team.max_branches_per_product = 1
    world.team.save()

    added = staff.post("/admin/releases/branch/add/", {"product": world.product.pk, "name": "x"})
    inline = staff.post(
        f"/admin/releases/product/{world.product.pk}/change/",
        {
            "name": "Owner App",
            "url": "",
            "branches-TOTAL_FORMS": "2",
            "branches-INITIAL_FORMS": "1",
            "branches-0-id": str(world.branch.pk),
            "branches-0-product": str(world.product.pk),
            "branches-0-name": "beta",
            "branches-1-name": "second",
        },
    )

    for response in (added, inline):
        assert response.status_code == 200
        assert "allows 1 branches per product" in response.content.decode()
    assert list(world.product.branches.values_list("name", flat=True)) == ["beta"]
    assert not AuditLog.objects.filter(action="branch.create").exists()


def test_a_product_made_in_the_admin_names_its_operator(staff, world):
    from teams.models import operator_creator_id

    staff.post(
        "/admin/releases/product/add/",
        {"team": world.team.pk, "name": "Mine", "url": "", **NO_BRANCHES},
    )

    product = Product.objects.get(name="Mine")
    assert product.created_by_user_id == operator_creator_id(OPERATOR)


def test_a_name_with_a_line_break_is_a_form_error_in_the_admin(staff, world):
    assert_admin_refuses_names(
        staff, world, "Two\nlines", "rc\t1", "Must not contain control characters"
    )


# --- Reading the log -------------------------------------------------------------------------


def _update(world, release, version: str) -> None:
    release_update(
        actor=Actor(team=world.team, label="operator:test"),
        release_id=release.pk,
        changes=ReleaseChanges(
            version=version,
            product_id=release.product_id,
            status=release.status,
            set_as_latest=False,
            keep_existing_file=True,
            branch_id=None,
            metadata=[],
            license_ids=[],
        ),
        upload=None,
        max_file_bytes=MEGABYTE,
    )


def test_a_release_page_links_to_its_audit_entries(staff, world):
    _update(world, world.release, "1.0.1")
    _update(world, world.other_release, "0.9.1")

    page = staff.get(f"/admin/releases/release/{world.release.pk}/change/").content.decode()
    link = f"/admin/teams/auditlog/?target_id={world.release.pk}"
    assert f'href="{link}"' in page and "1 audit entry" in page

    listed = staff.get(link)
    assert listed.status_code == 200
    assert [entry.target_id for entry in listed.context["cl"].result_list] == [
        str(world.release.pk)
    ]


def test_the_log_is_searched_by_version_and_by_target_id(staff, world):
    _update(world, world.release, "7.7.7-beta")
    _update(world, world.other_release, "0.9.1")

    def found(term: str) -> list[str]:
        response = staff.get("/admin/teams/auditlog/", {"q": term})
        return [entry.target_id for entry in response.context["cl"].result_list]

    assert found("7.7.7") == [str(world.release.pk)]
    assert found("7.7.7-BETA") == [str(world.release.pk)]  # any case
    assert found(str(world.other_release.pk)) == [str(world.other_release.pk)]
    assert found("no-such-version") == []


def test_the_list_shows_the_version_the_team_and_seconds(staff, world):
    _update(world, world.release, "3.1.4")
    AuditLog.objects.update(created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))

    page = staff.get("/admin/teams/auditlog/").content.decode()

    assert "2025-01-02 03:04:05 UTC" in page
    assert "3.1.4" in page and str(world.team) in page
    entry = AuditLog.objects.get()
    detail = staff.get(f"/admin/teams/auditlog/{entry.pk}/change/").content.decode()
    assert "2025-01-02 03:04:05" in detail
