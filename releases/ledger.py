"""The one place that decides the fate of stored objects, from committed rows alone.

An object is written only after its ``UPLOADING`` ledger entry has committed, and an object
becomes unreferenced only in a transaction that also commits its ``DELETING`` entry. So
whatever happens to a request (an error, a timeout, a killed process, a COMMIT whose answer
was lost), the database says what each object is, and the deletes here or in
``manage.py reconcile_storage`` follow from that, never from which exception was raised.
"""

import logging
from collections.abc import Iterable

from django.db import DatabaseError, transaction
from django.db.models import F, Sum
from django.db.models.functions import Coalesce

from lukittu import metrics
from releases.models import LedgerEntry, ReleaseFile
from releases.storage import delete_object
from teams.models import Team

logger = logging.getLogger("releases.ledger")

State = LedgerEntry.State


def uploads_in_flight(team: Team, *, excluding: str | None = None) -> int:
    """The bytes reserved by the team's uploads in flight (other than ``excluding``). Only
    uploads in flight have entries, so this does not grow with the team's files."""
    entries = LedgerEntry.objects.filter(team=team, state=State.UPLOADING)
    if excluding is not None:
        entries = entries.exclude(key=excluding)
    return entries.aggregate(total=Coalesce(Sum("size"), 0))["total"]


def record_upload(*, team: Team, key: str, size: int) -> None:
    """Reserve ``size`` bytes for an object about to be written under ``key``. The caller
    holds the team's lock, in a transaction that commits before the write starts."""
    LedgerEntry.objects.create(
        team=team, key=key, state=State.UPLOADING, size=size, reason="upload in flight"
    )


def settle_upload(*, key: str) -> None:
    """In the transaction that makes a ReleaseFile row reference ``key``: the reservation ends
    (the caller counts the bytes as stored)."""
    LedgerEntry.objects.filter(key=key, state=State.UPLOADING).delete()


def record_deletion(*, team: Team, key: str, reason: str) -> None:
    """In the transaction that stops a ReleaseFile row from referencing ``key``."""
    LedgerEntry.objects.create(team=team, key=key, state=State.DELETING, reason=reason)


def change_stored_bytes(team: Team, delta: int) -> None:
    """The team's stored bytes, moved in the same transaction as its file rows."""
    if delta:
        Team.objects.filter(pk=team.pk).update(storage_used_bytes=F("storage_used_bytes") + delta)


def abandon_upload(key: str) -> None:
    """The upload's transaction is known to have rolled back (or never started): nothing
    references ``key``, so release its reservation and delete whatever was written."""
    try:
        with transaction.atomic():
            marked = LedgerEntry.objects.filter(key=key, state=State.UPLOADING).update(
                state=State.DELETING, size=0, reason="upload abandoned"
            )
    except DatabaseError:
        logger.exception("Could not mark %s abandoned; reconcile_storage will", key)
        return
    if marked:
        finish_deletions([key])


def finish_deletions(keys: Iterable[str]) -> list[str]:
    """Delete the objects of these ``DELETING`` entries, then the entries. A failed delete
    stays recorded for ``reconcile_storage``; nothing here raises an ``Exception``. Returns
    the keys deleted."""
    done = []
    for key in keys:
        try:
            if ReleaseFile.objects.filter(key=key).exists():
                # Referenced again (only an operator could do that): never delete it.
                LedgerEntry.objects.filter(key=key, state=State.DELETING).delete()
                continue
            delete_object(key)
            LedgerEntry.objects.filter(key=key, state=State.DELETING).delete()
        except Exception as error:
            # Runs after commit, where raising would fail a write that has already happened.
            logger.exception("Deleting %s failed; recorded for reconcile_storage", key)
            metrics.count_storage_failure("delete")
            _note_failure(key, error)
            continue
        done.append(key)
    return done


def _note_failure(key: str, error: Exception) -> None:
    try:
        LedgerEntry.objects.filter(key=key).update(
            attempts=F("attempts") + 1, last_error=repr(error)[:2000]
        )
    except DatabaseError:
        logger.exception("Could not record the failed delete of %s", key)
