"""Admin for teams, API keys, licenses and the (read-only) audit log."""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from lukittu.admin import ViewOnlyAdmin
from teams.models import MEGABYTE, ApiKey, AuditLog, License, Team
from teams.services import api_key_create, api_key_revoke, license_create, team_soft_delete


def _megabytes(value: int | None) -> str:
    return f"{(value or 0) / MEGABYTE:.1f} MB"


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "id",
        "file_uploads_enabled",
        "storage_limit",
        "storage_used",
        "max_releases_per_product",
        "deleted_at",
        "created_at",
    )
    list_filter = ("file_uploads_enabled", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "id")
    readonly_fields = ("id", "created_at", "updated_at", "deleted_at", "storage_used")
    fields = (
        "id",
        "name",
        "file_uploads_enabled",
        "storage_limit_bytes",
        "storage_used",
        "max_releases_per_product",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    actions = ("soft_delete",)

    @admin.display(description="Storage limit", ordering="storage_limit_bytes")
    def storage_limit(self, team: Team) -> str:
        return _megabytes(team.storage_limit_bytes)

    @admin.display(description="Storage used", ordering="storage_used_bytes")
    def storage_used(self, team: Team) -> str:
        return _megabytes(team.storage_used_bytes)

    @admin.action(description="Soft-delete the selected teams (their keys stop working)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Team]) -> None:
        for team in queryset:
            team_soft_delete(team=team)
        self.message_user(request, f"{queryset.count()} team(s) deleted.")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # teams are soft-deleted, so their history stays


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "team",
        "state",
        "created_at",
        "expires_at",
        "last_used_at",
    )
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
        if change:
            obj.save(update_fields=["name"])
            return
        key, plain = api_key_create(team=obj.team, name=obj.name, expires_at=obj.expires_at)
        obj.pk, obj.stem, obj.digest, obj.created_at = key.pk, key.stem, key.digest, key.created_at
        obj._state.adding = False
        messages.warning(
            request, f"API key created. Copy it now, it will not be shown again: {plain}"
        )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(key=key)
        self.message_user(request, "Selected keys revoked.")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead, so the audit log keeps pointing at the key


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    list_display = ("__str__", "id", "team", "suspended", "expires_at", "created_at")
    list_filter = ("suspended", "team")
    list_select_related = ("team",)
    search_fields = ("id", "key_hint", "team__name")
    readonly_fields = ("id", "key_hint", "created_at", "updated_at")

    def get_fields(self, request: HttpRequest, obj: License | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("team", "suspended", "expires_at")
        return ("id", "team", "key_hint", "suspended", "expires_at", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: License | None = None) -> tuple:
        return self.readonly_fields + (("team",) if obj else ())

    def save_model(self, request: HttpRequest, obj: License, form: Any, change: bool) -> None:
        if change:
            obj.save()
            return
        license, plain = license_create(
            team=obj.team, suspended=obj.suspended, expires_at=obj.expires_at
        )
        obj.pk, obj.key_digest, obj.key_hint = license.pk, license.key_digest, license.key_hint
        obj._state.adding = False
        messages.warning(
            request, f"License created. Copy its key now, it will not be shown again: {plain}"
        )


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(AuditLog)
class AuditLogAdmin(ViewOnlyAdmin):
    list_display = ("created_at", "team", "actor", "action", "target_id", "ip_address")
    list_filter = ("action", "team")
    list_select_related = ("team",)
    search_fields = ("target_id", "actor", "ip_address")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
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

    @admin.display(description="Request data")
    def request_data_pretty(self, entry: AuditLog) -> str:
        return _pretty(entry.request_data)

    @admin.display(description="Result")
    def result_pretty(self, entry: AuditLog) -> str:
        return _pretty(entry.result)
