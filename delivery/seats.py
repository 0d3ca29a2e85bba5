"""Seats: each hardware identifier and IP address that downloads with a license holds one
while it is active (seen within the team's ``seat_timeout_minutes``, or ever when that is
empty). A new device or address over the license's limit is refused.

``take`` checks and takes in one transaction holding the license's row lock, so two new
devices racing for the last seat queue there: the first takes it, the second then counts it
and is refused. ``check`` is the same rule without writing, for the update check.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from delivery.models import Download, Seat, hwid_digest
from lukittu.api import ApiError, Code
from teams.models import License, Team


@dataclass(frozen=True)
class Device:
    hardware_identifier: str
    ip_address: str | None

    @property
    def hwid_digest(self) -> str:
        return hwid_digest(self.hardware_identifier)

    def wanted(self) -> list[tuple[str, str]]:
        """(kind, value) of each seat this device needs, the IP first: the README's error
        order."""
        seats: list[tuple[str, str]] = []
        if self.ip_address is not None:
            seats.append((Seat.Kind.IP, self.ip_address))
        seats.append((Seat.Kind.HWID, self.hwid_digest))
        return seats


LIMIT_ERRORS = {
    Seat.Kind.IP: ("ip_limit", Code.IP_LIMIT_REACHED, "IP limit reached"),
    Seat.Kind.HWID: ("hwid_limit", Code.HWID_LIMIT_REACHED, "HWID limit reached"),
}


def active_seats(team: Team, license: License, kind: str, now: datetime) -> QuerySet[Seat]:
    seats = Seat.objects.filter(license=license, kind=kind)
    if team.seat_timeout_minutes:
        seats = seats.filter(last_seen_at__gte=now - timedelta(minutes=team.seat_timeout_minutes))
    return seats


def _refuse_if_full(team: Team, license: License, kind: str, value: str, now: datetime) -> None:
    attribute, code, details = LIMIT_ERRORS[kind]
    limit = getattr(license, attribute)
    if limit is None:
        return
    active = active_seats(team, license, kind, now)
    if active.filter(value=value).exists():
        return
    if active.count() >= limit:
        raise ApiError(403, code, details)


def check(team: Team, license: License, device: Device) -> None:
    now = timezone.now()
    for kind, value in device.wanted():
        _refuse_if_full(team, license, kind, value, now)


@dataclass(frozen=True)
class Handout:
    """What the download record needs besides the seats."""

    release_id: object
    version: str
    file_id: object
    file_sha256: str
    endpoint: str
    user_agent: str


def take(team: Team, license: License, device: Device, handout: Handout) -> None:
    """Check the seats under the license's lock, take them, and record the download, all in
    one transaction: a refused device leaves no trace, a granted one leaves both."""
    with transaction.atomic():
        License.objects.select_for_update().filter(pk=license.pk).values_list("pk").first()
        now = timezone.now()
        for kind, value in device.wanted():
            _refuse_if_full(team, license, kind, value, now)
        for kind, value in device.wanted():
            updated = Seat.objects.filter(license=license, kind=kind, value=value).update(
                last_seen_at=now
            )
            if not updated:
                Seat.objects.create(
                    license=license, kind=kind, value=value, first_seen_at=now, last_seen_at=now
                )
        Download.objects.create(
            team=team,
            release_id=handout.release_id,
            version=handout.version,
            file_id=handout.file_id,
            file_sha256=handout.file_sha256,
            license=license,
            hwid_digest=device.hwid_digest,
            ip_address=device.ip_address,
            user_agent=handout.user_agent[:512],
            endpoint=handout.endpoint,
            created_at=now,
        )


def free(license: License, kind: str | None = None) -> int:
    """Delete the license's seats (of one kind, or all); returns how many."""
    seats = Seat.objects.filter(license=license)
    if kind is not None:
        seats = seats.filter(kind=kind)
    deleted, _ = seats.delete()
    return deleted
