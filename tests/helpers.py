"""Builders shared by the tests: request bodies, multipart PUTs, JAR archives."""

import errno
import hashlib
import io
import json
import threading
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.db.models import F
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.utils import timezone

from delivery.models import Download, hwid_digest
from lukittu.api import iso_utc
from releases import storage as storage_module
from releases.models import Branch, Product, Release, ReleaseFile, ReleaseLicense, ReleaseMetadata
from releases.storage import list_objects, release_file_key, release_storage, storage_slot
from teams.models import AuditLog, Team


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


def send_multipart(
    client: Client,
    method: str,
    url: str,
    *,
    key: str | None,
    data: Any = None,
    file: tuple[str, bytes] | None = None,
    raw_data: str | None = None,
    **extra: Any,
) -> Any:
    """A multipart request. ``data`` is JSON-encoded; ``raw_data`` is sent as it is."""
    fields: dict[str, Any] = {}
    if raw_data is not None:
        fields["data"] = raw_data
    elif data is not None:
        fields["data"] = json.dumps(data)
    if file is not None:
        fields["file"] = named_file(*file)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    headers.update(extra)
    return client.generic(
        method,
        url,
        data=encode_multipart(BOUNDARY, fields),
        content_type=MULTIPART_CONTENT,
        **headers,
    )


def put_release(client: Client, team_id: Any, release_id: Any, **kwargs: Any) -> Any:
    """PUT a multipart update (see ``send_multipart``)."""
    return send_multipart(client, "PUT", release_url(team_id, release_id), **kwargs)


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


def stored_objects() -> list[str]:
    """Every object in the release storage (local files or the S3 bucket), sorted keys."""
    return sorted(item.key for item in list_objects(prefix=""))


def team_state(team: Any) -> dict[str, Any]:
    """Everything an update may touch for ``team``: release rows, metadata, license links, file
    rows, audit entries and stored objects. Compare before and after a failed request."""
    return {
        "releases": list(Release.objects.filter(team=team).order_by("pk").values()),
        "metadata": list(
            ReleaseMetadata.objects.filter(release__team=team)
            .order_by("release_id", "position", "id")
            .values("release_id", "position", "key", "value", "locked")
        ),
        "licenses": sorted(
            ReleaseLicense.objects.filter(release__team=team).values_list(
                "release_id", "license_id"
            )
        ),
        "files": list(ReleaseFile.objects.filter(team=team).order_by("pk").values()),
        "audit": AuditLog.objects.filter(team=team).count(),
        "stored": stored_objects(),
    }


def assert_error(
    response: Any, status: int, details: str, code: str = "BAD_REQUEST", data: Any = None
) -> None:
    """``response`` is exactly the error envelope (timestamp aside)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    assert response.json()["data"] == data
    assert result_of(response) == error(details, code)


def attach_file(
    release: Release,
    name: str = "old-build.zip",
    content: bytes = b"the old file's bytes",
    main_class_name: str | None = None,
) -> ReleaseFile:
    """Give ``release`` a stored file, as an earlier upload would have: object and row."""
    file_id = uuid.uuid4()
    key = release_file_key(
        team_id=release.team_id,
        release_id=release.pk,
        file_id=file_id,
        extension=name.rsplit(".", 1)[-1].lower(),
    )
    assert release_storage().save(key, ContentFile(content)) == key
    # As the write that stored it would: the team's stored-bytes total moves with its files.
    Team.objects.filter(pk=release.team_id).update(
        storage_used_bytes=F("storage_used_bytes") + len(content)
    )
    return ReleaseFile.objects.create(
        id=file_id,
        team_id=release.team_id,
        release=release,
        key=key,
        size=len(content),
        name=name,
        checksum=hashlib.md5(content).hexdigest(),
        sha256=hashlib.sha256(content).hexdigest(),
        main_class_name=main_class_name,
    )


def read_object(key: str) -> bytes:
    with release_storage().open(key, "rb") as handle:
        return handle.read()


# --- Create, list, get and delete -----------------------------------------------------------


def releases_url(team_id: Any) -> str:
    return f"/api/v1/dev/teams/{team_id}/releases"


def create_data(product: Any, version: str = "3.0.0", **overrides: Any) -> dict[str, Any]:
    """A valid create ``data`` with only the required fields (plus ``overrides``)."""
    data = {"version": version, "productId": str(product.id), "status": "PUBLISHED"}
    data.update(overrides)
    return data


def post_release(client: Client, team_id: Any, **kwargs: Any) -> Any:
    """POST a multipart create (see ``send_multipart``)."""
    return send_multipart(client, "POST", releases_url(team_id), **kwargs)


def release_json(release: Release) -> dict[str, Any]:
    """What the API should say about ``release``, read afresh from the database (independently
    of the service's own serializer)."""
    release = Release.objects.select_related("product", "branch").get(pk=release.pk)
    product = release.product
    file = ReleaseFile.objects.filter(release=release).first()
    return {
        "id": str(release.id),
        "version": release.version,
        "status": release.status,
        "latest": release.latest,
        "productId": str(product.id),
        "branchId": str(release.branch_id) if release.branch_id else None,
        "teamId": str(release.team_id),
        "createdAt": iso_utc(release.created_at),
        "updatedAt": iso_utc(release.updated_at),
        "metadata": [
            {"key": item.key, "value": item.value, "locked": item.locked}
            for item in ReleaseMetadata.objects.filter(release=release).order_by("position", "id")
        ],
        "product": {
            "id": str(product.id),
            "name": product.name,
            "url": product.url,
            "teamId": str(product.team_id),
            "createdByUserId": str(product.created_by_user_id),
            "createdAt": iso_utc(product.created_at),
            "updatedAt": iso_utc(product.updated_at),
        },
        "branch": (
            {"id": str(release.branch.id), "name": release.branch.name} if release.branch else None
        ),
        "file": (
            {
                "id": str(file.id),
                "key": file.key,
                "size": file.size,
                "name": file.name,
                "checksum": file.checksum,
                "sha256": file.sha256,
                "mainClassName": file.main_class_name,
                "createdAt": iso_utc(file.created_at),
            }
            if file
            else None
        ),
        "licenseIds": [
            str(license_id)
            for license_id in ReleaseLicense.objects.filter(release=release)
            .order_by("id")
            .values_list("license_id", flat=True)
        ],
    }


def break_storage_writes(monkeypatch: Any) -> None:
    """Every write to release storage fails, as a storage that is down would."""

    def down(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "storage is down")

    monkeypatch.setattr(storage_module, "_store_local", down)
    monkeypatch.setattr(storage_module, "_store_s3", down)


@contextmanager
def storage_slot_held() -> Iterator[None]:
    """Another thread holds one storage slot for the length of the block (with
    ``STORAGE_CONCURRENCY = 1``, the only one), as a hung storage call would."""
    held, done = threading.Event(), threading.Event()

    def hold_a_slot() -> None:
        with storage_slot():
            held.set()
            done.wait(30)

    holder = threading.Thread(target=hold_a_slot)
    holder.start()
    try:
        assert held.wait(10), "the storage slot was never taken"
        yield
    finally:
        done.set()
        holder.join(10)


def assert_admin_refuses_names(
    staff: Client, world: Any, product_name: str, branch_name: str, message: str
) -> None:
    """The admin's add forms for a product and for a branch of ``world.product`` both answer
    with the form again, saying ``message``, and make nothing."""
    no_branches = {"branches-TOTAL_FORMS": "0", "branches-INITIAL_FORMS": "0"}
    added = staff.post(
        "/admin/releases/product/add/",
        {"team": world.team.pk, "name": product_name, "url": "", **no_branches},
    )
    branch = staff.post(
        "/admin/releases/branch/add/", {"product": world.product.pk, "name": branch_name}
    )

    for response in (added, branch):
        assert response.status_code == 200
        assert message in response.content.decode()
    assert not Product.objects.filter(name=product_name).exists()
    assert not Branch.objects.filter(name=branch_name).exists()


def make_download(
    release: Release,
    license: Any,
    version: str,
    minutes_ago: int = 0,
    *,
    hwid: str = "device-1",
    ip: str = "192.0.2.50",
    endpoint: str = Download.Endpoint.DOWNLOAD,
    **fields: Any,
) -> Download:
    """A recorded download of ``release`` (its file's digest all zeros), made ``minutes_ago``."""
    return Download.objects.create(
        team_id=release.team_id,
        release=release,
        version=version,
        file_sha256="0" * 64,
        license=license,
        hwid_digest=hwid_digest(hwid),
        ip_address=ip,
        endpoint=endpoint,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )
