"""Reading a stored build as a stream of chunks, never whole: from the local file system, or
from S3 with the client's connect and read timeouts (``lukittu/storage_settings.py``).

``open_object`` opens before the response starts, so a missing object or an unreachable store
is still an error in the envelope; after that the chunks are read as the client takes them.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from django.core.files.storage import FileSystemStorage
from django.utils.http import content_disposition_header

from lukittu.api import ApiError, Code
from releases.storage import STORAGE_ERRORS, release_storage, storage_unavailable

logger = logging.getLogger("lukittu.delivery")

CHUNK = 64 * 1024


class MissingObject(Exception):
    """The row names an object the store does not have."""


def missing_build() -> ApiError:
    return ApiError(500, Code.INTERNAL_SERVER_ERROR, "The release's file is missing from storage")


@dataclass
class OpenObject:
    """A stored object being read; ``chunks`` closes it when done or abandoned."""

    body: Any

    def chunks(self) -> Iterator[bytes]:
        try:
            while chunk := self.body.read(CHUNK):
                yield chunk
        finally:
            self.body.close()

    def close(self) -> None:
        self.body.close()


def open_object(key: str) -> OpenObject:
    storage = release_storage()
    try:
        if isinstance(storage, FileSystemStorage):
            return OpenObject(open(storage.path(key), "rb"))
        client = storage.connection.meta.client
        reply = client.get_object(Bucket=storage.bucket_name, Key=key)
        return OpenObject(reply["Body"])
    except FileNotFoundError:
        logger.error("Stored object %s is missing", key)
        raise missing_build() from None
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            logger.error("Stored object %s is missing", key)
            raise missing_build() from None
        logger.exception("Storage failed opening %s", key)
        raise storage_unavailable() from None
    except STORAGE_ERRORS:
        logger.exception("Storage failed opening %s", key)
        raise storage_unavailable() from None


def uses_s3() -> bool:
    return not isinstance(release_storage(), FileSystemStorage)


def presigned_download_url(key: str, file_name: str, expires_in: int = 300) -> str:
    storage = release_storage()
    client = storage.connection.meta.client
    return client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": storage.bucket_name,
            "Key": key,
            "ResponseContentDisposition": content_disposition_header(True, file_name),
        },
        ExpiresIn=expires_in,
    )
