"""Admin building blocks shared by the apps: view-only bases, the permission an action needs,
the operator as the audit log's actor, an object's audit trail as its history, a confirmation
page for actions that cannot be undone, and one way to show sizes and ids."""

from datetime import datetime
from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from lukittu.views import client_ip
from teams.models import MEGABYTE, AuditLog
from teams.services import Actor

# "View site" leads operators to the page at / (the API docs, the documentation, the probes).
admin.site.site_url = reverse_lazy("home")
# The changelists need the whole width: with the app list beside them, the wider ones (the
# releases, the audit log) scroll sideways at 1400 px. The app list stays on the admin index.
admin.site.enable_nav_sidebar = False


def holds(request: HttpRequest, opts: Any, codename: str) -> bool:
    """Whether the operator holds the model's permission ``codename`` (one of its
    ``Meta.permissions``, or Django's add/change/delete/view). Admin actions name it through
    ``@admin.action(permissions=[...])`` and a ``has_<name>_permission`` method."""
    return request.user.has_perm(f"{opts.app_label}.{codename}")


class LockoutAdmin(AccessAttemptAdmin):
    """django-axes' lockout list, whose clean-up action deletes rows but declares no
    permission, so anyone who could see the list could run it."""

    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request: HttpRequest, queryset: QuerySet) -> None:
        # axes measures the cool-off from the sign-in attempt it is handling, which it marks on
        # the request; from the admin there is none (it raised AttributeError), so from now.
        request.axes_attempt_time = timezone.now()
        super().cleanup_expired_attempts(request, queryset)


if admin.site.is_registered(AccessAttempt):  # AXES_ENABLE_ADMIN may have left it out
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, LockoutAdmin)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Operators may look but not add, change or delete: these rows change only through the
    services (or never, like the audit log)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ViewOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def operator_actor(request: HttpRequest) -> Actor:
    """The signed-in operator as the audit log records them. The address is found the way
    the API finds a key's (``NUM_PROXIES`` trusted hops, else REMOTE_ADDR), so the column
    means the same for both."""
    return Actor(
        label=f"operator:{request.user.get_username()}",
        ip_address=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
    )


def adopt(obj: models.Model, saved: models.Model) -> None:
    """Turn the admin's unsaved ``obj`` into the row a service just saved. The admin keeps
    using its own instance afterwards (inline forms, the log entry, the redirect)."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def format_bytes(size: int | None) -> SafeString | str:
    """A size for people: B, KB or MB (1 MB = 1,048,576 bytes, as in the storage limit),
    with the exact count on hover. MB is the largest unit, so a limit entered in MB reads
    back in MB."""
    if size is None:
        return "-"
    if size < 1024:
        human = f"{size:,} B"
    elif size < MEGABYTE:
        human = f"{size / 1024:.1f} KB"
    else:
        human = f"{size / MEGABYTE:,.1f} MB"
    return format_html('<span title="{} bytes">{}</span>', f"{size:,}", human.replace(".0 ", " "))


def clipped(text: str, limit: int) -> SafeString | str:
    """``text`` cut to ``limit`` characters (with an ellipsis), the whole of it on hover: a
    long URL or error message would push a list past the width of the screen."""
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])


def timestamp(moment: datetime | None) -> str:
    """A moment as the admin shows every timestamp (``DATETIME_FORMAT``: lukittu/formats)."""
    if moment is None:
        return "-"
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def short_id(value: Any) -> SafeString | str:
    """An id's first eight characters (enough to tell rows apart), the whole id on hover:
    a full UUID column would push a list past the width of the screen."""
    if value is None:
        return "-"
    text = str(value)
    return format_html('<span title="{}">{}</span>', text, text[:8])


# The history page lists this many entries, newest first; the audit log has the rest.
HISTORY_ENTRIES = 200


class AuditHistoryMixin:
    """HISTORY opens the object's audit trail: the audit log's entries for it, which every
    write records (through this admin, the API or a command) with who made it and the data.
    Django's own history knows only this admin's saves, so it said "no history" for a release
    the API made. ``audit_target_type`` is the target type its entries carry (``release``)."""

    audit_target_type: str

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        model_admin: admin.ModelAdmin = self  # type: ignore[assignment]
        obj = model_admin.get_object(request, unquote(object_id))
        if obj is None:
            return model_admin._get_obj_does_not_exist_redirect(
                request, model_admin.opts, object_id
            )
        if not model_admin.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        trail = AuditLog.objects.filter(
            target_type=self.audit_target_type, target_id=str(obj.pk)
        ).order_by("-created_at", "-id")
        entries = list(trail[: HISTORY_ENTRIES + 1])
        context = {
            **model_admin.admin_site.each_context(request),
            "title": f"History: {obj}",
            "subtitle": None,
            "object": obj,
            "opts": model_admin.opts,
            "module_name": str(model_admin.opts.verbose_name_plural).capitalize(),
            "entries": entries[:HISTORY_ENTRIES],
            "more": len(entries) > HISTORY_ENTRIES,
            "audit_log_url": (
                f"{reverse('admin:teams_auditlog_changelist')}"
                f"?target_type={self.audit_target_type}&target_id={obj.pk}"
            ),
            "can_view_audit_log": request.user.has_perm("teams.view_auditlog"),
            **(extra_context or {}),
        }
        request.current_app = model_admin.admin_site.name
        return TemplateResponse(request, "admin/audit_history.html", context)


def confirmed_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    question: str,
    consequence: str,
    button: str,
) -> TemplateResponse | None:
    """None once the operator has confirmed the action on the confirmation page (the form
    posts back with ``post=yes``); until then, that page, listing the objects, as Django's
    own delete asks before deleting."""
    if request.POST.get("post") == "yes":
        return None
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "title": question,
        "subtitle": None,
        "opts": opts,
        "objects": list(queryset),
        "consequence": consequence,
        "button": button,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": request.POST.get("select_across", "0"),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/confirm_action.html", context)
