"""Incomplete requests change nothing: a body shorter than its Content-Length, a multipart body
with no closing boundary, a body whose reading fails part-way (the client vanished) is 400
"Incomplete request body", and the release, its file (row and bytes), the ledger and the
store are exactly as before. A chunked body of unannounced length is 411. A file part the
client sent is a file; only an empty one with an empty name is "no file".

The live versions, with real sockets cut by real clients, are in test_faults_live.py."""

import json
import threading

import pytest
from django.test.client import FakePayload

from releases.models import LedgerEntry, Release, ReleaseFile
from tests.helpers import (
    assert_error,
    attach_file,
    create_data,
    make_jar,
    release_url,
    releases_url,
    stored_objects,
    team_state,
    update_data,
)

BOUNDARY = "----incomplete-body-tests"
NEW_BUILD = make_jar(extra={"big.bin": bytes(range(256)) * 400})

pytestmark = pytest.mark.usefixtures("backend")


def multipart(data, file=None, *, close=True, boundary=BOUNDARY):
    """A multipart body: the ``data`` part, an optional ``(file name, bytes)`` part, and the
    closing boundary unless ``close`` is false."""
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n'.encode()
        + json.dumps(data).encode()
        + b"\r\n"
    )
    if file is not None:
        name, content = file
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    if close:
        body += f"--{boundary}--\r\n".encode()
    return body


def send(client, world, body, *, method="PUT", url=None, content_length=None, **extra):
    """Send ``body`` as is, announcing ``content_length`` (default: its real length)."""
    url = url or release_url(world.team.id, world.release.id)
    headers = {
        "HTTP_AUTHORIZATION": f"Bearer {world.key}",
        "CONTENT_TYPE": extra.pop("content_type", f"multipart/form-data; boundary={BOUNDARY}"),
        "CONTENT_LENGTH": str(len(body) if content_length is None else content_length),
        "wsgi.input": FakePayload(body),
    }
    headers.update(extra)
    return client.generic(method, url, **headers)


@pytest.fixture
def prepared(world):
    """The release is PUBLISHED and latest, with a stored file: what an update could destroy."""
    Release.objects.filter(pk=world.other_release.pk).update(latest=False)
    Release.objects.filter(pk=world.release.pk).update(status="PUBLISHED", latest=True)
    world.release.refresh_from_db()
    world.old_file = attach_file(world.release, "old.jar", make_jar())
    return world


def destructive(world):
    """An update that, if it went through without its file, would delete the build."""
    return update_data(world.release, version="9.9.9", keepExistingFile=False, setAsLatest=True)


def assert_unchanged(world, before):
    assert team_state(world.team) == before
    assert ReleaseFile.objects.get(release=world.release).key == world.old_file.key
    assert not LedgerEntry.objects.exists()


def test_a_body_that_ends_before_its_content_length_changes_nothing(client, prepared):
    body = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    cut = body[: len(body) // 2]
    before = team_state(prepared.team)
    # The client announced the whole body but sent half of it: reading past what came fails,
    # as a server's read of a closed connection does.
    response = send(client, prepared, cut, content_length=len(body))
    assert_error(response, 400, "Incomplete request body")
    assert_unchanged(prepared, before)


def test_a_content_length_shorter_than_the_body_changes_nothing(client, prepared):
    body = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    before = team_state(prepared.team)
    response = send(client, prepared, body, content_length=len(body) - 100)
    assert_error(response, 400, "Incomplete request body")
    assert_unchanged(prepared, before)


@pytest.mark.parametrize("with_file", [True, False], ids=["file-part", "data-part"])
def test_a_body_without_its_closing_boundary_changes_nothing(client, prepared, with_file):
    file = ("new.jar", NEW_BUILD) if with_file else None
    body = multipart(destructive(prepared), file, close=False)
    before = team_state(prepared.team)
    response = send(client, prepared, body)
    assert_error(response, 400, "Incomplete request body")
    assert_unchanged(prepared, before)


def test_an_empty_body_is_incomplete(client, prepared):
    before = team_state(prepared.team)
    assert_error(send(client, prepared, b""), 400, "Incomplete request body")
    assert_unchanged(prepared, before)


def test_a_create_cut_mid_file_creates_nothing_and_the_latest_stays(client, prepared):
    data = create_data(prepared.product, version="5.0.0", setAsLatest=True)
    body = multipart(data, ("new.jar", NEW_BUILD))
    before = team_state(prepared.team)
    response = send(
        client,
        prepared,
        body[: len(body) - 2000],
        method="POST",
        url=releases_url(prepared.team.id),
        content_length=len(body),
    )
    assert_error(response, 400, "Incomplete request body")
    assert_unchanged(prepared, before)
    assert Release.objects.get(pk=prepared.release.pk).latest


def test_a_chunked_body_without_a_length_is_411(client, prepared):
    body = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    before = team_state(prepared.team)
    response = send(client, prepared, body, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    assert_error(response, 411, "Length required")
    assert_unchanged(prepared, before)


@pytest.mark.parametrize("length", ["12x", "-5", "١٢"])
def test_a_malformed_content_length_is_400(client, prepared, length):
    body = multipart(update_data(prepared.release))
    response = send(client, prepared, body, content_length=length)
    assert_error(response, 400, "Invalid Content-Length")


def test_the_media_type_compares_case_insensitively(client, prepared):
    body = multipart(update_data(prepared.release, version="2.0.0"), ("new.jar", NEW_BUILD))
    response = send(
        client, prepared, body, content_type=f"MULTIPART/FORM-DATA; boundary={BOUNDARY}"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["data"]["version"] == "2.0.0"
    assert ReleaseFile.objects.get(release=prepared.release).size == len(NEW_BUILD)


@pytest.mark.parametrize("name", [".", "..", "dir/", "a/..", "\\"])
def test_a_file_name_that_cleans_down_to_nothing_is_refused_not_dropped(client, prepared, name):
    body = multipart(destructive(prepared), (name, NEW_BUILD))
    before = team_state(prepared.team)
    response = send(client, prepared, body)
    assert_error(response, 400, "File must have an extension")
    assert_unchanged(prepared, before)


@pytest.mark.parametrize("keep", [True, False])
def test_a_browsers_empty_file_part_is_no_file(client, prepared, keep):
    """What a browser sends when no file was chosen: a part with an empty file name and no
    bytes. It means "no file", so keepExistingFile decides."""
    data = update_data(prepared.release, keepExistingFile=keep)
    body = multipart(data, ("", b""))
    response = send(client, prepared, body)
    assert response.status_code == 200, response.json()
    file = response.json()["data"]["file"]
    if keep:
        assert file["id"] == str(prepared.old_file.id)
    else:
        assert file is None
        assert not ReleaseFile.objects.filter(release=prepared.release).exists()


def test_a_nameless_file_part_with_bytes_is_refused(client, prepared):
    body = multipart(destructive(prepared), ("", b"some bytes"))
    before = team_state(prepared.team)
    response = send(client, prepared, body)
    assert_error(response, 400, "The file field must be a file upload")
    assert_unchanged(prepared, before)


def test_nothing_is_left_in_the_store_by_an_incomplete_upload(client, prepared):
    body = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    send(client, prepared, body, content_length=len(body) + 10)
    assert stored_objects() == [prepared.old_file.key]


def test_no_hashing_thread_outlives_an_incomplete_upload(client, prepared):
    body = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    for cut in (len(body) // 3, len(body) - 50):
        send(client, prepared, body[:cut], content_length=len(body))
    for thread in threading.enumerate():
        if thread.name == "upload-digests":
            thread.join(5)
    assert not [t for t in threading.enumerate() if t.name == "upload-digests" and t.is_alive()]
