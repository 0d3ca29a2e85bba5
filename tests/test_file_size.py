"""The file size limit, enforced while the upload streams, and the handler that streams it."""

import hashlib
import json
import os

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from releases.models import ReleaseFile
from releases.uploads import HashingUploadHandler
from tests.helpers import (
    assert_error,
    attach_file,
    named_file,
    put_release,
    read_object,
    release_url,
    stored_objects,
    team_state,
    update_data,
)

MIB = 1024 * 1024
TOO_LARGE = "File too large. Maximum size is 1 MB"


@pytest.fixture(autouse=True)
def one_megabyte_limit(settings):
    settings.MAX_RELEASE_FILE_MB = 1


def put_file(client, world, size, **data):
    return put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, **data),
        file=("build.zip", b"z" * size),
    )


def put_body(client, world, body):
    return client.put(
        release_url(world.team.id, world.release.id),
        data=body,
        content_type=MULTIPART_CONTENT,
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )


def test_one_byte_over_the_limit_is_refused_while_streaming(client, world):
    old = attach_file(world.release)
    before = team_state(world.team)

    response = put_file(client, world, MIB + 1, version="2.0.0", keepExistingFile=False)

    assert MIB + 1 < int(response.wsgi_request.META["CONTENT_LENGTH"]) <= 2 * MIB
    assert_error(response, 413, TOO_LARGE)
    assert team_state(world.team) == before
    assert stored_objects() == [old.key]


def test_exactly_the_limit_is_accepted(client, world):
    response = put_file(client, world, MIB)

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=world.release)
    assert row.size == MIB
    assert row.checksum == hashlib.md5(b"z" * MIB).hexdigest()
    assert read_object(row.key) == b"z" * MIB
    assert stored_objects() == [row.key]


def test_a_body_over_the_limit_plus_one_mebibyte_is_refused_before_it_is_read(client, world):
    response = put_file(client, world, 2 * MIB + 1)

    assert_error(response, 413, TOO_LARGE)
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []


@pytest.mark.parametrize(
    ("fields", "details", "data"),
    [
        pytest.param({}, "Missing data field", None, id="no-data"),
        pytest.param({"data": "{not json"}, "Invalid JSON in data field", None, id="bad-json"),
        pytest.param(
            {"data": json.dumps({"version": "1.0.0"})},
            "Invalid request body",
            "errors",
            id="invalid-body",
        ),
    ],
)
@pytest.mark.parametrize("file_first", [False, True], ids=["data-first", "file-first"])
def test_a_data_error_is_reported_before_an_oversize_file(
    client, world, fields, details, data, file_first
):
    oversize = {"file": named_file("big.zip", b"z" * (MIB + 1))}
    parts = {**oversize, **fields} if file_first else {**fields, **oversize}
    body = encode_multipart(BOUNDARY, parts)
    if fields:
        file_at = body.index(b'name="file"')
        data_at = body.index(b'name="data"')
        assert (file_at < data_at) == file_first

    response = put_body(client, world, body)

    assert response.status_code == 400, response.json()
    body_json = response.json()
    assert body_json["result"]["details"] == details
    assert body_json["result"]["code"] == "BAD_REQUEST"
    if data == "errors":
        assert {error["path"][0] for error in body_json["data"]["errors"]} == {
            "productId",
            "status",
            "setAsLatest",
            "keepExistingFile",
            "branchId",
            "metadata",
            "licenseIds",
        }
    else:
        assert body_json["data"] is None
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []


def test_an_oversize_file_before_the_data_field_is_still_refused(client, world):
    body = encode_multipart(
        BOUNDARY,
        {
            "file": named_file("big.zip", b"z" * (MIB + 1)),
            "data": json.dumps(update_data(world.release)),
        },
    )
    assert body.index(b'name="file"') < body.index(b'name="data"')

    response = put_body(client, world, body)

    assert_error(response, 413, TOO_LARGE)
    assert not ReleaseFile.objects.exists()
    assert stored_objects() == []


def test_a_file_at_the_limit_before_the_data_field_is_accepted(client, world):
    body = encode_multipart(
        BOUNDARY,
        {
            "file": named_file("exact.zip", b"z" * MIB),
            "data": json.dumps(update_data(world.release)),
        },
    )

    response = put_body(client, world, body)

    assert response.status_code == 200, response.json()
    assert ReleaseFile.objects.get(release=world.release).size == MIB


def test_the_limit_in_the_message_follows_the_setting(client, world, settings):
    settings.MAX_RELEASE_FILE_MB = 2

    response = put_file(client, world, 2 * MIB + 1)

    assert_error(response, 413, "File too large. Maximum size is 2 MB")


# --- The upload handler -----------------------------------------------------------------------


def stream(handler, content, chunk_size, after_each=None):
    handler.new_file("file", "build.zip", "application/octet-stream", len(content))
    for start in range(0, len(content), chunk_size):
        handler.receive_data_chunk(content[start : start + chunk_size], start)
        if after_each is not None:
            after_each(handler)
    return handler.file_complete(len(content))


def on_disk(upload):
    upload.file.flush()
    return os.path.getsize(upload.temporary_file_path())


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 200_001])
@pytest.mark.parametrize("chunk_size", [1_000, 65_536])
def test_the_handler_hashes_and_counts_what_it_receives(size, chunk_size):
    content = bytes(index * 7 % 251 for index in range(size))
    handler = HashingUploadHandler(max_bytes=MIB)

    upload = stream(handler, content, chunk_size)

    assert upload.size == size
    assert upload.md5 == hashlib.md5(content).hexdigest()
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert upload.too_large is False
    assert upload.name == "build.zip"
    assert on_disk(upload) == size
    assert upload.read() == content
    upload.close()


def test_the_handler_keeps_exactly_the_limit():
    content = os.urandom(10_000)
    handler = HashingUploadHandler(max_bytes=10_000)

    upload = stream(handler, content, 3_000)

    assert upload.too_large is False
    assert upload.size == 10_000
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert upload.read() == content
    upload.close()


def test_the_handler_stops_writing_past_the_limit():
    limit = 10_000
    content = os.urandom(50_000)
    sizes_seen = []

    upload = stream(
        HashingUploadHandler(max_bytes=limit),
        content,
        3_000,
        after_each=lambda handler: sizes_seen.append(on_disk(handler.upload)),
    )

    assert upload.too_large is True
    assert upload.size == 50_000  # every byte counted...
    assert max(sizes_seen) <= limit  # ...but never more than the limit on disk
    assert on_disk(upload) == 0  # and what was written is dropped
    upload.close()
