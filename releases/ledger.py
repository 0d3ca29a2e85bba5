"""The one place that decides the fate of stored objects, from committed rows alone.

An object is written only after its ``UPLOADING`` ledger entry has committed, and an object
becomes unreferenced only in a transaction that also commits its ``DELETING`` entry. So
whatever happens to a request (an error, a timeout, a killed process, a COMMIT whose answer
was lost), the database says what each object is, and the deletes here or in
``manage.py reconcile_storage`` follow from that, never from which exception was raised.

An ``UPLOADING`` entry holds its bytes for a lease (``STORAGE_LEASE_SECONDS``) that a thread
of the request's process renews while the request runs, so the reservation of a request that
died lapses within one lease. Every change to an entry is one conditional statement on its
row (settle only while the lease holds, renew only while it holds, abandon only once it has
lapsed), so a commit and an abandonment can never both succeed: the database's row lock
orders them, and whichever comes second finds nothing to change.
"""

import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from lukittu import metrics
from lukittu.api import ApiError, Code
from releases.models import LedgerEntry, ReleaseFile
from releases.storage import delete_object
from teams.models import Team

logger = logging.getLogger("releases.ledger")

State = LedgerEntry.State


# An UPLOADING entry without a lease was made by a process running code from before leases (a
# rolling deploy): it holds for this long after it was made, the grace that code relied on.
UNLEASED_HOLD = timedelta(hours=1)


def _lease_end(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.STORAGE_LEASE_SECONDS)


def _holding(now: datetime) -> Q:
    """Entries whose reservation still holds at ``now``."""
    return Q(lease_expires_at__gt=now) | Q(
        lease_expires_at__isnull=True, created_at__gt=now - UNLEASED_HOLD
    )


def reservation_lapsed() -> ApiError:
    return ApiError(
        503,
        Code.INTERNAL_SERVER_ERROR,
        "The upload's storage reservation lapsed before it could be saved; retry the request",
        headers={"Retry-After": "1"},
    )


def uploads_in_flight(team: Team, *, excluding: str | None = None) -> int:
    """The bytes reserved by the team's uploads in flight (other than ``excluding``). Only
    uploads in flight have entries, so this does not grow with the team's files."""
    entries = LedgerEntry.objects.filter(_holding(timezone.now()), team=team, state=State.UPLOADING)
    if excluding is not None:
        entries = entries.exclude(key=excluding)
    return entries.aggregate(total=Coalesce(Sum("size"), 0))["total"]


def record_upload(*, team: Team, key: str, size: int) -> None:
    """Reserve ``size`` bytes for an object about to be written under ``key``, for one lease.
    The caller holds the team's lock, in a transaction that commits before the write starts,
    and then has the lease kept (``leases.keep``) until its locked write has ended."""
    LedgerEntry.objects.create(
        team=team,
        key=key,
        state=State.UPLOADING,
        size=size,
        reason="upload in flight",
        lease_expires_at=_lease_end(),
    )


def settle_upload(*, key: str) -> None:
    """In the transaction that makes a ReleaseFile row reference ``key``: the reservation ends
    (the caller counts the bytes as stored). It must still be this upload's, with its lease
    holding: otherwise its bytes may have been given to another upload, or the reconciler may
    be deleting the object, so this raises and the caller's transaction rolls back."""
    deleted, _ = LedgerEntry.objects.filter(
        key=key, state=State.UPLOADING, lease_expires_at__gt=timezone.now()
    ).delete()
    if deleted != 1:
        logger.warning("The reservation of %s lapsed before its write; refused", key)
        raise reservation_lapsed()


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
    leases.release(key)
    try:
        with transaction.atomic():
            marked = LedgerEntry.objects.filter(key=key, state=State.UPLOADING).update(
                state=State.DELETING, size=0, reason="upload abandoned"
            )
            # No entry left: its lease lapsed and the reconciler has already abandoned it,
            # possibly before this request's write landed. Committed rows still say the key
            # is abandoned (and nothing references it), so what was written goes too.
            gone = not marked and not LedgerEntry.objects.filter(key=key).exists()
    except DatabaseError:
        logger.exception("Could not mark %s abandoned; reconcile_storage will", key)
        return
    if marked:
        finish_deletions([key])
    elif gone:
        _delete_unrecorded(key)


def _delete_unrecorded(key: str) -> None:
    try:
        if not ReleaseFile.objects.filter(key=key).exists():
            delete_object(key)
    except Exception:
        # Left for the reconciler's orphan sweep (objects no row knows of).
        logger.exception("Deleting abandoned %s failed; the orphan sweep will", key)
        metrics.count_storage_failure("delete")


def abandon_lapsed() -> list[str]:
    """Abandon every upload whose lease has lapsed and delete what each wrote; returns the keys
    abandoned. Each is marked in a statement that re-checks the lease on the row itself, so an
    upload that settled meanwhile is left alone."""
    marked = []
    for key in list(lapsed_uploads().values_list("key", flat=True)):
        with transaction.atomic():
            if (
                lapsed_uploads()
                .filter(key=key)
                .update(state=State.DELETING, size=0, reason="upload abandoned (lease lapsed)")
            ):
                marked.append(key)
    return finish_deletions(marked)


def lapsed_uploads() -> "QuerySet[LedgerEntry]":
    """``UPLOADING`` entries whose lease has lapsed (one made without a lease: an hour after
    it was made)."""
    return LedgerEntry.objects.filter(state=State.UPLOADING).exclude(_holding(timezone.now()))


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


# --- Leases -----------------------------------------------------------------------------------


def renew_leases(keys: list[str]) -> int:
    """Extend the leases of these uploads by one lease, only where they still hold: a lapsed
    lease stays lapsed (its bytes may already be counted for another upload). One statement
    a key, each with the time read just before it: a statement that waits for one row's lock
    (its own settle) then never carries an older time to the next row."""
    renewed = 0
    for key in keys:
        now = timezone.now()
        renewed += LedgerEntry.objects.filter(
            key=key, state=State.UPLOADING, lease_expires_at__gt=now
        ).update(lease_expires_at=_lease_end(now))
    return renewed


class LeaseKeeper:
    """Renews the leases of this process's uploads in flight, from one thread and in one
    statement every third of a lease, so a process that dies (kill -9, a lost host) stops
    renewing them and its reservations lapse within a lease. The thread starts with the
    first upload (in the worker, after any fork) and ends when none is left."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def keep(self, key: str) -> None:
        with self._lock:
            self._keys.add(key)
            thread = self._thread
            if thread is None or self._pid != os.getpid() or not thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="ledger-leases", daemon=True)
                self._thread.start()

    def release(self, key: str) -> None:
        with self._lock:
            self._keys.discard(key)

    def _run(self) -> None:
        period = settings.STORAGE_LEASE_SECONDS / 3
        due = time.monotonic() + period
        try:
            while True:
                # On a fixed schedule, so a slow round does not push the next one back; after
                # a failed round, again within a second.
                time.sleep(max(0.0, due - time.monotonic()))
                with self._lock:
                    keys = sorted(self._keys)
                    if not keys:
                        self._thread = None
                        return
                started = time.monotonic()
                due = started + (period if self._renew(keys) else min(period, 1.0))
        finally:
            connections.close_all()

    def _renew(self, keys: list[str]) -> bool:
        try:
            renew_leases(keys)
        except Exception:
            # Tried again on a fresh connection; if no round succeeds before the leases lapse,
            # the uploads are refused at their locked write, never lost. Any error: the thread
            # must outlive it, or no lease of this process is renewed until the next upload.
            logger.warning("Could not renew %d upload leases", len(keys), exc_info=True)
            connections.close_all()
            return False
        return True


leases = LeaseKeeper()
