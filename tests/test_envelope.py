"""Every response under /api/ is the JSON envelope: unknown URLs, wrong methods and content
types, oversized bodies, unexpected exceptions, whatever the client accepts."""

import logging
import re
from datetime import UTC, datetime

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from releases.views import ReleaseDetailView
from tests.helpers import (
    assert_error,
    named_file,
    put_release,
    release_url,
    result_of,
    team_state,
    update_data,
)

MIB = 1024 * 1024
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
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


def auth(world):
    return {"HTTP_AUTHORIZATION": f"Bearer {world.key}"}


def assert_timestamp(value, earliest, latest):
    assert TIMESTAMP.match(value), value
    moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert earliest.replace(microsecond=earliest.microsecond // 1000 * 1000) <= moment <= latest


class UnreadBody:
    """A request body that records any attempt to read it."""

    def __init__(self):
        self.reads = 0

    def read(self, *args):
        self.reads += 1
        return b""

    readline = read


# --- Unknown URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/",
        "/api/nothing-here",
        "/api/v1/dev/teams",
        "/api/v2/dev/teams/{team}/releases/{release}",
        "/api/v1/dev/teams/{team}/customers",
        "/api/v1/dev/teams/{team}/releases/{release}/",
        "/api/v1/dev/teams/{team}/releases/{release}/file",
    ],
)
@pytest.mark.parametrize("method", ["get", "put", "post", "delete"])
def test_unknown_url_under_api(client, world, path, method):
    before = team_state(world.team)
    url = path.format(team=world.team.id, release=world.release.id)

    response = getattr(client, method)(url, **auth(world))

    assert_error(response, 404, "Not found")
    assert response["X-Request-ID"]
    assert team_state(world.team) == before


def test_trailing_slash_is_not_redirected(client, world):
    """A PUT with a trailing slash is not the release URL, and is answered as JSON, not with
    Django's APPEND_SLASH redirect or error page."""
    before = team_state(world.team)
    body = encode_multipart(BOUNDARY, {"data": "{}"})

    response = client.put(
        release_url(world.team.id, world.release.id) + "/",
        data=body,
        content_type=MULTIPART_CONTENT,
        **auth(world),
    )

    assert_error(response, 404, "Not found")
    assert team_state(world.team) == before


# --- Wrong methods --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "patch", "options"])
def test_wrong_method_on_the_release_url(client, world, method):
    before = team_state(world.team)
    body = encode_multipart(BOUNDARY, {"data": '{"version": "2.0.0"}'})

    response = client.generic(
        method.upper(),
        release_url(world.team.id, world.release.id),
        data=body,
        content_type=MULTIPART_CONTENT,
        **auth(world),
    )

    assert_error(response, 405, "Method not allowed")
    assert response["Allow"] == "GET, PUT, DELETE, HEAD"
    assert team_state(world.team) == before


@pytest.mark.parametrize("method", ["put", "patch", "delete", "options"])
def test_wrong_method_on_the_release_list_url(client, world, method):
    before = team_state(world.team)

    response = client.generic(
        method.upper(), f"/api/v1/dev/teams/{world.team.id}/releases", **auth(world)
    )

    assert_error(response, 405, "Method not allowed")
    assert response["Allow"] == "GET, POST, HEAD"
    assert team_state(world.team) == before


# --- Wrong content types --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", '{"data": {"version": "2.0.0"}}'),
        ("application/x-www-form-urlencoded", "data=%7B%7D"),
        ("text/plain", "data"),
        ("application/octet-stream", "data"),
    ],
)
def test_body_that_is_not_multipart(client, world, content_type, body):
    before = team_state(world.team)

    response = client.put(
        release_url(world.team.id, world.release.id),
        data=body,
        content_type=content_type,
        **auth(world),
    )

    assert_error(response, 415, "Unsupported media type", data=MULTIPART_HINT)
    assert team_state(world.team) == before


# --- Oversized bodies -----------------------------------------------------------------------


def test_content_length_over_the_limit_is_refused_before_reading(client, world):
    before = team_state(world.team)
    stream = UnreadBody()

    response = client.put(
        release_url(world.team.id, world.release.id),
        data=encode_multipart(BOUNDARY, {"data": "{}"}),
        content_type=MULTIPART_CONTENT,
        CONTENT_LENGTH=str(11 * MIB + 1),
        **{"wsgi.input": stream},
        **auth(world),
    )

    assert_error(response, 413, "File too large. Maximum size is 10 MB")
    assert stream.reads == 0
    assert team_state(world.team) == before


def test_the_refusal_follows_the_file_limit_setting(client, world, settings):
    settings.MAX_RELEASE_FILE_MB = 3
    stream = UnreadBody()

    response = client.put(
        release_url(world.team.id, world.release.id),
        data=encode_multipart(BOUNDARY, {"data": "{}"}),
        content_type=MULTIPART_CONTENT,
        CONTENT_LENGTH=str(4 * MIB + 1),
        **{"wsgi.input": stream},
        **auth(world),
    )

    assert_error(response, 413, "File too large. Maximum size is 3 MB")
    assert stream.reads == 0


def body_of_length(length):
    """A multipart body of exactly ``length`` bytes holding only a file part."""
    overhead = len(encode_multipart(BOUNDARY, {"file": named_file("a.bin", b"")}))
    body = encode_multipart(BOUNDARY, {"file": named_file("a.bin", b"x" * (length - overhead))})
    assert len(body) == length
    return body


def test_content_length_of_exactly_the_limit_plus_one_mib_is_read(client, world, settings):
    """At the edge the body is read and parsed (so the missing ``data`` field is what is
    reported); one byte more and it is refused unread."""
    settings.MAX_RELEASE_FILE_MB = 1

    at_limit = client.put(
        release_url(world.team.id, world.release.id),
        data=body_of_length(2 * MIB),
        content_type=MULTIPART_CONTENT,
        **auth(world),
    )
    over = client.put(
        release_url(world.team.id, world.release.id),
        data=body_of_length(2 * MIB + 1),
        content_type=MULTIPART_CONTENT,
        **auth(world),
    )

    assert_error(at_limit, 400, "Missing data field")
    assert_error(over, 413, "File too large. Maximum size is 1 MB")


# --- Unexpected exceptions ------------------------------------------------------------------


def explode(**kwargs):
    raise RuntimeError("database password is hunter2")


def test_unexpected_exception_is_a_logged_500(client, world, monkeypatch, caplog):
    monkeypatch.setattr("releases.views.release_update", explode)
    before = team_state(world.team)

    with caplog.at_level(logging.ERROR, logger="lukittu.api"):
        response = put_release(
            client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
        )

    assert_error(response, 500, "Internal server error", "INTERNAL_SERVER_ERROR")
    assert b"hunter2" not in response.content
    request_id = response["X-Request-ID"]
    assert request_id
    [record] = [r for r in caplog.records if r.name == "lukittu.api"]
    assert record.levelno == logging.ERROR
    assert request_id in record.getMessage()
    assert record.exc_info[0] is RuntimeError
    assert team_state(world.team) == before


def test_the_callers_request_id_is_logged_and_returned(client, world, monkeypatch, caplog):
    monkeypatch.setattr("releases.views.release_update", explode)

    with caplog.at_level(logging.ERROR, logger="lukittu.api"):
        response = put_release(
            client,
            world.team.id,
            world.release.id,
            key=world.key,
            data=update_data(world.release),
            HTTP_X_REQUEST_ID="trace-42",
        )

    assert response.status_code == 500
    assert response["X-Request-ID"] == "trace-42"
    assert any("trace-42" in r.getMessage() for r in caplog.records if r.name == "lukittu.api")


def test_exception_outside_the_handler_is_still_the_envelope(client, world, monkeypatch, caplog):
    """Raised after the view, where DRF's handler no longer catches it: the middleware does."""

    def broken_finalize(self, request, response, *args, **kwargs):
        raise RuntimeError("late failure")

    monkeypatch.setattr(ReleaseDetailView, "finalize_response", broken_finalize)

    with caplog.at_level(logging.ERROR, logger="lukittu.api"):
        response = put_release(
            client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
        )

    assert_error(response, 500, "Internal server error", "INTERNAL_SERVER_ERROR")
    assert response["X-Request-ID"]
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


# --- JSON whatever the client accepts -------------------------------------------------------


def test_html_accept_header_still_gets_json(client, world):
    html = {"HTTP_ACCEPT": "text/html,application/xhtml+xml;q=0.9"}

    unknown = client.get("/api/nothing-here", **html)
    unauthenticated = put_release(
        client, world.team.id, world.release.id, key=None, data=update_data(world.release), **html
    )
    wrong_method = client.patch(release_url(world.team.id, world.release.id), **auth(world), **html)
    updated = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release),
        **html,
    )

    assert_error(unknown, 404, "Not found")
    assert_error(unauthenticated, 401, "Invalid API key", "UNAUTHORIZED")
    assert_error(wrong_method, 405, "Method not allowed")
    assert updated.status_code == 200
    assert updated["Content-Type"] == "application/json"
    assert result_of(updated) == {"valid": True, "details": "Release updated"}


# --- Timestamps -----------------------------------------------------------------------------


def test_timestamps_are_utc_with_milliseconds_and_z(client, world):
    earliest = datetime.now(UTC)

    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, version="1.0.1"),
    )
    refused = put_release(client, world.team.id, world.release.id, key=None, data={})

    latest = datetime.now(UTC)
    body = response.json()
    assert set(body["result"]) == {"timestamp", "valid", "details"}
    assert_timestamp(body["result"]["timestamp"], earliest, latest)
    assert_timestamp(body["data"]["updatedAt"], earliest, latest)
    assert TIMESTAMP.match(body["data"]["createdAt"])
    assert TIMESTAMP.match(body["data"]["product"]["createdAt"])
    assert TIMESTAMP.match(body["data"]["product"]["updatedAt"])
    assert_timestamp(refused.json()["result"]["timestamp"], earliest, latest)
