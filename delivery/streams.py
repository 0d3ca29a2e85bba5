"""Reading a stored build as a stream of chunks, never whole: from the local file system, or
from S3 with the client's connect and read timeouts (``lukittu/storage_settings.py``).

``open_object`` opens before the response starts, so a missing object or an unreachable store
is still an error in the envelope; after that the chunks are read as the client takes them.
"""

import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from django.core.files.storage import FileSystemStorage
from django.utils.http import content_disposition_header

from lukittu.api import ApiError, Code
from releases.storage import STORAGE_ERRORS, release_storage, storage_unavailable

logger = logging.getLogger("lukittu.delivery")

# The plaintext of one classloader frame (Lukittu's loaders take any size; this is the
# protocol's usual one).
CHUNK = 64 * 1024
# What is read from storage, and written to the client, at a time: a few frames' worth, so
# each write and each storage read carries enough bytes for its per-call cost not to matter,
# and a worker holds a few hundred KiB per download, not the file.
READ_BLOCK = 4 * CHUNK
# Objects being opened at once per process (``open_soon``); more wait for a free thread.
OPENING_THREADS = 16
# How long a presigned download URL works.
PRESIGNED_SECONDS = 300


class WrongSize(Exception):
    """The stored object is not as long as its row says: the stream is cut off rather than
    delivering other bytes than the row describes (the client sees a short body)."""


def missing_build() -> ApiError:
    return ApiError(500, Code.INTERNAL_SERVER_ERROR, "The release's file is missing from storage")


@dataclass
class OpenObject:
    """A stored object being read; ``blocks`` closes it when done or abandoned."""

    body: Any
    key: str

    def blocks(self, size: int) -> Iterator[bytes]:
        """The object in READ_BLOCK-byte blocks (the last one shorter), which must add up to
        ``size``, the length its row records."""
        read = 0
        try:
            while block := self._read_block():
                read += len(block)
                if read > size:
                    break
                yield block
            if read != size:
                logger.error(
                    "Stored object %s is not %d bytes long as its row says", self.key, size
                )
                raise WrongSize(self.key)
        finally:
            self.body.close()

    def _read_block(self) -> bytes:
        """READ_BLOCK bytes, fewer only at the end (a network stream may return less a read)."""
        parts = []
        wanted = READ_BLOCK
        while wanted and (part := self.body.read(wanted)):
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        self.body.close()


def open_object(key: str) -> OpenObject:
    return _opened(key, _body_opener(key))


def _body_opener(key: str) -> Callable[[], Any]:
    """What opens the object's body, made in the request's thread: on S3 with the request
    thread's client (``storage.connection`` is one per thread; boto3 clients are thread-safe,
    so an opening thread of ``open_soon`` makes no connection of its own)."""
    storage = release_storage()
    if isinstance(storage, FileSystemStorage):
        return lambda: open(storage.path(key), "rb")
    client = storage.connection.meta.client
    return lambda: client.get_object(Bucket=storage.bucket_name, Key=key)["Body"]


def _opened(key: str, open_body: Callable[[], Any]) -> OpenObject:
    try:
        return OpenObject(open_body(), key)
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


class PendingObject:
    """A stored object being opened while the request goes on (``open_soon``).

    ``result`` waits for it: the open object, or the ``ApiError`` opening it raised (the
    S3 client's connect and read timeouts bound the wait). A request that ends without
    taking it calls ``abandon``, which closes the object whenever it arrives."""

    def __init__(self, future: Future[OpenObject]) -> None:
        self._future = future

    def result(self) -> OpenObject:
        return self._future.result()

    def abandon(self) -> None:
        self._future.add_done_callback(_close_if_opened)


def _close_if_opened(future: Future[OpenObject]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


_opener: tuple[int, ThreadPoolExecutor] | None = None
_opener_lock = threading.Lock()


def _opening_pool() -> ThreadPoolExecutor:
    """The process's opening threads, made on first use in each process (a pool made before
    a fork has no threads in the child)."""
    global _opener
    with _opener_lock:
        if _opener is None or _opener[0] != os.getpid():
            _opener = (
                os.getpid(),
                ThreadPoolExecutor(max_workers=OPENING_THREADS, thread_name_prefix="storage-open"),
            )
        return _opener[1]


def open_soon(key: str) -> PendingObject:
    """``open_object(key)`` started now: on S3 in an opening thread, so that the request's
    own work (the session key, the seats) runs while S3 answers; a local file opens at once."""
    open_body = _body_opener(key)
    if uses_s3():
        return PendingObject(_opening_pool().submit(_opened, key, open_body))
    future: Future[OpenObject] = Future()
    try:
        future.set_result(_opened(key, open_body))
    except ApiError as error:
        future.set_exception(error)
    return PendingObject(future)


def uses_s3() -> bool:
    return not isinstance(release_storage(), FileSystemStorage)


def presigned_download_url(key: str, file_name: str, expires_in: int = PRESIGNED_SECONDS) -> str:
    storage = release_storage()
    client = storage.connection.meta.client
    return client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": storage.bucket_name,
            "Key": key,
            "ResponseContentDisposition": content_disposition_header(True, file_name),
            # The storage's answer is this caller's, like the Client API's own.
            "ResponseCacheControl": "no-store",
        },
        ExpiresIn=expires_in,
    )
