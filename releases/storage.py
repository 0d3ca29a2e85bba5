"""The one place that knows release object keys and talks to the storage backend."""

import base64
import hashlib
import logging
import mimetypes
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.db import DatabaseError
from storages.backends.s3 import S3Storage

from lukittu.api import ApiError, Code

logger = logging.getLogger("releases.storage")

RELEASES_PREFIX = "releases/"
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)
CONTENT_TYPES = {"jar": "application/java-archive", "zip": "application/zip"}
_HASH_CHUNK = 1024 * 1024


class ReleaseS3Storage(S3Storage):
    """S3 with an end-to-end checksum: each PUT carries the SHA-256 computed while the upload
    streamed in, which S3 verifies before storing the object. Uploads are single PUTs (a full
    object checksum cannot be sent with a multipart upload), which S3 allows up to 5 GiB."""

    def __init__(self, **settings: Any) -> None:
        settings.setdefault(
            "transfer_config", TransferConfig(multipart_threshold=5 * 1024**3, use_threads=False)
        )
        super().__init__(**settings)

    def _get_write_parameters(self, name: str, content: Any = None) -> dict[str, Any]:
        params = super()._get_write_parameters(name, content)
        digest = getattr(content, "sha256", None)
        if digest:
            params["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(digest)).decode()
        return params


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified_at: datetime


def storage_unavailable() -> ApiError:
    return ApiError(503, Code.INTERNAL_SERVER_ERROR, "Storage unavailable")


def release_storage() -> Storage:
    return storages["default"]


def release_file_key(
    *, team_id: uuid.UUID, release_id: uuid.UUID, file_id: uuid.UUID, extension: str
) -> str:
    return f"{RELEASES_PREFIX}{team_id}/{release_id}/{file_id}.{extension}"


def release_prefix(*, team_id: uuid.UUID, release_id: uuid.UUID) -> str:
    return f"{RELEASES_PREFIX}{team_id}/{release_id}/"


def content_type_for(extension: str) -> str:
    return (
        CONTENT_TYPES.get(extension)
        or mimetypes.types_map.get(f".{extension}")
        or "application/octet-stream"
    )


def _sha256_of_local(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stored_matches(storage: Storage, key: str, *, size: int, md5: str, sha256: str) -> bool:
    """Reads back what the store holds under ``key`` and compares it with what was received."""
    if isinstance(storage, S3Storage):
        head = storage.connection.meta.client.head_object(
            Bucket=storage.bucket_name, Key=key, ChecksumMode="ENABLED"
        )
        if head["ContentLength"] != size:
            return False
        stored_sha256 = head.get("ChecksumSHA256")
        if stored_sha256 and "-" not in stored_sha256:
            return base64.b64decode(stored_sha256).hex() == sha256
        etag = head.get("ETag", "").strip('"')
        # A single-part upload's ETag is its MD5, except under SSE-KMS (then only the size).
        if len(etag) == 32 and "-" not in etag and head.get("ServerSideEncryption") != "aws:kms":
            return etag == md5
        return True
    if isinstance(storage, FileSystemStorage):
        path = storage.path(key)
        return os.path.getsize(path) == size and _sha256_of_local(path) == sha256
    return storage.size(key) == size


def store_object(
    *, key: str, content: IO[bytes], extension: str, size: int, md5: str, sha256: str
) -> None:
    """Write ``content`` under exactly ``key`` and check that the store holds exactly those
    bytes; any failure is a 503. On failure the caller deletes ``key`` (after its transaction
    has rolled back), since a failed write may still have left something there."""
    upload = File(content, name=key)
    # The client's Content-Type is never trusted: it is derived from the extension.
    upload.content_type = content_type_for(extension)
    upload.sha256 = sha256
    storage = release_storage()
    try:
        stored_as = storage.save(key, upload)
    except STORAGE_ERRORS:
        logger.exception("Storing %s failed", key)
        raise storage_unavailable() from None
    if stored_as != key:
        logger.error("Storage saved %s as %s", key, stored_as)
        delete_object_quietly(stored_as, reason="stored under another name")
        raise storage_unavailable()
    try:
        intact = _stored_matches(storage, key, size=size, md5=md5, sha256=sha256)
    except STORAGE_ERRORS:
        logger.exception("Reading %s back after the write failed", key)
        intact = False
    if not intact:
        logger.error("Stored object %s does not match the upload", key)
        raise storage_unavailable()


def _record_stale(key: str, reason: str, error: Exception) -> None:
    from releases.models import StaleObject

    try:
        stale, created = StaleObject.objects.get_or_create(
            key=key, defaults={"reason": reason, "last_error": repr(error)[:2000]}
        )
        if not created:
            stale.attempts += 1
            stale.last_error = repr(error)[:2000]
            stale.save(update_fields=["attempts", "last_error", "updated_at"])
    except DatabaseError:
        logger.exception("Could not record stale object %s; the reconciler will find it", key)


def delete_object_quietly(key: str, *, reason: str) -> bool:
    """Delete an object; on failure log it and record it for the reconciler instead of raising.
    True when it is gone."""
    try:
        release_storage().delete(key)
    except Exception as error:
        # Any error, not only the storage's own: this runs after commit, where raising would
        # fail an update that has already happened (and its cleanup would then delete the new
        # object the committed row points at).
        logger.exception("Deleting %s (%s) failed; recorded for reconcile_storage", key, reason)
        _record_stale(key, reason, error)
        return False
    return True


def delete_object(key: str) -> None:
    """Delete an object, raising the storage's error on failure."""
    release_storage().delete(key)


def list_objects(prefix: str = RELEASES_PREFIX) -> Iterator[StoredObject]:
    """Every object under ``prefix`` with its size and last modification time."""
    storage = release_storage()
    if isinstance(storage, S3Storage):
        for summary in storage.bucket.objects.filter(Prefix=prefix):
            yield StoredObject(summary.key, summary.size, summary.last_modified)
        return
    if isinstance(storage, FileSystemStorage):
        root = storage.path(prefix)
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                stat = os.stat(path)
                key = os.path.relpath(path, storage.location).replace(os.sep, "/")
                yield StoredObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
        return
    raise NotImplementedError(f"Listing is not supported for {type(storage).__name__}")
