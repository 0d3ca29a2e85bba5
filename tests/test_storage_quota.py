"""The team's storage limit: the bytes of all its release files, the replaced file freed first."""

import pytest

from releases.models import ReleaseFile
from teams.models import Team
from tests.helpers import (
    assert_error,
    attach_file,
    put_release,
    read_object,
    stored_objects,
    team_state,
    update_data,
)

KB = 1024
MB = 1024 * KB


# Every test here runs on local files and on the S3 test server.
pytestmark = pytest.mark.usefixtures("backend")


def set_limit(world, limit):
    Team.objects.filter(pk=world.team.pk).update(storage_limit_bytes=limit)


def upload(client, world, release, size, **data):
    return put_release(
        client,
        world.team.id,
        release.id,
        key=world.key,
        data=update_data(release, **data),
        file=("build.zip", b"x" * size),
    )


def test_an_upload_that_would_pass_the_limit_is_refused(client, world):
    set_limit(world, 1 * MB)
    existing = attach_file(world.other_release, "other.zip", b"o" * (500 * KB))
    before = team_state(world.team)

    response = upload(client, world, world.release, 600 * KB, version="2.0.0")

    assert_error(response, 400, "Storage limit reached")
    assert team_state(world.team) == before
    assert not ReleaseFile.objects.filter(release=world.release).exists()
    assert stored_objects() == [existing.key]


def test_replacing_a_file_frees_its_bytes_first(client, world):
    set_limit(world, 1 * MB)
    attach_file(world.release, "old.zip", b"o" * (700 * KB))

    response = upload(client, world, world.release, 600 * KB)

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.size == 600 * KB
    assert read_object(row.key) == b"x" * (600 * KB)


def test_only_the_replaced_file_is_freed(client, world):
    set_limit(world, 1 * MB)
    old = attach_file(world.release, "old.zip", b"o" * (300 * KB))
    other = attach_file(world.other_release, "other.zip", b"o" * (300 * KB))
    before = team_state(world.team)

    # 300 KB (other) + 800 KB (new) > 1 MB, even with this release's 300 KB freed.
    response = upload(client, world, world.release, 800 * KB)

    assert_error(response, 400, "Storage limit reached")
    assert team_state(world.team) == before
    assert sorted(stored_objects()) == sorted([old.key, other.key])
    assert read_object(old.key) == b"o" * (300 * KB)


def test_files_of_other_teams_do_not_count(client, world, outsider):
    set_limit(world, 1 * MB)
    attach_file(outsider.release, "theirs.zip", b"t" * (900 * KB))

    response = upload(client, world, world.release, 600 * KB)

    assert response.status_code == 200, response.json()
    assert ReleaseFile.objects.get(release=world.release).size == 600 * KB


def test_files_of_the_teams_other_releases_count(client, world):
    set_limit(world, 1 * MB)
    attach_file(world.other_release, "other.zip", b"o" * (500 * KB))

    response = upload(client, world, world.release, 525 * KB)

    assert_error(response, 400, "Storage limit reached")
    assert not ReleaseFile.objects.filter(release=world.release).exists()


@pytest.mark.parametrize(
    ("extra", "status"),
    [pytest.param(0, 200, id="exactly-at-the-limit"), pytest.param(1, 400, id="one-byte-over")],
)
def test_exactly_at_the_limit_is_allowed(client, world, extra, status):
    set_limit(world, 1 * MB)
    other = attach_file(world.other_release, "other.zip", b"o" * (400 * KB))

    response = upload(client, world, world.release, 1 * MB - 400 * KB + extra)

    assert response.status_code == status, response.json()
    if status == 200:
        row = ReleaseFile.objects.get(release=world.release)
        assert row.size + other.size == 1 * MB
        assert sorted(stored_objects()) == sorted([other.key, row.key])
    else:
        assert_error(response, 400, "Storage limit reached")
        assert stored_objects() == [other.key]


def test_a_zero_limit_refuses_any_bytes_but_keeping_and_removing_still_work(client, world):
    set_limit(world, 0)
    old = attach_file(world.release, "old.zip", b"stored before the limit changed")

    refused = upload(client, world, world.release, 100 * KB)
    assert_error(refused, 400, "Storage limit reached")
    assert read_object(old.key) == b"stored before the limit changed"

    kept = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, keepExistingFile=True),
    )
    assert kept.status_code == 200, kept.json()
    assert kept.json()["data"]["file"]["id"] == str(old.id)

    removed = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, keepExistingFile=False),
    )
    assert removed.status_code == 200, removed.json()
    assert not ReleaseFile.objects.filter(release=world.release).exists()


def test_a_team_already_over_its_limit_can_still_shrink_a_file(client, world):
    """The limit was lowered after the files were stored: a replacement that leaves the team
    no higher than its limit is fine, one that does not is refused."""
    attach_file(world.other_release, "other.zip", b"o" * (800 * KB))
    attach_file(world.release, "old.zip", b"o" * (800 * KB))
    set_limit(world, 1 * MB)

    too_big = upload(client, world, world.release, 300 * KB)
    assert_error(too_big, 400, "Storage limit reached")

    response = upload(client, world, world.release, 200 * KB)

    assert response.status_code == 200, response.json()
    assert ReleaseFile.objects.get(release=world.release).size == 200 * KB
