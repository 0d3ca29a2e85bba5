"""Get Release and Delete Release (``/teams/{teamId}/releases/{releaseId}``): the envelope,
scoping, what a delete removes and when its stored object goes, its audit entry, and what a
delete frees (the latest flag, the version, a place under the release limit)."""

import uuid

import pytest
from django.db import DatabaseError

from releases.models import Release, ReleaseFile, ReleaseLicense, ReleaseMetadata
from teams.models import AuditLog, License, Team, unknown_creator
from tests.helpers import (
    assert_error,
    attach_file,
    create_data,
    make_jar,
    post_release,
    read_object,
    release_json,
    release_url,
    result_of,
    stored_objects,
    team_state,
)

OLD_JAR = make_jar("Manifest-Version: 1.0\r\nMain-Class: com.example.Old\r\n\r\n")


def get(client, world, release_id, key=None):
    return client.get(
        release_url(world.team.id, release_id), HTTP_AUTHORIZATION=f"Bearer {key or world.key}"
    )


def delete(client, world, release_id, key=None, **extra):
    return client.delete(
        release_url(world.team.id, release_id),
        HTTP_AUTHORIZATION=f"Bearer {key or world.key}",
        **extra,
    )


def answer(response):
    return response.status_code, response.json()["data"], result_of(response)


@pytest.fixture
def prepared(world):
    """``world.release`` on the branch, with a file, metadata and two licenses."""
    Release.objects.filter(pk=world.release.pk).update(branch=world.branch)
    world.release.refresh_from_db()
    world.file = attach_file(
        world.release, "plugin.jar", OLD_JAR, main_class_name="com.example.Old"
    )
    ReleaseMetadata.objects.bulk_create(
        [
            ReleaseMetadata(release=world.release, position=0, key="channel", value="beta"),
            ReleaseMetadata(release=world.release, position=1, key="a", value="b", locked=True),
        ]
    )
    ReleaseLicense.objects.bulk_create(
        ReleaseLicense(release=world.release, license=license) for license in world.licenses[:2]
    )
    return world


# --- Get ------------------------------------------------------------------------------------


def test_get_returns_the_whole_envelope(client, prepared):
    world = prepared
    before = team_state(world.team)

    response = get(client, world, world.release.id)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body == {
        "data": {
            "id": str(world.release.id),
            "version": "1.0.0",
            "status": "DRAFT",
            "latest": False,
            "productId": str(world.product.id),
            "branchId": str(world.branch.id),
            "teamId": str(world.team.id),
            "createdAt": body["data"]["createdAt"],
            "updatedAt": body["data"]["updatedAt"],
            "metadata": [
                {"key": "channel", "value": "beta", "locked": False},
                {"key": "a", "value": "b", "locked": True},
            ],
            "product": {
                "id": str(world.product.id),
                "name": world.product.name,
                "url": None,
                "teamId": str(world.team.id),
                "createdByUserId": str(unknown_creator()),
                "createdAt": body["data"]["product"]["createdAt"],
                "updatedAt": body["data"]["product"]["updatedAt"],
            },
            "branch": {"id": str(world.branch.id), "name": "beta"},
            "file": {
                "id": str(world.file.id),
                "key": world.file.key,
                "size": len(OLD_JAR),
                "name": "plugin.jar",
                "checksum": world.file.checksum,
                "sha256": world.file.sha256,
                "mainClassName": "com.example.Old",
                "createdAt": body["data"]["file"]["createdAt"],
            },
            "licenseIds": [str(world.licenses[0].id), str(world.licenses[1].id)],
        },
        "result": {
            "timestamp": body["result"]["timestamp"],
            "valid": True,
            "details": "Release found",
        },
    }
    assert body["data"] == release_json(world.release)
    assert body["result"]["timestamp"].endswith("Z")
    # A read changes nothing and is not audited.
    assert team_state(world.team) == before


def test_get_a_release_without_branch_or_file(client, world):
    response = get(client, world, world.other_release.id)

    assert response.status_code == 200, response.json()
    assert response.json()["data"] == release_json(world.other_release)
    assert response.json()["data"]["latest"] is True
    assert (response.json()["data"]["branch"], response.json()["data"]["file"]) == (None, None)


def test_license_ids_come_back_in_the_order_they_were_given(client, world):
    # Against the ids' own order, so neither an index on them nor luck explains the result.
    license_ids = sorted((str(license.id) for license in world.licenses), reverse=True)
    data = create_data(world.product, "4.0.0", licenseIds=license_ids)

    created = post_release(client, world.team.id, key=world.key, data=data)
    release_id = created.json()["data"]["id"]
    fetched = get(client, world, release_id)
    listed = client.get(
        f"/api/v1/dev/teams/{world.team.id}/releases?search=4.0.0",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )

    assert created.json()["data"]["licenseIds"] == license_ids
    assert fetched.json()["data"]["licenseIds"] == license_ids
    assert listed.json()["data"]["releases"][0]["licenseIds"] == license_ids
    assert delete(client, world, release_id).json()["data"]["licenseIds"] == license_ids


def test_get_never_shows_license_key_material(client, prepared):
    response = get(client, prepared, prepared.release.id)

    text = response.content.decode()
    for license in License.objects.filter(team=prepared.team):
        assert license.key_digest not in text
        assert f'"{license.key_hint}"' not in text
    assert "keyHint" not in text and "key_digest" not in text


def test_outsiders_release_is_not_found_like_a_missing_one(client, world, outsider):
    theirs = get(client, world, outsider.release.id)
    missing = get(client, world, uuid.uuid4())

    assert answer(theirs) == answer(missing)
    assert_error(theirs, 404, "Release not found", "RELEASE_NOT_FOUND")


def test_get_with_a_release_id_that_is_not_a_uuid(client, world):
    assert_error(get(client, world, "not-a-uuid"), 400, "Invalid releaseId")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_no_key_or_an_outsiders_key_is_401(client, world, outsider, method):
    before = team_state(world.team)
    url = release_url(world.team.id, world.release.id)

    without = getattr(client, method)(url)
    outsiders = getattr(client, method)(url, HTTP_AUTHORIZATION=f"Bearer {outsider.key}")

    assert_error(without, 401, "Invalid API key", "UNAUTHORIZED")
    assert_error(outsiders, 401, "Invalid API key", "UNAUTHORIZED")
    assert without["WWW-Authenticate"] == "Bearer"
    assert team_state(world.team) == before


@pytest.mark.parametrize("method", ["get", "delete"])
def test_rate_limit_headers(client, world, method):
    response = getattr(client, method)(
        release_url(world.team.id, world.release.id), HTTP_AUTHORIZATION=f"Bearer {world.key}"
    )

    assert response.status_code == 200, response.json()
    assert (response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"]) == ("1200", "1199")


# --- Delete, on local files and on the S3 test server ---------------------------------------


@pytest.mark.usefixtures("backend")
def test_delete_removes_the_rows_and_the_object_only_after_commit(
    client, prepared, django_capture_on_commit_callbacks
):
    world = prepared
    as_it_was = release_json(world.release)
    other_file = attach_file(world.other_release, "other.zip", b"other release's file")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = delete(client, world, world.release.id)

    assert response.status_code == 200, response.json()
    assert response.json()["data"] == as_it_was
    assert result_of(response) == {"valid": True, "details": "Release deleted"}
    assert not Release.objects.filter(pk=world.release.pk).exists()
    assert not ReleaseMetadata.objects.filter(release_id=world.release.pk).exists()
    assert not ReleaseLicense.objects.filter(release_id=world.release.pk).exists()
    assert not ReleaseFile.objects.filter(pk=world.file.pk).exists()
    # The licenses themselves, the product and the branch stay.
    assert License.objects.filter(team=world.team).count() == 3
    world.product.refresh_from_db()
    world.branch.refresh_from_db()
    # Until the transaction commits, the stored object is still there.
    assert len(callbacks) == 1
    assert read_object(world.file.key) == OLD_JAR
    assert stored_objects() == sorted([world.file.key, other_file.key])

    callbacks[0]()

    assert stored_objects() == [other_file.key]
    assert read_object(other_file.key) == b"other release's file"
    assert ReleaseFile.objects.filter(team=world.team).get() == other_file


@pytest.mark.usefixtures("backend")
def test_after_commit_the_object_is_gone(client, prepared, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = delete(client, prepared, prepared.release.id)

    assert response.status_code == 200, response.json()
    assert len(callbacks) == 1
    assert stored_objects() == []
    assert ReleaseFile.objects.filter(team=prepared.team).count() == 0


@pytest.mark.usefixtures("backend")
def test_a_failed_delete_keeps_everything(
    client, prepared, monkeypatch, django_capture_on_commit_callbacks
):
    before = team_state(prepared.team)

    def fail(*args, **kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(AuditLog.objects, "create", fail)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = delete(client, prepared, prepared.release.id)

    assert_error(response, 500, "Internal server error", "INTERNAL_SERVER_ERROR")
    assert callbacks == []
    monkeypatch.undo()
    assert team_state(prepared.team) == before
    assert read_object(prepared.file.key) == OLD_JAR


def test_delete_without_a_file_schedules_nothing(client, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = delete(client, world, world.release.id)

    assert response.status_code == 200, response.json()
    assert callbacks == []
    assert not Release.objects.filter(pk=world.release.pk).exists()


def test_delete_is_audited_with_the_release_as_it_was(client, prepared):
    world = prepared
    as_it_was = release_json(world.release)

    response = delete(
        client, world, world.release.id, HTTP_USER_AGENT="cleanup/2", REMOTE_ADDR="198.51.100.4"
    )

    assert response.status_code == 200, response.json()
    entry = AuditLog.objects.get(team=world.team)
    assert entry.action == "release.delete"
    assert (entry.target_type, entry.target_id) == ("release", str(world.release.id))
    assert entry.api_key.team_id == world.team.id
    assert entry.actor == entry.api_key.prefix
    assert (entry.ip_address, entry.user_agent) == ("198.51.100.4", "cleanup/2")
    assert entry.request_data is None
    assert entry.result == as_it_was
    assert entry.result["file"]["key"] == world.file.key


def test_deleting_the_latest_leaves_no_latest(client, world):
    response = delete(client, world, world.other_release.id)

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["latest"] is True  # as it was
    assert not Release.objects.filter(product=world.product, latest=True).exists()
    world.release.refresh_from_db()
    assert world.release.latest is False


def test_a_deleted_release_can_be_deleted_only_once(client, world):
    first = delete(client, world, world.release.id)
    second = delete(client, world, world.release.id)

    assert first.status_code == 200
    assert_error(second, 404, "Release not found", "RELEASE_NOT_FOUND")
    assert_error(
        get(client, world, world.release.id), 404, "Release not found", "RELEASE_NOT_FOUND"
    )
    assert AuditLog.objects.filter(team=world.team, action="release.delete").count() == 1


def test_an_outsiders_release_cannot_be_deleted(client, world, outsider):
    before = (team_state(world.team), team_state(outsider.team))

    theirs = delete(client, world, outsider.release.id)
    missing = delete(client, world, uuid.uuid4())

    assert answer(theirs) == answer(missing)
    assert_error(theirs, 404, "Release not found", "RELEASE_NOT_FOUND")
    assert (team_state(world.team), team_state(outsider.team)) == before


def test_delete_with_a_release_id_that_is_not_a_uuid(client, world):
    before = team_state(world.team)

    assert_error(delete(client, world, "1"), 400, "Invalid releaseId")
    assert team_state(world.team) == before


# --- What a delete frees --------------------------------------------------------------------


def test_a_deleted_releases_version_can_be_reused(client, prepared):
    world = prepared
    data = create_data(world.product, "1.0.0", branchId=str(world.branch.id))
    taken = post_release(client, world.team.id, key=world.key, data=data)

    deleted = delete(client, world, world.release.id)
    created = post_release(client, world.team.id, key=world.key, data=data)

    assert taken.status_code == 409
    assert deleted.status_code == 200
    assert created.status_code == 201, created.json()
    assert created.json()["data"]["id"] != str(world.release.id)
    assert Release.objects.get(product=world.product, branch=world.branch).version == "1.0.0"


def test_a_deleted_latest_version_can_be_reused_as_latest(client, world):
    delete(client, world, world.other_release.id)

    data = create_data(world.product, "0.9.0", setAsLatest=True)
    response = post_release(client, world.team.id, key=world.key, data=data)

    assert response.status_code == 201, response.json()
    assert response.json()["data"]["latest"] is True


def test_a_delete_frees_a_place_under_the_release_limit(client, world):
    Team.objects.filter(pk=world.team.pk).update(max_releases_per_product=2)
    data = create_data(world.product, "2.0.0")
    refused = post_release(client, world.team.id, key=world.key, data=data)

    delete(client, world, world.release.id)
    allowed = post_release(client, world.team.id, key=world.key, data=data)

    assert_error(refused, 403, "Max releases per product reached", "FORBIDDEN")
    assert allowed.status_code == 201, allowed.json()
