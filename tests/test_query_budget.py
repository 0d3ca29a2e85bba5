"""The update's SQL budget: a full update with a file costs at most 20 statements, however many
metadata entries and licenses it carries, and however many files the team has:

- 1 to authenticate the key (with its team);
- 4 to stage the file before the locked write: the team's lock, the bytes of its uploads in
  flight, the release's current file size, the upload's ledger entry;
- 15 in the locked write: the lock again, the release with the rule checks, the uploads in
  flight again (for the storage limit, under the lock), the demotion of
  the previous latest (only with setAsLatest), the release row, the old file row out and its
  ledger entry in, the new file row in and its entry out, the team's stored bytes, metadata
  and licenses (a delete and one insert each), the audit entry, the team's active webhook
  endpoints (the events are written in the same transaction, when there are any).

After commit one more statement drops the replaced object's ledger entry once it is deleted;
it runs after the test's own transaction, so it is not counted here.

What is counted: every statement the request sends, captured with ``CaptureQueriesContext``,
except transaction control (BEGIN, SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO SAVEPOINT,
COMMIT), whose number depends on the backend and on the test's own wrapping transaction.

The key's ``last_used_at`` is made fresh before measuring, so the once-a-minute touch is not
counted; a separate test shows a stale key costs exactly one more statement, that touch.

"Full" cannot mean everything at once: the contract refuses licenseIds together with
setAsLatest true (400). So two full updates are measured, both on a release that already has a
file, metadata and licenses: (i) a file, 20 metadata, 30 licenses, setAsLatest false; and
(ii) a file, 20 metadata, no licenses, setAsLatest true (which also demotes the previous latest).

Get Release, the API's most frequent read, costs exactly 2 statements whatever the release
carries: the key with its team, and the release with its product, branch, file, metadata and
license ids (``releases.selectors.release_detail``); a stale key adds its touch.
"""

import re
from datetime import timedelta

from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from releases.models import Release, ReleaseFile
from teams.models import ApiKey, Team
from teams.services import license_create
from tests.helpers import put_release, release_url, update_data

BUDGET = 20
TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|COMMIT)\b", re.IGNORECASE
)


def counted(queries):
    return [query["sql"] for query in queries if not TRANSACTION_CONTROL.match(query["sql"])]


def touches_key(sql):
    return sql.lstrip().upper().startswith("UPDATE") and "teams_apikey" in sql


def metadata(count):
    return [{"key": f"key-{index}", "value": f"value {index}"} for index in range(count)]


def give_history(client, world, licenses):
    """The release gets a file, metadata and licenses (and is not latest), as a real update."""
    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(
            world.release,
            status="DRAFT",
            metadata=metadata(3),
            licenseIds=[str(license.id) for license in licenses[:2]],
        ),
        file=("previous.bin", b"previous build"),
    )
    assert response.status_code == 200, response.json()


def measure(client, world, licenses, *, metadata_count, license_count, set_as_latest, fresh=True):
    """Statements sent by one full update (see the module docstring for what is counted)."""
    give_history(client, world, licenses)
    last_used = timezone.now() if fresh else timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(team=world.team).update(last_used_at=last_used)
    data = update_data(
        world.release,
        version="1.2.3",
        status="PUBLISHED",
        setAsLatest=set_as_latest,
        keepExistingFile=False,
        metadata=metadata(metadata_count),
        licenseIds=[str(license.id) for license in licenses[:license_count]],
    )
    with CaptureQueriesContext(connection) as queries:
        response = put_release(
            client,
            world.team.id,
            world.release.id,
            key=world.key,
            data=data,
            file=("build.bin", b"new build"),
        )
    assert response.status_code == 200, response.json()
    body = response.json()["data"]
    assert len(body["metadata"]) == metadata_count
    assert len(body["licenseIds"]) == license_count
    assert body["latest"] is set_as_latest
    assert body["file"]["name"] == "build.bin"
    statements = counted(queries.captured_queries)
    print(
        f"\n{len(statements)} statements: {metadata_count} metadata, {license_count} licenses, "
        f"setAsLatest {set_as_latest}, {'fresh' if fresh else 'stale'} key"
    )
    return statements


def team_licenses(world):
    return [license_create(team=world.team)[0] for _ in range(30)]


def test_full_update_with_licenses_fits_the_budget(client, world):
    licenses = team_licenses(world)

    statements = measure(
        client, world, licenses, metadata_count=20, license_count=30, set_as_latest=False
    )

    assert len(statements) <= BUDGET, "\n".join(statements)


def test_full_update_setting_latest_fits_the_budget(client, world):
    licenses = team_licenses(world)

    statements = measure(
        client, world, licenses, metadata_count=20, license_count=0, set_as_latest=True
    )

    assert len(statements) <= BUDGET, "\n".join(statements)
    world.other_release.refresh_from_db()
    assert world.other_release.latest is False


def test_statement_count_does_not_grow_with_metadata_or_licenses(client, world):
    licenses = team_licenses(world)

    counts = {
        (metadata_count, license_count): len(
            measure(
                client,
                world,
                licenses,
                metadata_count=metadata_count,
                license_count=license_count,
                set_as_latest=False,
            )
        )
        for metadata_count, license_count in ((1, 1), (20, 1), (1, 30), (20, 30))
    }
    latest_counts = {
        metadata_count: len(
            measure(
                client,
                world,
                licenses,
                metadata_count=metadata_count,
                license_count=0,
                set_as_latest=True,
            )
        )
        for metadata_count in (1, 20)
    }

    assert len(set(counts.values())) == 1, counts
    assert len(set(latest_counts.values())) == 1, latest_counts


def test_a_stale_key_costs_exactly_one_more_statement_the_touch(client, world):
    licenses = team_licenses(world)

    fresh = measure(
        client, world, licenses, metadata_count=20, license_count=30, set_as_latest=False
    )
    stale = measure(
        client,
        world,
        licenses,
        metadata_count=20,
        license_count=30,
        set_as_latest=False,
        fresh=False,
    )

    assert len(stale) == len(fresh) + 1, "\n".join(stale)
    assert len([sql for sql in stale if touches_key(sql)]) == 1
    assert not any(touches_key(sql) for sql in fresh)
    key = ApiKey.objects.get(team=world.team)
    assert timezone.now() - key.last_used_at < timedelta(minutes=1)


def give_team_files(world, count, first=0):
    """``count`` more releases of the team, each with a file row (what the quota once summed)."""
    releases = Release.objects.bulk_create(
        Release(
            team=world.team,
            product=world.other_product,
            version=f"100.0.{index}",
            version_sort_key=f"100.0.{index}",
        )
        for index in range(first, first + count)
    )
    ReleaseFile.objects.bulk_create(
        ReleaseFile(
            team=world.team,
            release=release,
            key=f"releases/{world.team.id}/{release.id}/file.bin",
            size=10,
            name="build.bin",
            checksum="0" * 32,
            sha256="0" * 64,
        )
        for release in releases
    )
    Team.objects.filter(pk=world.team.pk).update(
        storage_used_bytes=F("storage_used_bytes") + count * 10
    )


def test_the_quota_check_costs_the_same_however_many_files_the_team_has(client, world):
    """The storage limit is checked against a maintained per-team total and the (few) uploads
    in flight, never a sum over every file: the statements are the same with 10 or 2,000."""
    licenses = team_licenses(world)
    give_team_files(world, 10)
    few = measure(client, world, licenses, metadata_count=5, license_count=5, set_as_latest=False)
    give_team_files(world, 1990, first=10)
    many = measure(client, world, licenses, metadata_count=5, license_count=5, set_as_latest=False)

    assert len(few) == len(many)
    for sql in many:
        assert not ("SUM(" in sql.upper() and "releases_releasefile" in sql), sql


# --- Get Release -------------------------------------------------------------------------------

GET_BUDGET = 2


def measure_get(client, world, release, *, fresh=True):
    """Statements sent by one Get Release of ``release`` (counted as above), and its data."""
    last_used = timezone.now() if fresh else timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(team=world.team).update(last_used_at=last_used)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(
            release_url(world.team.id, release.id), HTTP_AUTHORIZATION=f"Bearer {world.key}"
        )
    assert response.status_code == 200, response.json()
    return counted(queries.captured_queries), response.json()["data"]


def test_get_release_costs_two_statements_whatever_it_carries(client, world):
    bare, bare_data = measure_get(client, world, world.other_release)
    licenses = team_licenses(world)
    give_history(client, world, licenses)
    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(
            world.release,
            status="DRAFT",
            metadata=metadata(20),
            licenseIds=[str(license.id) for license in licenses],
        ),
    )
    assert response.status_code == 200, response.json()
    full, full_data = measure_get(client, world, world.release)

    assert (bare_data["file"], bare_data["metadata"], bare_data["licenseIds"]) == (None, [], [])
    assert full_data["file"] is not None
    assert (len(full_data["metadata"]), len(full_data["licenseIds"])) == (20, 30)
    assert len(bare) == GET_BUDGET, "\n".join(bare)
    assert len(full) == GET_BUDGET, "\n".join(full)
    assert not any(touches_key(sql) for sql in full)


def test_get_release_with_a_stale_key_costs_one_more_statement_the_touch(client, world):
    stale, _ = measure_get(client, world, world.release, fresh=False)

    assert len(stale) == GET_BUDGET + 1, "\n".join(stale)
    assert len([sql for sql in stale if touches_key(sql)]) == 1
