"""The one place that knows release object keys and talks to the storage backend."""

import logging
import mimetypes
import uuid
from typing import IO

from botocore.exceptions import BotoCoreError, ClientError
from django.core.files import File
from django.core.files.storage import Storage, storages

from lukittu.api import ApiError, Code

logger = logging.getLogger("releases.storage")

RELEASES_PREFIX = "releases/"
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)
CONTENT_TYPES = {"jar": "application/java-archive", "zip": "application/zip"}


def storage_unavailable() -> ApiError:
    return ApiError(503, Code.INTERNAL_SERVER_ERROR, "Storage unavailable")


def release_storage() -> Storage:
    return storages["default"]


def release_file_key(
    *, team_id: uuid.UUID, release_id: uuid.UUID, file_id: uuid.UUID, extension: str
) -> str:
    return f"{RELEASES_PREFIX}{team_id}/{release_id}/{file_id}.{extension}"


def content_type_for(extension: str) -> str:
    return (
        CONTENT_TYPES.get(extension)
        or mimetypes.types_map.get(f".{extension}")
        or "application/octet-stream"
    )


def store_object(*, key: str, content: IO[bytes], extension: str) -> None:
    """Write ``content`` under exactly ``key``; a storage failure becomes a 503."""
    upload = File(content, name=key)
    # The client's Content-Type is never trusted: it is derived from the extension.
    upload.content_type = content_type_for(extension)
    try:
        stored_as = release_storage().save(key, upload)
    except STORAGE_ERRORS:
        logger.exception("Storing %s failed", key)
        raise storage_unavailable() from None
    if stored_as != key:
        delete_object_quietly(stored_as)
        logger.error("Storage renamed %s to %s", key, stored_as)
        raise storage_unavailable()


def delete_object_quietly(key: str) -> bool:
    """Delete an object, logging rather than raising on failure. True when it is gone."""
    try:
        release_storage().delete(key)
    except STORAGE_ERRORS:
        logger.exception("Deleting %s failed; it is left for the storage reconciler", key)
        return False
    return True
