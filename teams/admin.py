"""Admin for teams, API keys, licenses and the (read-only) audit log.

Every change made here goes through ``teams.services`` (and ``delivery.services`` for seats),
which records it in the audit log with the operator as the actor; the admin never saves or
deletes these rows itself. Each action needs its own permission (``Meta.permissions``, granted by
the roles in ``teams.roles``), not merely "change".
"""

import json
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from delivery.admin import downloads_table, seats_table
from delivery.services import license_free_seats
from lukittu.admin import (
    AuditHistoryMixin,
    ViewOnlyAdmin,
    adopt,
    confirmed_action,
    format_bytes,
    holds,
    operator_actor,
    short_id,
    timestamp,
)
from releases.models import Product
from teams.keys import public_key_base64
from teams.models import MEGABYTE, ApiKey, AuditLog, License, Team, TeamKeyPair
from teams.services import (
    api_key_create,
    api_key_revoke,
    api_key_update,
    license_create,
    license_delete,
    license_products,
    license_update,
    team_create,
    team_soft_delete,
    team_update,
)

# Every team made by team_create has a key pair; only one made some other way may lack it.
_NO_KEY_PAIR = (
    "None yet: it is made on the first classloader request, or now by "
    "manage.py team_public_key <team id>."
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
        fields = (
            "name",
            "file_uploads_enabled",
            "max_releases_per_product",
            "max_branches_per_product",
            "seat_timeout_minutes",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("storage_limit_mb", self.instance.storage_limit_bytes // MEGABYTE)


@admin.register(Team)
class TeamAdmin(AuditHistoryMixin, admin.ModelAdmin):
    audit_target_type = "team"
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
    readonly_fields = (
        "id",
        "created_at",
        "updated_at",
        "deleted_at",
        "storage_used",
        "public_key_pem",
        "public_key_base64",
        "license_links",
    )
    fields = (
        "id",
        "name",
        "file_uploads_enabled",
        "storage_limit_mb",
        "storage_used",
        "max_releases_per_product",
        "max_branches_per_product",
        "seat_timeout_minutes",
        "public_key_pem",
        "public_key_base64",
        "license_links",
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

    @staticmethod
    def _public_key(team: Team) -> str | None:
        if team._state.adding:
            return None
        return (
            TeamKeyPair.objects.filter(team_id=team.pk)
            .values_list("public_key_pem", flat=True)
            .first()
        )

    # user-select: all: one click selects the whole key, ready to copy into the software.
    @admin.display(description="Public key (PEM)")
    def public_key_pem(self, team: Team) -> SafeString | str:
        pem = self._public_key(team)
        if pem is None:
            return _NO_KEY_PAIR if not team._state.adding else "Made when the team is saved."
        return format_html('<pre style="user-select: all">{}</pre>', pem.strip())

    @admin.display(description="Public key (base64)")
    def public_key_base64(self, team: Team) -> SafeString | str:
        pem = self._public_key(team)
        if pem is None:
            return "-"
        return format_html(
            '<code style="user-select: all; word-break: break-all">{}</code>',
            public_key_base64(pem),
        )

    @admin.display(description="Licenses")
    def license_links(self, team: Team) -> SafeString | str:
        if team._state.adding:
            return "-"
        listed = reverse("admin:teams_license_changelist")
        add = reverse("admin:teams_license_add")
        return format_html(
            '<a href="{}?team__id__exact={}">The team\'s licenses</a> · '
            '<a href="{}?team={}">Add a license for this team</a>',
            listed,
            team.pk,
            add,
            team.pk,
        )

    def save_model(self, request: HttpRequest, obj: Team, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        data = form.cleaned_data
        if change:
            changes = _changed(
                form,
                (
                    "name",
                    "file_uploads_enabled",
                    "max_releases_per_product",
                    "max_branches_per_product",
                    "seat_timeout_minutes",
                ),
            )
            if "storage_limit_mb" in form.changed_data:
                changes["storage_limit_bytes"] = data["storage_limit_mb"] * MEGABYTE
            team = team_update(team=obj, changes=changes, actor=actor)
        else:
            team = team_create(
                name=data["name"],
                file_uploads=data["file_uploads_enabled"],
                storage_limit_mb=data["storage_limit_mb"],
                max_releases_per_product=data["max_releases_per_product"],
                max_branches_per_product=data["max_branches_per_product"],
                seat_timeout_minutes=data["seat_timeout_minutes"],
                actor=actor,
            )
        adopt(obj, team)

    @admin.action(
        description="Soft-delete the selected teams (their keys stop working)",
        permissions=["soft_delete"],
    )
    def soft_delete(
        self, request: HttpRequest, queryset: QuerySet[Team]
    ) -> TemplateResponse | None:
        confirmation = confirmed_action(
            self,
            request,
            queryset,
            question="Delete these teams?",
            consequence=(
                "Their API keys stop working at once. The teams and their history stay in "
                "the database, but no action here brings them back."
            ),
            button="Yes, delete the teams",
        )
        if confirmation is not None:
            return confirmation
        actor = operator_actor(request)
        deleted = sum(team_soft_delete(team=team, actor=actor) for team in queryset)
        self.message_user(request, f"{deleted} team(s) deleted.")
        return None

    def has_soft_delete_permission(self, request: HttpRequest) -> bool:
        return holds(request, self.opts, "soft_delete_team")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # teams are soft-deleted, so their history stays


@admin.register(ApiKey)
class ApiKeyAdmin(AuditHistoryMixin, admin.ModelAdmin):
    audit_target_type = "api_key"
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

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> TemplateResponse | None:
        confirmation = confirmed_action(
            self,
            request,
            queryset,
            question="Revoke these API keys?",
            consequence=(
                "Every request made with them fails with 401 from now on: a CI job or a "
                "script that uses one stops working. A revoked key cannot be restored; a new "
                "key is shown once, when it is made."
            ),
            button="Yes, revoke the keys",
        )
        if confirmation is not None:
            return confirmation
        actor = operator_actor(request)
        revoked = sum(api_key_revoke(key=key, actor=actor) for key in queryset)
        self.message_user(request, f"{revoked} key(s) revoked.")
        return None

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return holds(request, self.opts, "revoke_apikey")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead, so the audit log keeps pointing at the key


class LicenseAdminForm(forms.ModelForm):
    """A license's products: on its page, the team's products to tick. When adding, the team
    is not chosen yet, so every product is offered (with its team), unless the add form was
    opened for one team (``?team=<id>``, the team page's link); on save, each must be a
    product of the chosen team (``teams.services.license_products``, the service's own rule).
    """

    products = forms.ModelMultipleChoiceField(
        queryset=Product.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The products this license opens; it opens no other.",
    )

    class Meta:
        model = License
        fields = ("team", "suspended", "expires_at", "ip_limit", "hwid_limit")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["products"]
        products = Product.objects.select_related("team").order_by("name", "id")
        team_id = self._team_id()
        if team_id is not None:
            field.queryset = products.filter(team_id=team_id)
            field.label_from_instance = lambda product: product.name
        else:
            field.queryset = products
            # Products of different teams may share a name; the team tells them apart.
            field.label_from_instance = lambda product: f"{product.name} · {product.team}"
        if not self.instance._state.adding:
            self.initial["products"] = list(self.instance.products.values_list("pk", flat=True))

    def _team_id(self) -> uuid.UUID | None:
        """The team whose products to offer: the license's, or the one the add form was
        opened for. A bound add form offers every product, so that one of another team is
        refused below with a message saying why, not as an unknown choice."""
        if not self.instance._state.adding:
            return self.instance.team_id
        if self.is_bound:
            return None
        try:
            return uuid.UUID(str(self.initial.get("team")))
        except ValueError:
            return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        team = self.instance.team if not self.instance._state.adding else cleaned.get("team")
        products = cleaned.get("products")
        if team is not None and products:
            try:
                license_products(team, products)
            except ValidationError as error:
                self.add_error("products", error)
        return cleaned


@admin.register(License)
class LicenseAdmin(AuditHistoryMixin, admin.ModelAdmin):
    audit_target_type = "license"
    form = LicenseAdminForm
    list_display = ("__str__", "license_id", "team", "active", "expires_at", "created_at")
    list_filter = ("suspended", "team")
    list_select_related = ("team",)
    search_fields = ("id", "key_hint", "team__name")
    readonly_fields = (
        "id",
        "key_hint",
        "created_at",
        "updated_at",
        "seat_table",
        "recent_downloads",
        "product_list",
    )
    actions = ("suspend", "reinstate", "free_seats")

    def get_fields(self, request: HttpRequest, obj: License | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("team", "products", "suspended", "expires_at", "ip_limit", "hwid_limit")
        # The products' checkboxes are a form field, not the model's; who may not change the
        # license reads them as a list instead.
        products = "products" if self.has_change_permission(request, obj) else "product_list"
        return (
            "id",
            "team",
            "key_hint",
            products,
            "suspended",
            "expires_at",
            "ip_limit",
            "hwid_limit",
            "seat_table",
            "recent_downloads",
            "created_at",
            "updated_at",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: License | None = None) -> tuple:
        if obj is None:
            return self.readonly_fields
        # Suspending from the form is the suspend action by another way, so it needs the same
        # permission as the action, not merely "change".
        fixed = ("team",) if self.has_suspend_permission(request) else ("team", "suspended")
        return self.readonly_fields + fixed

    @admin.display(description="ID")
    def license_id(self, license: License) -> str:
        return short_id(license.pk)

    @admin.display(description="Products")
    def product_list(self, license: License) -> str:
        return ", ".join(license.products.order_by("name").values_list("name", flat=True)) or "-"

    @admin.display(description="Seats")
    def seat_table(self, license: License) -> SafeString:
        return seats_table(license)

    @admin.display(description="Recent downloads")
    def recent_downloads(self, license: License) -> SafeString:
        return downloads_table(license.downloads.all(), lookup="license__id__exact", pk=license.pk)

    # A "suspended" column would show the green icon for a suspended license; this one is
    # green exactly when the license works (not suspended, not expired).
    @admin.display(description="Active", boolean=True)
    def active(self, license: License) -> bool:
        return license.is_active()

    def save_model(self, request: HttpRequest, obj: License, form: Any, change: bool) -> None:
        actor = operator_actor(request)
        data = form.cleaned_data
        if change:
            changes = _changed(form, ("suspended", "expires_at", "ip_limit", "hwid_limit"))
            if "products" in form.changed_data:
                changes["products"] = list(data["products"])
            adopt(obj, license_update(license=obj, changes=changes, actor=actor))
            return
        license, plain = license_create(
            team=obj.team,
            products=list(data["products"]),
            ip_limit=obj.ip_limit,
            hwid_limit=obj.hwid_limit,
            suspended=obj.suspended,
            expires_at=obj.expires_at,
            actor=actor,
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

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return holds(request, self.opts, "suspend_license")

    def has_free_seats_permission(self, request: HttpRequest) -> bool:
        return holds(request, self.opts, "free_seats")

    @admin.action(description="Suspend the selected licenses", permissions=["suspend"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[License]) -> TemplateResponse | None:
        confirmation = confirmed_action(
            self,
            request,
            queryset,
            question="Suspend these licenses?",
            consequence=(
                "Customers' software stops receiving builds and updates with them at once "
                "(the Client API answers 403), until they are reinstated."
            ),
            button="Yes, suspend the licenses",
        )
        if confirmation is not None:
            return confirmation
        count = self._set_suspended(request, queryset, True)
        self.message_user(request, f"{count} license(s) suspended.")
        return None

    @admin.action(description="Reinstate the selected licenses", permissions=["suspend"])
    def reinstate(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        count = self._set_suspended(request, queryset, False)
        self.message_user(request, f"{count} license(s) reinstated.")

    @admin.action(
        description="Free seats of the selected licenses (devices and IP addresses)",
        permissions=["free_seats"],
    )
    def free_seats(self, request: HttpRequest, queryset: QuerySet[License]) -> None:
        actor = operator_actor(request)
        freed = sum(license_free_seats(license=license, actor=actor) for license in queryset)
        self.message_user(request, f"{freed} seat(s) freed.")


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

    @admin.display(description="When", ordering="created_at")
    def when(self, entry: AuditLog) -> str:
        return timestamp(entry.created_at)

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
