"""The admin's roles: a viewer sees every page and changes nothing (walked over every registered
ModelAdmin, so a new action or view without a permission fails here), support works on
licenses, an administrator does everything; secrets shown once never travel in a cookie."""

import base64
import re
import zlib
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone

from delivery.models import Seat, hwid_digest
from releases.models import LedgerEntry, ReleaseFile
from teams.models import ApiKey, AuditLog, License, TeamKeyPair
from teams.roles import ADMINISTRATOR, SUPPORT, SUPPORT_PERMISSIONS, VIEWER, roles_sync
from teams.services import license_create
from tests.helpers import attach_file, make_download, make_jar
from tests.test_webhooks_helpers import make_endpoint
from webhooks.events import emit
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.tasks import enqueue_deliveries

URL = "https://hooks.example.com/in"
PASSWORD = "pw-for-tests-only"
WRONG_PASSWORD = "almost-the-Right-one-42"
# The admin's own views; any other URL a ModelAdmin adds is a custom view.
STANDARD_VIEWS = ("changelist", "add", "history", "delete", "change")
ADMIN_MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)


def operator(name: str, *groups: str, permissions: tuple[str, ...] = ()) -> Client:
    """A signed-in staff account (not a superuser) in the given role groups."""
    user = User.objects.create_user(name, f"{name}@example.com", PASSWORD, is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    for label in permissions:
        app_label, codename = label.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def secrets(world) -> dict[str, str]:
    """A row of every model the admin shows, and every secret among them, in plain text."""
    attach_file(world.release, "app.jar", make_jar())
    license = world.licenses[0]
    _, license_key = license_create(team=world.team)
    Seat.objects.create(license=license, kind=Seat.Kind.HWID, value=hwid_digest("device-1"))
    make_download(world.release, license, world.release.version)
    LedgerEntry.objects.create(key="releases/gone.jar", state="DELETING", reason="replaced")
    _, secret = make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})
    delivery = WebhookDelivery.objects.get()
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, attempted_at=timezone.now(), status_code=500, duration_ms=9
    )
    enqueue_deliveries([delivery.pk])
    # A failed sign-in records the attempt (django-axes), the typed password masked.
    Client().post("/admin/login/", {"username": "someone", "password": WRONG_PASSWORD})
    AccessFailureLog.objects.create(username="someone", ip_address="192.0.2.9", path_info="/")
    api_key = ApiKey.objects.get(team=world.team)
    AuditLog.objects.create(
        team=world.team, actor="operator:x", action="team.update", target_type="team", target_id=1
    )
    return {
        "API key": world.key,
        "API key digest": api_key.digest,
        "license key": license_key,
        "license key digest": license.key_digest,
        "webhook secret": secret,
        "sealed private key": TeamKeyPair.objects.get(team=world.team).private_key_sealed,
        "typed password": WRONG_PASSWORD,
        "password hash": User.objects.create_user("other", password=PASSWORD).password,
    }


def snapshot() -> dict[str, list[str]]:
    """Every row of every table, but the sessions (signing in and messages write those)."""
    return {
        model._meta.label: sorted(repr(row) for row in model._default_manager.values())
        for model in apps.get_models()
        if model is not Session
    }


def custom_urls(model: type[Model]) -> list[URLPattern]:
    model_admin = admin.site._registry[model]
    prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
    return [
        pattern
        for pattern in model_admin.get_urls()
        if pattern.name and pattern.name.removeprefix(prefix) not in STANDARD_VIEWS
    ]


def url_of(pattern: URLPattern, obj: Model) -> str:
    takes_id = bool(pattern.pattern.converters) or pattern.pattern.regex.groups
    return reverse(f"admin:{pattern.name}", args=[obj.pk] if takes_id else [])


def run_every_action(client: Client, model: type[Model]) -> HttpResponse:
    """Post each of ``model``'s actions (Django's site-wide ones too) on all its rows; the
    list page as the client sees it."""
    opts = model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    objects = list(model._default_manager.all())
    assert objects, f"seed a {opts.label} row in the secrets fixture"
    for _, action, _ in admin.site._registry[model]._get_base_actions():
        client.post(
            changelist, {"action": action, "_selected_action": [str(obj.pk) for obj in objects]}
        )
    return client.get(changelist)


def walk_pages(client: Client, model: type[Model], shown: list[str]) -> None:
    """Every page and view of ``model``'s admin as a viewer: pages answer, writes are refused
    (403, or 405 for a read-only custom view)."""
    opts = model._meta
    name = f"admin:{opts.app_label}_{opts.model_name}"
    objects = list(model._default_manager.all())
    assert client.get(reverse(f"{name}_add")).status_code == 403
    assert client.post(reverse(f"{name}_add"), {}).status_code == 403
    for obj in objects:
        page = client.get(reverse(f"{name}_change", args=[obj.pk]))
        assert page.status_code == 200
        assert page.context["has_change_permission"] is False
        shown.append(page.content.decode())
        assert client.post(reverse(f"{name}_change", args=[obj.pk]), {}).status_code == 403
        assert client.get(reverse(f"{name}_delete", args=[obj.pk])).status_code == 403
        delete = client.post(reverse(f"{name}_delete", args=[obj.pk]), {"post": "yes"})
        assert delete.status_code == 403
        assert client.get(reverse(f"{name}_history", args=[obj.pk])).status_code == 200
    for pattern in custom_urls(model):
        url = url_of(pattern, objects[0])
        # Reads (a file's download) may answer; a write never does.
        assert client.get(url).status_code in (200, 302, 403, 404), url
        assert client.post(url, {}).status_code in (403, 405), url


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=lambda model: model._meta.label)
def test_a_viewer_sees_every_page_and_changes_nothing(secrets, model):
    viewer = operator("viewer", VIEWER)
    before = snapshot()

    listing = run_every_action(viewer, model)

    assert snapshot() == before, "an action ran for a viewer"
    assert listing.status_code == 200
    assert listing.context["action_form"] is None, "no action is offered to a viewer"
    shown = [listing.content.decode()]
    walk_pages(viewer, model, shown)
    assert snapshot() == before
    for what, secret in secrets.items():
        assert not any(secret in page for page in shown), f"{what} shown to a viewer"


def test_every_action_names_the_permission_it_needs():
    # Django offers an action without permissions to anyone who can see the list.
    for model, model_admin in admin.site._registry.items():
        for func, action, _ in model_admin._get_base_actions():
            needed = getattr(func, "allowed_permissions", ())
            assert needed, f"{model._meta.label}: action {action} names no permission"
            assert "view" not in needed, f"{model._meta.label}: {action} changes on 'view'"


def test_the_roles_are_made_by_the_migrations(db):
    # No sync has run in this test: the migrated database already holds the three groups.
    perms = {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.prefetch_related("permissions__content_type")
    }
    every = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()}
    viewing = {label for label in every if label.split(".")[1].startswith("view_")}

    assert perms[VIEWER] == viewing
    assert perms[SUPPORT] == viewing | set(SUPPORT_PERMISSIONS)
    assert perms[ADMINISTRATOR] == every
    assert {"webhooks.rotate_webhook_secret", "teams.revoke_apikey"} <= every


def test_sync_roles_puts_a_role_back_and_is_idempotent(db):
    viewer = Group.objects.get(name=VIEWER)
    wanted = set(viewer.permissions.all())
    viewer.permissions.remove(*list(wanted)[:3])
    viewer.permissions.add(Permission.objects.get(codename="rotate_webhook_secret"))
    Group.objects.get(name=SUPPORT).delete()

    call_command("sync_roles", stdout=(out := _Output()))
    first = {group.name: set(group.permissions.all()) for group in Group.objects.all()}
    roles_sync()

    assert set(Group.objects.get(name=VIEWER).permissions.all()) == wanted
    assert {group.name: set(group.permissions.all()) for group in Group.objects.all()} == first
    assert f"viewer: {len(wanted)} permissions" in out.text


class _Output:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def act(client: Client, model: str, action: str, *objects: Model) -> Any:
    return client.post(
        f"/admin/{model}/",
        # post=yes: confirmed, where the action asks first
        {"action": action, "_selected_action": [str(obj.pk) for obj in objects], "post": "yes"},
    )


def test_support_suspends_reinstates_frees_seats_and_creates_licenses(world):
    support = operator("support", SUPPORT)
    license = world.licenses[0]
    Seat.objects.create(license=license, kind=Seat.Kind.IP, value="192.0.2.1")
    other = Seat.objects.create(license=world.licenses[1], kind=Seat.Kind.IP, value="192.0.2.2")

    act(support, "teams/license", "suspend", license)
    suspended = License.objects.get(pk=license.pk).suspended
    act(support, "teams/license", "reinstate", license)
    act(support, "teams/license", "free_seats", license)
    freed_one = support.post(f"/admin/delivery/seat/{other.pk}/delete/", {"post": "yes"})
    added = support.post("/admin/teams/license/add/", {"team": world.team.pk})

    assert suspended is True
    assert License.objects.get(pk=license.pk).suspended is False
    assert freed_one.status_code == 302 and not Seat.objects.exists()
    assert added.status_code == 302 and world.team.licenses.count() == 4
    actions = AuditLog.objects.filter(actor="operator:support").values_list("action", flat=True)
    assert {"license.create", "license.update", "license.free_seats"} <= set(actions)


def test_support_cannot_touch_keys_webhooks_teams_or_license_terms(world):
    support = operator("support", SUPPORT)
    endpoint, secret = make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})
    license = world.licenses[0]
    before = snapshot()

    act(support, "webhooks/webhookendpoint", "rotate_secret", endpoint)
    act(support, "webhooks/webhookendpoint", "send_test_event", endpoint)
    act(support, "webhooks/webhookdelivery", "redeliver", WebhookDelivery.objects.get())
    act(support, "teams/apikey", "revoke", ApiKey.objects.get())
    act(support, "teams/team", "soft_delete", world.team)
    statuses = [
        support.post("/admin/teams/apikey/add/", {"team": world.team.pk}).status_code,
        support.post("/admin/webhooks/webhookendpoint/add/", {"team": world.team.pk}).status_code,
        support.post(f"/admin/teams/license/{license.pk}/change/", {"ip_limit": 1}).status_code,
        support.post(f"/admin/teams/license/{license.pk}/delete/", {"post": "yes"}).status_code,
    ]

    assert statuses == [403, 403, 403, 403]
    assert snapshot() == before
    assert WebhookEndpoint.objects.get().secret == secret


def test_an_administrator_does_everything(world):
    administrator = operator("chief", ADMINISTRATOR)
    endpoint, secret = make_endpoint(world.team, URL)
    emit(world.team, "release.updated", {"id": "a"})
    key = ApiKey.objects.get()

    act(administrator, "webhooks/webhookendpoint", "rotate_secret", endpoint)
    act(administrator, "webhooks/webhookendpoint", "send_test_event", endpoint)
    act(administrator, "webhooks/webhookdelivery", "redeliver", WebhookDelivery.objects.first())
    act(administrator, "teams/apikey", "revoke", key)
    act(administrator, "teams/team", "soft_delete", world.team)
    added = administrator.post("/admin/teams/apikey/add/", {"team": world.team.pk, "name": "x"})

    assert WebhookEndpoint.objects.get().previous_secret == secret
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert added.status_code == 302 and ApiKey.objects.filter(name="x").exists()
    world.team.refresh_from_db()
    assert world.team.deleted_at is not None
    done = set(AuditLog.objects.filter(actor="operator:chief").values_list("action", flat=True))
    assert {
        "webhook.rotate_secret",
        "webhook.test",
        "webhook.redeliver",
        "api_key.revoke",
        "api_key.create",
        "team.soft_delete",
    } <= done


def test_suspending_from_the_form_needs_the_suspend_permission(world):
    # May change a license's terms, but not suspend it.
    editor = operator("editor", VIEWER, permissions=("teams.change_license",))
    license = world.licenses[0]
    page = editor.get(f"/admin/teams/license/{license.pk}/change/")

    response = editor.post(
        f"/admin/teams/license/{license.pk}/change/",
        {"suspended": "on", "ip_limit": 3},
    )

    assert page.status_code == 200 and 'name="suspended"' not in page.content.decode()
    assert response.status_code == 302
    license.refresh_from_db()
    assert (license.suspended, license.ip_limit) == (False, 3)


def readable(value: str) -> str:
    """A cookie as anyone who sees it can read it: Django's signed values (the messages
    cookie among them) are base64 of JSON, compressed when that is shorter, then signed."""
    value = value.strip('"').replace("\\", "")
    payload = value.split(":", 1)[0]
    compressed = payload.startswith(".")
    try:
        data = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload) % 4))
        data = zlib.decompress(data) if compressed else data
    except (ValueError, zlib.error):
        return value
    return value + data.decode("utf-8", "replace")


def shown_once(client: Client, url: str, data: dict[str, Any], pattern: str) -> tuple[str, list]:
    """POST a form whose answer shows a secret once; the secret and every Set-Cookie seen."""
    response = client.post(url, data)
    assert response.status_code == 302
    page = client.get(response["Location"])
    found = re.search(pattern, page.content.decode())
    assert found, "the secret is shown on the next page"
    later = client.get(response["Location"]).content.decode()
    assert found.group(1) not in later, "shown only once"
    cookies = [*response.cookies.values(), *page.cookies.values(), *client.cookies.values()]
    return found.group(1), cookies


def test_secrets_shown_once_never_travel_in_a_cookie(world):
    administrator = operator("chief", ADMINISTRATOR)
    endpoint, _ = make_endpoint(world.team, URL)
    shown = [
        shown_once(
            administrator,
            "/admin/teams/apikey/add/",
            {"team": world.team.pk, "name": "ci"},
            r"will not be shown again: (\S+?)<",
        ),
        shown_once(
            administrator,
            "/admin/teams/license/add/",
            {"team": world.team.pk},
            r"Copy its key now, it will not be shown again: (\S+?)<",
        ),
        shown_once(
            administrator,
            "/admin/webhooks/webhookendpoint/",
            {"action": "rotate_secret", "_selected_action": [str(endpoint.pk)]},
            r"\(shown only now\): (\S+?)<",
        ),
    ]

    assert shown[0][0].startswith(ApiKey.objects.get(name="ci").prefix)
    assert world.team.licenses.order_by("-created_at").first().matches(shown[1][0])
    assert shown[2][0] == WebhookEndpoint.objects.get().secret
    for secret, cookies in shown:
        for cookie in cookies:
            assert secret not in readable(cookie.value), cookie.key
    # Once shown, the secret is gone from the session too.
    stored = [session.get_decoded() for session in Session.objects.all()]
    assert not any(secret in repr(data) for secret, _ in shown for data in stored)


def test_a_release_file_download_is_a_read(secrets):
    viewer = operator("viewer", VIEWER)
    url = reverse("admin:releases_releasefile_download", args=[ReleaseFile.objects.get().pk])

    assert viewer.get(url).status_code == 200
    assert viewer.post(url).status_code == 405


def test_cleaning_up_expired_sign_in_attempts_works_for_who_may_delete(db, settings):
    # Signing in cleans up expired attempts too: both sign in before there are any.
    viewer, administrator = operator("viewer", VIEWER), operator("chief", ADMINISTRATOR)
    old, recent = (
        AccessAttempt.objects.create(username=name, ip_address="192.0.2.9", failures_since_start=1)
        for name in ("old", "recent")
    )
    cool_off = settings.AXES_COOLOFF_TIME
    AccessAttempt.objects.filter(pk=old.pk).update(attempt_time=timezone.now() - 2 * cool_off)

    viewed = act(viewer, "axes/accessattempt", "cleanup_expired_attempts", old)
    kept = set(AccessAttempt.objects.values_list("username", flat=True))
    cleaned = act(administrator, "axes/accessattempt", "cleanup_expired_attempts", old)

    assert viewed.status_code == 200 and kept == {"old", "recent"}
    assert cleaned.status_code == 302
    assert list(AccessAttempt.objects.values_list("pk", flat=True)) == [recent.pk]
