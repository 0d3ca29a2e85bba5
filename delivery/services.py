"""Operators' writes to delivery's records: freeing seats, audited like every other operator
write (``teams.services.log_action``). The client endpoints take seats in ``delivery.seats``;
only these undo that."""

from django.db import transaction

from delivery import seats
from delivery.models import Seat
from teams.models import License
from teams.services import Actor, log_action

# What the free_seats command and the admin accept, as the stored kinds.
KINDS = {"hwid": Seat.Kind.HWID, "ip": Seat.Kind.IP}
FREE_SEATS = "license.free_seats"


def _lock(license: License) -> License:
    # The row lock ``seats.take`` holds while it counts: a device being admitted right now is
    # either counted before the seats go, or sees them gone.
    return License.objects.select_for_update().select_related("team").get(pk=license.pk)


@transaction.atomic
def license_free_seats(
    *, license: License, kind: str | None = None, actor: Actor | None = None
) -> int:
    """Free the license's seats (all, or those of one ``Seat.Kind``); returns how many. A
    freed device takes a seat again on its next download, if one is free. Records
    ``license.free_seats`` only when something was freed, like every write that changes
    nothing."""
    if kind is not None and kind not in Seat.Kind.values:
        raise ValueError(f"unknown seat kind {kind!r}")
    stored = _lock(license)
    freed = seats.free(stored, kind)
    if freed:
        asked, result = {"kind": kind}, {"freed": freed}
        log_action(actor=actor, action=FREE_SEATS, target=stored, request_data=asked, result=result)
    return freed


@transaction.atomic
def seat_free(*, seat: Seat, actor: Actor | None = None) -> bool:
    """Free one seat (the admin's delete). False if it was already gone. Recorded against the
    license, with the seat it freed, so the license's audit entries tell the whole story."""
    stored = _lock(seat.license)
    deleted, _ = Seat.objects.filter(pk=seat.pk, license=stored).delete()
    if deleted:
        asked = {"kind": seat.kind, "seat": seat.pk, "value": seat.value}
        result = {"freed": deleted}
        log_action(actor=actor, action=FREE_SEATS, target=stored, request_data=asked, result=result)
    return bool(deleted)
