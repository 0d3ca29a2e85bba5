"""Builders shared by the tests: request bodies, multipart PUTs, JAR archives."""

import io
import json
import zipfile
from typing import Any

from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from releases.models import Release


def release_url(team_id: Any, release_id: Any) -> str:
    return f"/api/v1/dev/teams/{team_id}/releases/{release_id}"


def update_data(release: Release, **overrides: Any) -> dict[str, Any]:
    """A valid ``data`` object that leaves ``release`` as it is."""
    data = {
        "version": release.version,
        "productId": str(release.product_id),
        "status": release.status,
        "setAsLatest": False,
        "keepExistingFile": True,
        "branchId": str(release.branch_id) if release.branch_id else None,
        "metadata": [],
        "licenseIds": [],
    }
    data.update(overrides)
    return data


def named_file(name: str, content: bytes) -> io.BytesIO:
    handle = io.BytesIO(content)
    handle.name = name
    return handle


def put_release(
    client: Client,
    team_id: Any,
    release_id: Any,
    *,
    key: str | None,
    data: Any = None,
    file: tuple[str, bytes] | None = None,
    raw_data: str | None = None,
    **extra: Any,
) -> Any:
    """PUT a multipart update. ``data`` is JSON-encoded; ``raw_data`` is sent as it is."""
    fields: dict[str, Any] = {}
    if raw_data is not None:
        fields["data"] = raw_data
    elif data is not None:
        fields["data"] = json.dumps(data)
    if file is not None:
        fields["file"] = named_file(*file)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    headers.update(extra)
    return client.put(
        release_url(team_id, release_id),
        data=encode_multipart(BOUNDARY, fields),
        content_type=MULTIPART_CONTENT,
        **headers,
    )


def make_jar(
    manifest: str | None = "Manifest-Version: 1.0\r\nMain-Class: com.example.Main\r\n\r\n",
    extra: dict[str, bytes | str] | None = None,
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if manifest is not None:
            archive.writestr("META-INF/MANIFEST.MF", manifest)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
        if manifest is None and not extra:
            archive.writestr("readme.txt", "no manifest")
    return buffer.getvalue()


def error(status_details: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    """The ``result`` of an error envelope, without its timestamp."""
    return {"valid": False, "details": status_details, "code": code}


def result_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"data", "result"}, body
    result = dict(body["result"])
    assert result.pop("timestamp").endswith("Z")
    return result
