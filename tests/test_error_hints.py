"""Errors that say how to fix them: a body that is not multipart is told what to send (the
contract's "Unsupported media type" kept), and ``data`` sent as a file part
(``curl -F data=@data.json``) is read as the JSON it holds, within the size Django allows a
text field. (Unknown list parameters, named in the 400, are in test_list_releases.py.)"""

import json
import os

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from releases.models import Release, ReleaseFile
from teams.models import AuditLog
from tests.helpers import (
    assert_error,
    create_data,
    make_jar,
    named_file,
    read_object,
    release_json,
    release_url,
    releases_url,
    result_of,
    team_state,
    update_data,
)

MULTIPART_HINT = {
    "errors": [
        {
            "message": (
                "Send multipart/form-data with the release's JSON in a 'data' field (and the "
                "build in an optional 'file' part), e.g. curl -F 'data=<data.json' -F file=@app.jar"
            ),
            "path": [],
        }
    ]
}


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    """A temporary upload folder of the test's own, to see that no part is left in it."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


def send(client, world, method, url, fields):
    return client.generic(
        method,
        url,
        data=encode_multipart(BOUNDARY, fields),
        content_type=MULTIPART_CONTENT,
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )


def put(client, world, fields):
    return send(client, world, "PUT", release_url(world.team.id, world.release.id), fields)


def post(client, world, fields):
    return send(client, world, "POST", releases_url(world.team.id), fields)


def data_file(content, name="data.json"):
    """``data`` as curl's ``-F data=@data.json`` sends it: a file part."""
    return named_file(name, content.encode() if isinstance(content, str) else content)


# --- 415: what to send instead ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"version": "2.0.0"}'),
        ("application/x-www-form-urlencoded", "data=%7B%7D"),
        ("text/plain", "data"),
    ],
)
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_a_body_that_is_not_multipart_is_told_what_to_send(
    client, world, method, content_type, body
):
    url = (
        release_url(world.team.id, world.release.id)
        if method == "PUT"
        else releases_url(world.team.id)
    )
    before = team_state(world.team)

    response = client.generic(
        method, url, data=body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {world.key}"
    )

    assert_error(response, 415, "Unsupported media type", data=MULTIPART_HINT)
    assert team_state(world.team) == before


# --- data as a file part ------------------------------------------------------------------------


def test_an_update_reads_data_from_a_file_part(client, world, upload_dir):
    data = update_data(
        world.release,
        version="1.0.1",
        status="PUBLISHED",
        metadata=[{"key": "channel", "value": "stable"}],
    )

    response = put(client, world, {"data": data_file(json.dumps(data))})

    assert response.status_code == 200, response.json()
    assert result_of(response) == {"valid": True, "details": "Release updated"}
    assert response.json()["data"] == release_json(world.release)
    release = Release.objects.get(pk=world.release.pk)
    assert (release.version, release.status) == ("1.0.1", "PUBLISHED")
    assert response.json()["data"]["metadata"] == [
        {"key": "channel", "value": "stable", "locked": False}
    ]
    assert AuditLog.objects.get(team=world.team).request_data == data
    # The part went through the upload handler; its temporary file is gone.
    assert os.listdir(upload_dir) == []


def test_a_create_reads_data_from_a_file_part_beside_its_file(client, world, upload_dir):
    jar = make_jar()
    data = create_data(world.product, "4.0.0")

    response = post(
        client, world, {"data": data_file(json.dumps(data)), "file": named_file("app.jar", jar)}
    )

    assert response.status_code == 201, response.json()
    assert result_of(response) == {"valid": True, "details": "Release created"}
    release = Release.objects.get(pk=response.json()["data"]["id"])
    assert response.json()["data"] == release_json(release)
    stored = ReleaseFile.objects.get(release=release)
    assert (stored.name, stored.main_class_name) == ("app.jar", "com.example.Main")
    assert read_object(stored.key) == jar
    assert os.listdir(upload_dir) == []


def test_a_data_file_part_of_exactly_the_limit_is_read(client, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    text = json.dumps(update_data(world.release, version="1.0.2"))
    text += " " * (1000 - len(text))  # JSON allows trailing whitespace

    response = put(client, world, {"data": data_file(text)})

    assert response.status_code == 200, response.json()
    assert Release.objects.get(pk=world.release.pk).version == "1.0.2"


def test_a_data_file_part_over_the_limit_is_too_large_like_a_text_field(
    client, world, settings, upload_dir
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    text = json.dumps(update_data(world.release, version="1.0.2"))
    text += " " * (1001 - len(text))
    before = team_state(world.team)

    as_file = put(client, world, {"data": data_file(text)})
    as_text = put(client, world, {"data": text})

    assert_error(as_file, 413, "Request body too large")
    assert_error(as_text, 413, "Request body too large")
    assert team_state(world.team) == before
    assert os.listdir(upload_dir) == []


def test_a_data_file_part_over_the_file_limit_is_too_large(client, world, settings, upload_dir):
    """Past the file limit the upload handler keeps no bytes: the part cannot be read."""
    settings.MAX_RELEASE_FILE_MB = 1
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    text = json.dumps(update_data(world.release, version="1.0.2"))
    text += " " * (1024 * 1024 + 1 - len(text))
    before = team_state(world.team)

    response = put(client, world, {"data": data_file(text)})

    assert_error(response, 413, "Request body too large")
    assert team_state(world.team) == before
    assert os.listdir(upload_dir) == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'"a string"',
        b'{"version": NaN}',
        '{"version": "1.0.0"}'.encode("utf-16"),
        b'{"version": "\xff1.0"}',
    ],
    ids=["empty", "text", "array", "string", "nan", "utf-16", "bad-utf-8"],
)
def test_a_data_file_part_that_is_not_a_json_object(client, world, content, upload_dir):
    before = team_state(world.team)

    response = put(client, world, {"data": data_file(content)})

    assert_error(response, 400, "Invalid JSON in data field")
    assert team_state(world.team) == before
    assert os.listdir(upload_dir) == []


def test_a_data_file_part_follows_the_field_rules(client, world):
    data = update_data(world.release, version="1", colour="red")
    before = team_state(world.team)

    response = put(client, world, {"data": data_file(json.dumps(data))})

    assert_error(
        response,
        400,
        "Invalid request body",
        data={
            "errors": [
                {"message": "Ensure this field has at least 3 characters.", "path": ["version"]},
                {"message": "Unknown field.", "path": ["colour"]},
            ]
        },
    )
    assert team_state(world.team) == before


@pytest.mark.parametrize("second", ["text", "file"])
def test_data_as_a_file_part_and_again_is_sent_twice(client, world, second):
    text = json.dumps(update_data(world.release, version="1.0.3"))
    again = text if second == "text" else data_file(text, "again.json")
    before = team_state(world.team)

    response = put(client, world, {"data": [data_file(text), again]})

    assert_error(response, 400, "Send the data field once")
    assert team_state(world.team) == before


def test_a_body_without_any_data_part_is_still_missing_data(client, world):
    before = team_state(world.team)

    response = put(client, world, {"release": json.dumps(update_data(world.release))})

    assert_error(response, 400, "Missing data field")
    assert team_state(world.team) == before
