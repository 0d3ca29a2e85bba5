"""The release's file: upload, replace, keep and remove, names, extensions and object keys."""

import hashlib
import json
import re

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT

from lukittu.api import iso_utc
from releases.models import Release, ReleaseFile
from releases.services import clean_file_name
from tests.conftest import build_world
from tests.helpers import (
    assert_error,
    attach_file,
    make_jar,
    put_release,
    read_object,
    release_url,
    result_of,
    stored_objects,
    team_state,
    update_data,
)

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def upload(client, world, name, content, **overrides):
    """PUT ``content`` as ``name`` to the owner's release, with its data otherwise unchanged."""
    return put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, **overrides),
        file=(name, content),
    )


# Every test here runs on local files and on the S3 test server.
pytestmark = pytest.mark.usefixtures("backend")


def file_json(row):
    return {
        "id": str(row.id),
        "key": row.key,
        "size": row.size,
        "name": row.name,
        "checksum": row.checksum,
        "sha256": row.sha256,
        "mainClassName": row.main_class_name,
        "createdAt": iso_utc(row.created_at),
    }


def put_raw_file_name(client, world, data, file_name, content):
    """A multipart PUT whose file part carries ``file_name`` exactly as given (the test client
    would strip a path from it before sending)."""
    body = (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="data"\r\n\r\n'
            f"{json.dumps(data)}\r\n"
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return client.put(
        release_url(world.team.id, world.release.id),
        data=body,
        content_type=MULTIPART_CONTENT,
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )


def test_upload_to_a_release_without_a_file(client, world):
    content = b"PK not really, but a zip by name \x00\x01\x02" * 50

    response = upload(client, world, "Build-1.0.ZIP", content)

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert re.fullmatch(rf"releases/{world.team.id}/{world.release.id}/{UUID}\.zip", row.key)
    assert row.key == f"releases/{world.team.id}/{world.release.id}/{row.id}.zip"
    assert row.team_id == world.team.id
    assert row.size == len(content)
    assert row.name == "Build-1.0.ZIP"
    assert row.checksum == hashlib.md5(content).hexdigest()
    assert row.sha256 == hashlib.sha256(content).hexdigest()
    assert row.main_class_name is None
    assert row.created_at is not None
    assert read_object(row.key) == content
    assert stored_objects() == [row.key]
    assert response.json()["data"]["file"] == {
        "id": str(row.id),
        "key": row.key,
        "size": len(content),
        "name": "Build-1.0.ZIP",
        "checksum": hashlib.md5(content).hexdigest(),
        "sha256": hashlib.sha256(content).hexdigest(),
        "mainClassName": None,
        "createdAt": iso_utc(row.created_at),
    }
    assert result_of(response) == {"valid": True, "details": "Release updated"}


def test_a_sent_file_replaces_the_old_one_and_the_old_object_goes_after_commit(
    client, world, django_capture_on_commit_callbacks
):
    old = attach_file(world.release, "old.zip", b"old bytes")
    content = b"new bytes, longer than the old ones"

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload(client, world, "new.zip", content)
        # Not committed yet: the old object is still there.
        assert read_object(old.key) == b"old bytes"

    assert response.status_code == 200, response.json()
    assert len(callbacks) == 1
    row = ReleaseFile.objects.get(release=world.release)
    assert row.id != old.id
    assert row.key != old.key
    assert row.key == f"releases/{world.team.id}/{world.release.id}/{row.id}.zip"
    assert (row.name, row.size) == ("new.zip", len(content))
    assert row.checksum == hashlib.md5(content).hexdigest()
    assert not ReleaseFile.objects.filter(pk=old.pk).exists()
    assert read_object(row.key) == content
    assert stored_objects() == [row.key]
    assert response.json()["data"]["file"] == file_json(row)


def test_the_replaced_object_stays_until_the_transaction_commits(
    client, world, django_capture_on_commit_callbacks
):
    old = attach_file(world.release, "old.zip", b"old bytes")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(client, world, "new.zip", b"new bytes")

    assert response.status_code == 200, response.json()
    assert len(callbacks) == 1
    row = ReleaseFile.objects.get(release=world.release)
    assert read_object(old.key) == b"old bytes"
    assert sorted(stored_objects()) == sorted([old.key, row.key])


def test_no_file_and_keep_keeps_the_file(client, world, django_capture_on_commit_callbacks):
    old = attach_file(world.release, "kept.jar", b"kept bytes", main_class_name="a.Main")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = put_release(
            client,
            world.team.id,
            world.release.id,
            key=world.key,
            data=update_data(world.release, version="1.0.1", keepExistingFile=True),
        )

    assert response.status_code == 200, response.json()
    assert callbacks == []
    row = ReleaseFile.objects.get(release=world.release)
    assert [row.id, row.key, row.name, row.size] == [old.id, old.key, "kept.jar", 10]
    assert row.main_class_name == "a.Main"
    assert read_object(old.key) == b"kept bytes"
    assert stored_objects() == [old.key]
    assert response.json()["data"]["file"] == file_json(old)
    assert Release.objects.get(pk=world.release.pk).version == "1.0.1"


def test_no_file_and_no_keep_removes_the_file_after_commit(
    client, world, django_capture_on_commit_callbacks
):
    old = attach_file(world.release, "gone.zip", b"gone bytes")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = put_release(
            client,
            world.team.id,
            world.release.id,
            key=world.key,
            data=update_data(world.release, keepExistingFile=False),
        )
        assert read_object(old.key) == b"gone bytes"

    assert response.status_code == 200, response.json()
    assert len(callbacks) == 1
    assert response.json()["data"]["file"] is None
    assert not ReleaseFile.objects.filter(release=world.release).exists()
    assert stored_objects() == []


def test_removing_when_there_is_no_file_is_fine(client, world):
    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, keepExistingFile=False),
    )

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["file"] is None
    assert not ReleaseFile.objects.exists()


@pytest.fixture
def free_world(db):
    """A team without the paid file-upload feature, whose release has a file from before."""
    free = build_world("Free", file_uploads=False)
    free.file = attach_file(free.release, "from-before.zip", b"bytes from before")
    return free


def test_a_team_without_file_uploads_can_keep_its_file(client, free_world):
    response = put_release(
        client,
        free_world.team.id,
        free_world.release.id,
        key=free_world.key,
        data=update_data(free_world.release, keepExistingFile=True),
    )

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["file"] == file_json(free_world.file)
    assert ReleaseFile.objects.get(release=free_world.release).id == free_world.file.id
    assert read_object(free_world.file.key) == b"bytes from before"


def test_a_team_without_file_uploads_can_remove_its_file(
    client, free_world, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = put_release(
            client,
            free_world.team.id,
            free_world.release.id,
            key=free_world.key,
            data=update_data(free_world.release, keepExistingFile=False),
        )

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["file"] is None
    assert not ReleaseFile.objects.filter(release=free_world.release).exists()
    assert stored_objects() == []


def test_a_team_without_file_uploads_cannot_send_a_file(
    client, free_world, django_capture_on_commit_callbacks
):
    before = team_state(free_world.team)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = put_release(
            client,
            free_world.team.id,
            free_world.release.id,
            key=free_world.key,
            data=update_data(free_world.release, version="2.0.0", keepExistingFile=False),
            file=("new.zip", b"new bytes"),
        )

    assert_error(response, 403, "File uploads require a paid subscription", "FORBIDDEN")
    assert callbacks == []
    assert team_state(free_world.team) == before
    assert stored_objects() == [free_world.file.key]
    assert read_object(free_world.file.key) == b"bytes from before"


@pytest.mark.parametrize(
    ("sent_name", "kept_name"),
    [
        ("../../etc/x.jar", "x.jar"),
        ("C:\\dir\\a.zip", "a.zip"),
        ("/abs/path/to/b.zip", "b.zip"),
        ("..\\..\\windows\\c.zip", "c.zip"),
    ],
)
def test_a_path_in_the_file_name_is_dropped(client, world, sent_name, kept_name):
    content = make_jar() if kept_name.endswith(".jar") else b"zip bytes"

    response = put_raw_file_name(client, world, update_data(world.release), sent_name, content)

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.name == kept_name
    assert response.json()["data"]["file"]["name"] == kept_name
    extension = kept_name.rsplit(".", 1)[1]
    assert row.key == f"releases/{world.team.id}/{world.release.id}/{row.id}.{extension}"
    assert stored_objects() == [row.key]
    assert read_object(row.key) == content


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("../../etc/x.jar", "x.jar"),
        ("C:\\dir\\a.zip", "a.zip"),
        ("dir/sub\\mixed/name.zip", "name.zip"),
        ("bad\x00na\x1fme\x7f.zip", "badname.zip"),
        ("  spaced.zip  ", "spaced.zip"),
        ("x" * 300 + ".jar", "x" * 251 + ".jar"),
    ],
)
def test_clean_file_name(raw, cleaned):
    assert clean_file_name(raw) == cleaned
    assert len(clean_file_name(raw)) <= 255


@pytest.mark.parametrize(
    "name",
    [
        "noext",
        "name.",
        "archive.abcdefghijklmnopq",  # 17 characters
        "archive.ta-r",
        "archive.tar_gz",
        "archive.zi p",
        "archive.zíp",
        "trailing.zip.",
    ],
)
def test_a_file_name_without_a_proper_extension_is_refused(client, world, name):
    old = attach_file(world.release, "old.zip", b"old bytes")
    before = team_state(world.team)

    response = put_raw_file_name(
        client, world, update_data(world.release, version="9.9.9"), name, b"bytes"
    )

    assert_error(response, 400, "File must have an extension")
    assert team_state(world.team) == before
    assert stored_objects() == [old.key]


def test_an_extension_of_sixteen_letters_and_digits_is_accepted(client, world):
    response = upload(client, world, "archive.ABCDEFGHIJKLMNO1", b"bytes")

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.key == f"releases/{world.team.id}/{world.release.id}/{row.id}.abcdefghijklmno1"
    assert row.name == "archive.ABCDEFGHIJKLMNO1"


def test_an_empty_file_is_accepted(client, world):
    """The code accepts a 0-byte file (of a non-JAR type): it is stored as an empty object."""
    response = upload(client, world, "empty.txt", b"")

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.size == 0
    assert row.checksum == "d41d8cd98f00b204e9800998ecf8427e"
    assert row.sha256 == hashlib.sha256(b"").hexdigest()
    assert read_object(row.key) == b""
    assert response.json()["data"]["file"] == file_json(row)


def test_an_empty_jar_is_not_a_jar(client, world):
    response = upload(client, world, "empty.jar", b"")

    assert_error(response, 400, "Invalid JAR file")
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []


def test_two_releases_never_share_an_object(client, world):
    content = b"the very same bytes"
    for release in (world.release, world.other_release):
        response = put_release(
            client,
            world.team.id,
            release.id,
            key=world.key,
            data=update_data(release),
            file=("same-name.zip", content),
        )
        assert response.status_code == 200, response.json()

    first = ReleaseFile.objects.get(release=world.release)
    second = ReleaseFile.objects.get(release=world.other_release)
    assert first.key != second.key
    assert first.key.startswith(f"releases/{world.team.id}/{world.release.id}/")
    assert second.key.startswith(f"releases/{world.team.id}/{world.other_release.id}/")
    assert first.checksum == second.checksum
    assert sorted(stored_objects()) == sorted([first.key, second.key])
    assert read_object(first.key) == read_object(second.key) == content


def test_the_same_bytes_twice_get_different_keys(client, world, django_capture_on_commit_callbacks):
    keys = []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(client, world, "build.zip", b"identical")
        assert response.status_code == 200, response.json()
        keys.append(response.json()["data"]["file"]["key"])

    assert keys[0] != keys[1]
    assert ReleaseFile.objects.get(release=world.release).key == keys[1]
    assert stored_objects() == [keys[1]]
    assert read_object(keys[1]) == b"identical"
