"""Seats: each hardware identifier and IP address that downloads with a license holds one
while it is active (seen within the team's ``seat_timeout_minutes``, or ever when that is
empty). A new device or address over the license's limit is refused.

``take`` checks and takes in one transaction holding the license's row lock, so two new
devices racing for the last seat queue there: the first takes it, the second then counts it
and is refused. ``check`` is the same rule without writing, for the update check. Both count
every kind in one query (``standing``), and ``check`` makes none for an unlimited license.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import IntegerField, Q, QuerySet
from django.utils import timezone

from delivery.models import Download, Seat, hwid_digest
from lukittu.api import ApiError, Code
from lukittu.sql import Output, Statement, Writer, param
from teams.models import License, Team

T = TypeVar("T")


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


@dataclass(frozen=True)
class Standing:
    """A license's seats of one kind, as one device sees them."""

    active: int  # seats in use, the device's own included
    held: bool  # the device has a seat of this kind (in use or idle)
    held_active: bool  # ... and it is in use


def _write_standing(sql: Writer, timeout: bool) -> tuple[str, list[Output]]:
    """One row per kind: its seats in use, and the device's (any, and in use). Parameters:
    [the cutoff, twice], the device's two (kind, value) pairs, the license id, the two kinds.
    S608 below: only the model's quoted table and column names; every value is a parameter."""
    kind, value = sql.col("s.kind"), sql.col("s.value")
    mine = f"(({kind} = %s AND {value} = %s) OR ({kind} = %s AND {value} = %s))"
    if timeout:
        recent = f"{sql.col('s.last_seen_at')} >= %s"
        active = f"COUNT(CASE WHEN {recent} THEN 1 END)"
        held_active = f"COUNT(CASE WHEN {mine} AND {recent} THEN 1 END)"
    else:
        active, held_active = "COUNT(*)", f"COUNT(CASE WHEN {mine} THEN 1 END)"
    held = f"COUNT(CASE WHEN {mine} THEN 1 END)"
    counts = [sql.computed(text, IntegerField()) for text in (active, held, held_active)]
    selected = [sql.column("s.kind"), *counts]
    text = (
        f"SELECT {sql.select(selected)} FROM {sql.table('s')} "  # noqa: S608
        f"WHERE {sql.col('s.license')} = %s AND {kind} IN (%s, %s) GROUP BY {kind}"
    )
    return text, selected


_STANDING = Statement({"s": Seat}, _write_standing)


def standing(team: Team, license: License, device: Device, now: datetime) -> dict[str, Standing]:
    """Per kind the device needs, its ``Standing``: one statement for every kind (the
    update check's and every download's, so written out rather than built by the ORM on
    every request)."""
    wanted = device.wanted()
    # Both placeholders filled even for a device without an address: a kind it does not
    # need matches none of its seats and is left out of the result.
    pairs = [*wanted, *wanted][:2]
    mine = [part for pair in pairs for part in pair]
    timeout = bool(team.seat_timeout_minutes)
    params: list[Any] = []
    if timeout:
        minutes = team.seat_timeout_minutes or 0
        cutoff = param(Seat, "last_seen_at", now - timedelta(minutes=minutes))
        params += [cutoff, *mine, *mine, cutoff]
    else:
        params += [*mine, *mine]
    params += [param(Seat, "license", license.pk), *(kind for kind, _ in pairs)]
    found = {row[0]: row[1:] for row in _STANDING.rows(params, timeout)}
    return {
        kind: Standing(
            active=found.get(kind, (0, 0, 0))[0],
            held=bool(found.get(kind, (0, 0, 0))[1]),
            held_active=bool(found.get(kind, (0, 0, 0))[2]),
        )
        for kind, _ in wanted
    }


def _refuse_if_full(license: License, seats: dict[str, Standing]) -> None:
    """The first kind (in ``Device.wanted``'s order) whose limit a new seat would pass."""
    for kind, seat in seats.items():
        attribute, code, details = LIMIT_ERRORS[kind]
        limit = getattr(license, attribute)
        if limit is not None and not seat.held_active and seat.active >= limit:
            raise ApiError(403, code, details)


def _limited(license: License) -> bool:
    return any(getattr(license, attribute) is not None for attribute, _, _ in LIMIT_ERRORS.values())


def check(team: Team, license: License, device: Device) -> None:
    if _limited(license):
        _refuse_if_full(license, standing(team, license, device, timezone.now()))


@dataclass(frozen=True)
class Handout:
    """What the download record needs besides the seats."""

    release_id: object
    version: str
    file_id: object
    file_sha256: str
    endpoint: str
    user_agent: str


def take(
    team: Team,
    license: License,
    device: Device,
    handout: Handout,
    delivered: Callable[[], T] = lambda: None,
) -> T:
    """Check the seats under the license's lock, take them, and record the download, all in
    one transaction: a refused device leaves no trace, a granted one leaves both.

    ``delivered`` is what is handed out (the stored object, being opened meanwhile): awaited
    once the seats are written and before the commit, so a build that cannot be read rolls
    the transaction back and leaves no seat and no record either. Its errors come after the
    seats', as the README's error order has them. Returns what it returned."""
    with transaction.atomic():
        License.objects.select_for_update().filter(pk=license.pk).values_list("pk").first()
        now = timezone.now()
        seats = standing(team, license, device, now)
        _refuse_if_full(license, seats)
        _occupy(license, device, seats, now)
        _record(team, license, device, handout, now)
        return delivered()


def _occupy(license: License, device: Device, seats: dict[str, Standing], now: datetime) -> None:
    """The device's seats: the ones it holds seen now, the others new."""
    held = Q()
    new = []
    for kind, value in device.wanted():
        if seats[kind].held:
            held |= Q(kind=kind, value=value)
        else:
            new.append(
                Seat(license=license, kind=kind, value=value, first_seen_at=now, last_seen_at=now)
            )
    if held:
        Seat.objects.filter(held, license=license).update(last_seen_at=now)
    if new:
        Seat.objects.bulk_create(new)


def _record(team: Team, license: License, device: Device, handout: Handout, now: datetime) -> None:
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
