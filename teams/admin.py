"""Admin for teams, API keys, licenses and the (read-only) audit log.

Every change made here goes through ``teams.services``, which records it in the audit log with
the operator as the actor; the admin never saves or deletes these rows itself.
"""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from lukittu.admin import ViewOnlyAdmin, adopt, format_bytes, operator_actor, short_id
from teams.models import MEGABYTE, ApiKey, AuditLog, License, Team
from teams.services import (
    api_key_create,
    api_key_revoke,
    api_key_update,
    license_create,
    license_delete,
    license_update,
    team_create,
    team_soft_delete,
    team_update,
)


def _changed(form: forms.ModelForm, names: tuple[str, ...]) -> dict[str, Any]:
    # Only the fields the operator changed: sending every field would put back values that
    # someone else changed after this form was opened.
    return {name: form.cleaned_data[name] for name in names if name in form.changed_data}


class TeamAdminForm(forms.ModelForm):
    """The storage limit is entered and shown in MB; the model keeps bytes."""

    storage_limit_mb = forms.IntegerField(
        min_value=0,
        label="Storage limit (MB)",
        help_text="Total size of the team's release files, in MB (1 MB = 1,048,576 bytes).",
    )

    class Meta:
        model = Team
        fields = ("name", "file_uploads_enabled", "max_releases_per_product")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("storage_limit_mb", self.instance.storage_limit_bytes // MEGABYTE)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    form = TeamAdminForm
    list_display = (
        "name",
        "team_id",
        "file_uploads_enabled",
        "storage_used",
        "storage_limit",
        "max_releases",
        "deleted_at",
    )
    list_filter = ("file_uploads_enabled", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "id")
    readonly_fields = ("id", "created_at", "updated_at", "deleted_at", "storage_used")
    fields = (
        "id",
        "name",
        "file_uploads_enabled",
        "storage_limit_mb",
        "storage_used",
        "max_releases_per_product",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    actions = ("soft_delete",)

    @admin.display(description="ID")
    def team_id(self, team: Team) -> str:
        return short_id(team.pk)

    @admin.display(description="Storage limit", ordering="storage_limit_bytes")
    def storage_limit(self, team: Team) -> str:
        return format_bytes(team.storage_limit_bytes)

    @admin.display(description="Storage used", ordering="storage_used_bytes")
    def storage_used(self, team: Team) -> str:
        return format_bytes(team.storage_used_bytes)

    @admin.display(description="Releases per product", ordering="max_releases_per_product")
    def max_releases(self, team: Team) -> int:
        return team.max_releases_per_product

    def save_model(self, request: HttpRequest, obj: Team, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        data = form.cleaned_data
        if change:
            changes = _changed(form, ("name", "file_uploads_enabled", "max_releases_per_product"))
            if "storage_limit_mb" in form.changed_data:
                changes["storage_limit_bytes"] = data["storage_limit_mb"] * MEGABYTE
            team = team_update(team=obj, changes=changes, actor=actor)
        else:
            team = team_create(
                name=data["name"],
                file_uploads=data["file_uploads_enabled"],
                storage_limit_mb=data["storage_limit_mb"],
                max_releases_per_product=data["max_releases_per_product"],
                actor=actor,
            )
        adopt(obj, team)

    @admin.action(description="Soft-delete the selected teams (their keys stop working)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Team]) -> None:
        actor = operator_actor(request)
        deleted = sum(team_soft_delete(team=team, actor=actor) for team in queryset)
        self.message_user(request, f"{deleted} team(s) deleted.")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # teams are soft-deleted, so their history stays


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "team", "state", "expires_at", "last_used_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "team")
    list_select_related = ("team",)
    search_fields = ("stem", "name", "team__name")
    actions = ("revoke",)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("team", "name", "expires_at")
        return (
            "prefix",
            "team",
            "name",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple:
        if obj is None:
            return ()
        return ("prefix", "team", "created_at", "expires_at", "revoked_at", "last_used_at")

    @admin.display(description="State")
    def state(self, key: ApiKey) -> str:
        if key.revoked_at:
            return "revoked"
        return "active" if key.is_usable() else "expired"

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        if change:
            adopt(obj, api_key_update(key=obj, changes=_changed(form, ("name",)), actor=actor))
            return
        key, plain = api_key_create(
            team=obj.team, name=obj.name, expires_at=obj.expires_at, actor=actor
        )
        adopt(obj, key)
        messages.warning(
            request, f"API key created. Copy it now, it will not be shown again: {plain}"
        )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = operator_actor(request)
        revoked = sum(api_key_revoke(key=key, actor=actor) for key in queryset)
        self.message_user(request, f"{revoked} key(s) revoked.")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead, so the audit log keeps pointing at the key


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("__str__", "license_id", "team", "active", "expires_at", "created_at")
    list_filter = ("suspended", "team")
    list_select_related = ("team",)
    search_fields = ("id", "key_hint", "team__name")
    readonly_fields = ("id", "key_hint", "created_at", "updated_at")
    actions = ("suspend", "reinstate")

    def get_fields(self, request: HttpRequest, obj: License | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("team", "suspended", "expires_at")
        return ("id", "team", "key_hint", "suspended", "expires_at", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: License | None = None) -> tuple:
        return self.readonly_fields + (("team",) if obj else ())

    @admin.display(description="ID")
    def license_id(self, license: License) -> str:
        return short_id(license.pk)

    # A "suspended" column would show the green icon for a suspended license; this one is
    # green exactly when the license works (not suspended, not expired).
    @admin.display(description="Active", boolean=True)
    def active(self, license: License) -> bool:
        return license.is_active()

    def save_model(self, request: HttpRequest, obj: License, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        if change:
            changes = _changed(form, ("suspended", "expires_at"))
            adopt(obj, license_update(license=obj, changes=changes, actor=actor))
            return
        license, plain = license_create(
            team=obj.team, suspended=obj.suspended, expires_at=obj.expires_at, actor=actor
        )
        adopt(obj, license)
        messages.warning(
            request, f"License created. Copy its key now, it will not be shown again: {plain}"
        )

    def delete_model(self, request: HttpRequest, obj: License) -> None:
        license_delete(license=obj, actor=operator_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        actor = operator_actor(request)
        for license in queryset:
            license_delete(license=license, actor=actor)

    def _set_suspended(self, request: HttpRequest, queryset: QuerySet, suspended: bool) -> int:
        actor = operator_actor(request)
        changed = 0
        for license in queryset:
            if license.suspended != suspended:
                license_update(license=license, changes={"suspended": suspended}, actor=actor)
                changed += 1
        return changed

    @admin.action(description="Suspend the selected licenses")
    def suspend(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        count = self._set_suspended(request, queryset, True)
        self.message_user(request, f"{count} license(s) suspended.")

    @admin.action(description="Reinstate the selected licenses")
    def reinstate(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        count = self._set_suspended(request, queryset, False)
        self.message_user(request, f"{count} license(s) reinstated.")


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(AuditLog)
class AuditLogAdmin(ViewOnlyAdmin):
    list_display = ("when", "team", "actor", "action", "target", "version", "ip_address")
    list_filter = ("action", "team")
    list_select_related = ("team",)
    # result__version: a release entry's resulting version, a JSON key lookup that SQLite and
    # PostgreSQL both run.
    search_fields = ("target_id", "result__version", "actor", "ip_address")
    date_hierarchy = "created_at"
    fields = (
        "when",
        "team",
        "api_key",
        "actor",
        "action",
        "target_type",
        "target_id",
        "ip_address",
        "user_agent",
        "request_data_pretty",
        "result_pretty",
    )
    readonly_fields = fields

    # Django's date format stops at the minute; writes in a burst need the second to be told
    # apart and matched with the server's logs.
    @admin.display(description="When", ordering="created_at")
    def when(self, entry: AuditLog) -> str:
        return timezone.localtime(entry.created_at).strftime("%Y-%m-%d %H:%M:%S %Z")

    @admin.display(description="Target", ordering="target_id")
    def target(self, entry: AuditLog) -> str:
        return format_html("{} {}", entry.target_type, short_id(entry.target_id))

    @admin.display(description="Version")
    def version(self, entry: AuditLog) -> str:
        if entry.target_type == "release" and isinstance(entry.result, dict):
            return entry.result.get("version") or "-"
        return "-"

    @admin.display(description="Request data")
    def request_data_pretty(self, entry: AuditLog) -> str:
        return _pretty(entry.request_data)

    @admin.display(description="Result")
    def result_pretty(self, entry: AuditLog) -> str:
        return _pretty(entry.result)
