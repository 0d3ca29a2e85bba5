"""Concurrent updates with real commits: the database rules hold, nobody gets a 500, and SQLite
queues writers instead of failing with "database is locked".

Each thread has its own client and database connection (closed when the thread ends), and a
barrier releases all requests at once."""

import threading

from django.db import connection
from django.db.models import Value
from django.test import Client

from releases import services
from releases.models import Release, ReleaseFile, ReleaseMetadata, ReleaseStatus
from releases.storage import list_objects
from teams.models import AuditLog
from tests.helpers import error, put_release, result_of, update_data

BARRIER_TIMEOUT = 30


def run_together(requests):
    """Run each ``request(client)`` in its own thread, all starting together; their responses
    in the same order."""
    barrier = threading.Barrier(len(requests), timeout=BARRIER_TIMEOUT)
    responses = [None] * len(requests)
    failures = []

    def worker(index, request):
        try:
            client = Client()
            barrier.wait()
            responses[index] = request(client)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(index, request))
        for index, request in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BARRIER_TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    assert not failures, failures
    return responses


def test_version_race_has_one_winner_and_one_409(transactional_db, world):
    # Two releases of the same product on the main (null) branch both claim 2.0.0.
    contenders = [world.release, world.other_release]
    before = {release.pk: release.version for release in contenders}

    def claim(release):
        return lambda client: put_release(
            client,
            world.team.id,
            release.id,
            key=world.key,
            data=update_data(release, version="2.0.0"),
        )

    responses = run_together([claim(release) for release in contenders])

    assert sorted(response.status_code for response in responses) == [200, 409], [
        response.json() for response in responses
    ]
    winner_index = [response.status_code for response in responses].index(200)
    winner, loser = contenders[winner_index], contenders[1 - winner_index]
    conflict = responses[1 - winner_index]
    assert conflict.json()["data"] is None
    assert result_of(conflict) == error(
        "A release with this version already exists for this product and branch"
    )
    assert responses[winner_index].json()["data"]["version"] == "2.0.0"

    assert Release.objects.filter(product=world.product, branch=None, version="2.0.0").count() == 1
    assert Release.objects.get(pk=winner.pk).version == "2.0.0"
    assert Release.objects.get(pk=loser.pk).version == before[loser.pk]
    assert list(
        AuditLog.objects.filter(action="release.update").values_list("target_id", flat=True)
    ) == [str(winner.pk)]


def test_two_set_latest_requests_both_succeed_and_the_last_commit_holds_the_flag(
    transactional_db, world
):
    contenders = [
        Release.objects.create(
            team=world.team,
            product=world.product,
            branch=world.branch,
            version=version,
            status=ReleaseStatus.PUBLISHED,
        )
        for version in ("3.0.0", "3.1.0")
    ]

    def make_latest(release):
        return lambda client: put_release(
            client,
            world.team.id,
            release.id,
            key=world.key,
            data=update_data(release, setAsLatest=True),
        )

    responses = run_together([make_latest(release) for release in contenders])

    assert [response.status_code for response in responses] == [200, 200], [
        response.json() for response in responses
    ]
    assert all(response.json()["data"]["latest"] is True for response in responses)

    latest = list(Release.objects.filter(product=world.product, branch=world.branch, latest=True))
    assert len(latest) == 1
    # The audit entries are written inside each update's transaction, which holds the team's
    # lock until it commits, so the newest entry belongs to the update that committed last.
    entries = list(AuditLog.objects.filter(action="release.update").order_by("id"))
    assert sorted(entry.target_id for entry in entries) == sorted(str(r.pk) for r in contenders)
    last_committed = entries[-1].target_id
    assert str(latest[0].pk) == last_committed
    first_committed = Release.objects.get(pk=entries[0].target_id)
    assert first_committed.latest is False
    assert latest[0].updated_at >= first_committed.updated_at
    # The main line's latest release was not touched by the branch updates.
    world.other_release.refresh_from_db()
    assert world.other_release.latest is True


def test_eight_simultaneous_updates_of_one_team_all_succeed(transactional_db, world):
    releases = [
        Release.objects.create(
            team=world.team,
            product=world.product,
            version=f"5.0.{index}",
            status=ReleaseStatus.DRAFT,
        )
        for index in range(8)
    ]

    def update(index, release):
        return lambda client: put_release(
            client,
            world.team.id,
            release.id,
            key=world.key,
            data=update_data(
                release,
                version=f"6.0.{index}",
                status="PUBLISHED",
                metadata=[{"key": "thread", "value": str(index)}],
            ),
            file=(f"build-{index}.bin", f"build {index}".encode()),
        )

    responses = run_together([update(index, release) for index, release in enumerate(releases)])

    assert [response.status_code for response in responses] == [200] * 8, [
        response.json() for response in responses
    ]
    for index, release in enumerate(releases):
        release.refresh_from_db()
        assert (release.version, release.status) == (f"6.0.{index}", "PUBLISHED")
        assert list(
            ReleaseMetadata.objects.filter(release=release).values_list("key", "value")
        ) == [("thread", str(index))]
        assert release.file.size == len(f"build {index}".encode())
    assert AuditLog.objects.filter(action="release.update").count() == 8


def test_a_clash_the_early_check_misses_is_still_a_409(monkeypatch, transactional_db, world):
    # If two writers ever got past the version check together (no team lock), the unique index
    # would stop the second; that must still be the 409, with nothing changed.
    rule_annotations = services._rule_annotations

    def without_version_check(**kwargs):
        return {**rule_annotations(**kwargs), "version_taken": Value(False)}

    monkeypatch.setattr(services, "_rule_annotations", without_version_check)

    response = put_release(
        Client(),
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, version=world.other_release.version),
    )

    assert response.status_code == 409
    assert response.json()["data"] is None
    assert result_of(response) == error(
        "A release with this version already exists for this product and branch"
    )
    assert Release.objects.get(pk=world.release.pk).version == "1.0.0"
    assert not AuditLog.objects.filter(action="release.update").exists()


def test_two_uploads_racing_for_the_last_of_the_quota_cannot_both_pass(transactional_db, world):
    # Each upload fits the team's limit alone; together they would pass it.
    world.team.storage_limit_bytes = 150_000
    world.team.save(update_fields=["storage_limit_bytes"])
    contenders = [world.release, world.other_release]

    def upload(release, content):
        return lambda client: put_release(
            client,
            world.team.id,
            release.id,
            key=world.key,
            data=update_data(release),
            file=("build.bin", content),
        )

    responses = run_together(
        [upload(release, bytes([index]) * 100_000) for index, release in enumerate(contenders)]
    )

    assert sorted(response.status_code for response in responses) == [200, 400]
    refused = next(response for response in responses if response.status_code == 400)
    assert result_of(refused) == error("Storage limit reached")
    assert list(ReleaseFile.objects.values_list("size", flat=True)) == [100_000]
    assert [item.key for item in list_objects()] == [ReleaseFile.objects.get().key]
