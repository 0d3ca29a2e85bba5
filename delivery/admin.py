"""Admin for what delivery records: downloads (read-only) and seats (read-only; deleting one
frees it, through ``delivery.services``, audited). Also the tables of a license's seats and of
recent downloads that the license and release pages show."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from delivery.models import Download, Seat, hwid_digest
from delivery.services import seat_free
from lukittu.admin import ViewOnlyAdmin, operator_actor, timestamp
from teams.models import License

# How many rows the license and release pages show; the full lists are a link away.
RECENT_DOWNLOADS = 20
SEATS_SHOWN = 50
# Longer values (an IPv6 address) are cut in lists, whole on hover: lists must fit 1400 px.
SHOWN_VALUE = 24


def when(moment: datetime | None) -> str:
    """To the second, in the admin's time zone, as every timestamp in the admin."""
    return timestamp(moment)


def shortened(value: str | None, limit: int = SHOWN_VALUE) -> SafeString | str:
    """``value`` cut to ``limit`` characters, whole on hover."""
    if not value:
        return "-"
    shown = value if len(value) <= limit else f"{value[:limit]}…"
    return format_html('<span title="{}">{}</span>', value, shown)


def seat_value(seat: Seat) -> SafeString | str:
    """The IP address, or the start of the hardware id's digest (the id itself is never
    stored)."""
    return shortened(seat.value, 12 if seat.kind == Seat.Kind.HWID else SHOWN_VALUE)


def seat_is_active(seat: Seat, timeout_minutes: int | None, now: datetime) -> bool:
    """The rule ``delivery.seats.active_seats`` counts by: seen within the team's timeout, or
    at any time when the team has none."""
    if not timeout_minutes:
        return True
    return seat.last_seen_at >= now - timedelta(minutes=timeout_minutes)


def seat_state(seat: Seat, timeout_minutes: int | None, now: datetime) -> str:
    if seat_is_active(seat, timeout_minutes, now):
        return "active"
    return f"idle (unseen for over {timeout_minutes} min)"


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def _list_link(model: str, lookup: str, pk: Any, label: str) -> SafeString:
    url = reverse(f"admin:delivery_{model}_changelist")
    return format_html('<a href="{}?{}={}">{}</a>', url, lookup, pk, label)


def seats_table(license: License) -> SafeString:
    """The license's seats, most recently seen first, each active or idle under its team's
    seat timeout, with the counts against the limits."""
    timeout = license.team.seat_timeout_minutes
    now = timezone.now()
    seats = list(Seat.objects.filter(license=license).order_by("-last_seen_at", "-id"))
    if not seats:
        return format_html("{}", "No seats: nothing has downloaded with this license yet.")
    active = {kind: 0 for kind in Seat.Kind.values}
    for seat in seats:
        active[seat.kind] += seat_is_active(seat, timeout, now)

    def limit(value: int | None) -> str:
        return "unlimited" if value is None else str(value)

    summary = format_html(
        "<p>Active: {} of {} devices, {} of {} IP addresses. Seat timeout: {}. {}</p>",
        active[Seat.Kind.HWID],
        limit(license.hwid_limit),
        active[Seat.Kind.IP],
        limit(license.ip_limit),
        f"{timeout} min" if timeout else "none (seats are kept until freed)",
        _list_link("seat", "license__id__exact", license.pk, f"All {len(seats)} seats"),
    )
    rows = [
        (
            seat.get_kind_display(),
            seat_value(seat),
            when(seat.first_seen_at),
            when(seat.last_seen_at),
            seat_state(seat, timeout, now),
        )
        for seat in seats[:SEATS_SHOWN]
    ]
    table = _table(("Kind", "Value", "First seen", "Last seen", "State"), rows)
    return format_html("{}{}", summary, table)


def downloads_table(downloads: QuerySet[Download], *, lookup: str, pk: Any) -> SafeString:
    """The ``RECENT_DOWNLOADS`` most recent of ``downloads``, and a link to all of them in the
    downloads list (filtered by ``lookup``)."""
    recent = list(
        downloads.select_related("license").order_by("-created_at", "-id")[: RECENT_DOWNLOADS + 1]
    )
    if not recent:
        return format_html("{}", "No downloads yet.")
    rows = [
        (
            when(download.created_at),
            download.version,
            download.get_endpoint_display(),
            str(download.license) if download.license_id else "-",
            download.ip_address or "-",
            shortened(download.hwid_digest, 12),
        )
        for download in recent[:RECENT_DOWNLOADS]
    ]
    label = "All downloads" if len(recent) > RECENT_DOWNLOADS else "In the downloads list"
    return format_html(
        "{}<p>{}</p>",
        _table(("When", "Version", "Endpoint", "License", "IP", "Device"), rows),
        _list_link("download", lookup, pk, label),
    )


@admin.register(Download)
class DownloadAdmin(ViewOnlyAdmin):
    list_display = ("moment", "version", "team", "license", "endpoint", "ip", "device")
    list_filter = ("endpoint", "team")
    list_select_related = ("team", "license")
    search_fields = ("version",)
    date_hierarchy = "created_at"
    fields = (
        "moment",
        "team",
        "release",
        "version",
        "file_id",
        "file_sha256",
        "license",
        "endpoint",
        "ip_address",
        "hwid_digest",
        "user_agent",
    )
    readonly_fields = fields

    @admin.display(description="When", ordering="created_at")
    def moment(self, download: Download) -> str:
        return when(download.created_at)

    @admin.display(description="IP address", ordering="ip_address")
    def ip(self, download: Download) -> SafeString | str:
        return shortened(download.ip_address)

    @admin.display(description="Device")
    def device(self, download: Download) -> SafeString | str:
        return shortened(download.hwid_digest, 12)


@admin.register(Seat)
class SeatAdmin(ViewOnlyAdmin):
    """Seats can only be looked at and freed: deleting one frees it, audited."""

    list_display = ("kind", "shown_value", "license", "team", "first_seen", "last_seen", "state")
    list_filter = ("kind", ("license__team", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("license__team",)
    # An IP address as it is; a hardware id by its digest (see get_search_results).
    search_fields = ("value",)
    fields = ("kind", "shown_value", "license", "team", "first_seen", "last_seen", "state")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The model admin permission still applies; only the ViewOnlyAdmin refusal is lifted.
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Seat], search_term: str
    ) -> tuple[QuerySet[Seat], bool]:
        # Operators have the customer's hardware id, the table only its digest.
        found, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            found |= queryset.filter(kind=Seat.Kind.HWID, value=hwid_digest(term))
        return found, duplicates

    @admin.display(description="Value", ordering="value")
    def shown_value(self, seat: Seat) -> SafeString:
        return seat_value(seat)

    @admin.display(description="Team", ordering="license__team__name")
    def team(self, seat: Seat) -> str:
        return str(seat.license.team)

    @admin.display(description="First seen", ordering="first_seen_at")
    def first_seen(self, seat: Seat) -> str:
        return when(seat.first_seen_at)

    @admin.display(description="Last seen", ordering="last_seen_at")
    def last_seen(self, seat: Seat) -> str:
        return when(seat.last_seen_at)

    @admin.display(description="State")
    def state(self, seat: Seat) -> str:
        return seat_state(seat, seat.license.team.seat_timeout_minutes, timezone.now())

    def delete_model(self, request: HttpRequest, obj: Seat) -> None:
        seat_free(seat=obj, actor=operator_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Seat]) -> None:
        actor = operator_actor(request)
        for seat in queryset.select_related("license"):
            seat_free(seat=seat, actor=actor)
