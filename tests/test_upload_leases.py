"""An upload's reservation is a lease its request renews: the locked write settles exactly its
own live reservation or refuses (503, nothing referenced), the reconciler abandons only lapsed
ones, and a lapsed reservation no longer counts against the team's storage limit."""

import io
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from releases import ledger, services
from releases.models import LedgerEntry, ReleaseFile
from teams.models import Team
from tests.helpers import (
    assert_error,
    attach_file,
    make_jar,
    put_release,
    read_object,
    stored_objects,
    team_state,
    update_data,
)

OLD_BYTES = make_jar("Manifest-Version: 1.0\r\nMain-Class: com.example.Old\r\n\r\n")
NEW_BYTES = make_jar("Manifest-Version: 1.0\r\nMain-Class: com.example.New\r\n\r\n")
LAPSED = "The upload's storage reservation lapsed before it could be saved; retry the request"


@pytest.fixture
def prepared(world, backend):
    world.old_file = attach_file(world.release, "old.jar", OLD_BYTES, main_class_name="Old")
    return world


def put_update(client, world):
    data = update_data(world.release, version="2.0.0", keepExistingFile=False)
    return put_release(
        client, world.team.id, world.release.id, key=world.key, data=data, file=("n.jar", NEW_BYTES)
    )


def before_the_locked_write(monkeypatch, action):
    """Run ``action`` when the update's locked write starts (after its file was stored), as
    if it happened while the write waited for the team's lock."""
    real = services._lock_team
    calls = []

    def lock_team(team):
        calls.append(team)
        if len(calls) == 2:  # the first is the reservation's
            action()
        return real(team)

    monkeypatch.setattr(services, "_lock_team", lock_team)


def reconcile_with_a_one_minute_grace():
    LedgerEntry.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    call_command(
        "reconcile_storage", "--older-than", "1", stdout=io.StringIO(), stderr=io.StringIO()
    )


def test_the_reconciler_leaves_an_upload_whose_lease_holds(client, prepared, monkeypatch):
    """The request is alive (its lease holds) however old its reservation: the reconciler
    must not delete the object it is about to reference."""
    before_the_locked_write(monkeypatch, reconcile_with_a_one_minute_grace)

    response = put_update(client, prepared)

    assert response.status_code == 200, response.content
    row = ReleaseFile.objects.get(release=prepared.release)
    assert read_object(row.key) == NEW_BYTES
    # The replaced build is recorded for deletion once the (test's) transaction commits.
    assert stored_objects() == sorted([row.key, prepared.old_file.key])
    assert list(LedgerEntry.objects.values_list("key", "state")) == [
        (prepared.old_file.key, "DELETING")
    ]


def test_a_write_whose_lease_lapsed_and_was_abandoned_is_refused_and_references_nothing(
    client, prepared, monkeypatch
):
    def lapse_then_reconcile():
        LedgerEntry.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        reconcile_with_a_one_minute_grace()

    before_the_locked_write(monkeypatch, lapse_then_reconcile)
    before = team_state(prepared.team)

    response = put_update(client, prepared)

    assert_error(response, 503, LAPSED, "INTERNAL_SERVER_ERROR")
    assert response["Retry-After"] == "1"
    assert team_state(prepared.team) == before
    assert stored_objects() == [prepared.old_file.key]
    assert not LedgerEntry.objects.exists()


def test_a_write_whose_lease_lapsed_is_refused_and_its_object_deleted(
    client, prepared, monkeypatch
):
    """No reconciler ran: the write itself finds its lease lapsed (its bytes may have been
    counted for another upload since) and abandons its object."""

    def lapse():
        LedgerEntry.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    before_the_locked_write(monkeypatch, lapse)
    before = team_state(prepared.team)

    response = put_update(client, prepared)

    assert_error(response, 503, LAPSED, "INTERNAL_SERVER_ERROR")
    assert team_state(prepared.team) == before
    assert not LedgerEntry.objects.exists()


def uploading_entry(world, name, *, size=1, lease_expires_at=None):
    """An upload in flight of ``world``'s team, its object ``releases/<team>/<name>``; with no
    ``lease_expires_at``, unleased."""
    return LedgerEntry.objects.create(
        team=world.team,
        key=f"releases/{world.team.id}/{name}",
        state="UPLOADING",
        size=size,
        reason="upload in flight",
        lease_expires_at=lease_expires_at,
    )


def test_a_lapsed_reservation_no_longer_counts_against_the_limit(client, prepared):
    Team.objects.filter(pk=prepared.team.pk).update(storage_limit_bytes=len(NEW_BYTES) + 10)
    dead = uploading_entry(
        prepared,
        f"{prepared.release.id}/dead.jar",
        size=len(NEW_BYTES),
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    assert_error(put_update(client, prepared), 400, "Storage limit reached")

    LedgerEntry.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now())
    response = put_update(client, prepared)

    assert response.status_code == 200, response.content
    assert Team.objects.get(pk=prepared.team.pk).storage_used_bytes == len(NEW_BYTES)


def test_leases_are_renewed_only_while_they_hold(world, settings):
    settings.STORAGE_LEASE_SECONDS = 60
    now = timezone.now()
    live, lapsed = (
        uploading_entry(world, name, lease_expires_at=now + offset)
        for name, offset in (("live", timedelta(seconds=5)), ("lapsed", -timedelta(seconds=1)))
    )

    assert ledger.renew_leases([live.key, lapsed.key]) == 1

    live.refresh_from_db()
    lapsed.refresh_from_db()
    assert live.lease_expires_at > now + timedelta(seconds=50)
    assert lapsed.lease_expires_at < now


def leased_entry(world, *, seconds):
    """An upload in flight whose lease ends in ``seconds``."""
    return uploading_entry(
        world, "kept.jar", lease_expires_at=timezone.now() + timedelta(seconds=seconds)
    )


@pytest.mark.django_db(transaction=True)
def test_the_lease_keeper_renews_until_released(world, settings):
    """The process's one renewing thread keeps a lease alive past its length, and stops
    renewing it once released, so it lapses."""
    settings.STORAGE_LEASE_SECONDS = 1
    entry = leased_entry(world, seconds=1)
    keeper = ledger.LeaseKeeper()
    keeper.keep(entry.key)
    try:
        time.sleep(2.5)
        entry.refresh_from_db()
        assert entry.lease_expires_at > timezone.now()
    finally:
        keeper.release(entry.key)
    time.sleep(2.0)
    entry.refresh_from_db()
    assert entry.lease_expires_at < timezone.now()
    # With nothing left to renew, its thread ends (no thread per process kept for ever).
    deadline = time.monotonic() + 3
    while keeper._thread is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert keeper._thread is None


def test_a_write_that_lands_after_the_reconciler_abandoned_it_is_deleted(
    client, prepared, monkeypatch
):
    """The lease lapsed, the reconciler abandoned the upload (deleting its entry and what was
    there), and only then did the request's object land: the refused write still deletes it,
    though no entry is left to say so (the committed rows say the key is abandoned)."""
    from django.core.files.base import ContentFile

    from releases.storage import release_storage

    def lapse_reconcile_then_land():
        key = LedgerEntry.objects.get(state="UPLOADING").key
        LedgerEntry.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        reconcile_with_a_one_minute_grace()
        assert key not in stored_objects()
        release_storage().save(key, ContentFile(NEW_BYTES))  # the late PUT

    store = services.store_object

    def store_then_stall(**kwargs):
        # Outside the locked write's transaction, so a refused write does not roll the
        # reconciler's work back.
        store(**kwargs)
        lapse_reconcile_then_land()

    monkeypatch.setattr(services, "store_object", store_then_stall)

    assert_error(put_update(client, prepared), 503, LAPSED, "INTERNAL_SERVER_ERROR")
    assert stored_objects() == [prepared.old_file.key]
    assert not LedgerEntry.objects.exists()


def unleased_entry(world, *, age):
    """An UPLOADING entry as code from before leases made it (a rolling deploy): no lease."""
    entry = uploading_entry(
        world, f"{world.release.id}/old-code-{age.seconds}.jar", size=len(NEW_BYTES)
    )
    LedgerEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - age)
    return entry


def test_an_entry_made_without_a_lease_holds_for_an_hour(client, prepared):
    """Mid-deploy, a process still on the old code reserves without a lease: the reconciler
    must not abandon it (its object would be deleted under a commit) and it counts against
    the limit, for the hour that code relied on."""
    young = unleased_entry(prepared, age=timedelta(minutes=5))
    old = unleased_entry(prepared, age=timedelta(minutes=61))

    assert ledger.uploads_in_flight(prepared.team) == young.size
    assert list(ledger.lapsed_uploads().values_list("key", flat=True)) == [old.key]


@pytest.mark.django_db(transaction=True)
def test_the_lease_keeper_survives_a_failed_round(world, settings, monkeypatch):
    """A round that fails with any error (here the connection's InterfaceError) is tried
    again: the thread goes on, and the lease is kept."""
    from django.db import InterfaceError

    settings.STORAGE_LEASE_SECONDS = 3
    entry = leased_entry(world, seconds=3)
    real = ledger.renew_leases
    rounds = []

    def first_round_fails(keys):
        rounds.append(keys)
        if len(rounds) == 1:
            raise InterfaceError("connection already closed")
        return real(keys)

    monkeypatch.setattr(ledger, "renew_leases", first_round_fails)
    keeper = ledger.LeaseKeeper()
    keeper.keep(entry.key)
    try:
        time.sleep(4.0)
        entry.refresh_from_db()
        assert len(rounds) >= 2
        assert entry.lease_expires_at > timezone.now()
    finally:
        keeper.release(entry.key)
