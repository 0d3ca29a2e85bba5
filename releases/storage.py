"""The one place that knows release object keys and talks to the storage backend."""

import base64
import errno
import io
import logging
import mimetypes
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from storages.backends.s3 import S3Storage

from lukittu.api import ApiError, Code

logger = logging.getLogger("releases.storage")

RELEASES_PREFIX = "releases/"
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)
CONTENT_TYPES = {"jar": "application/java-archive", "zip": "application/zip"}
_COPY_CHUNK = 1024 * 1024


class ReleaseS3Storage(S3Storage):
    """S3 for release files. Release uploads bypass ``save`` (see ``store_object``): each is
    one PUT with end-to-end checksums, which S3 allows up to 5 GiB.

    One boto3 client per process, where django-storages makes one per thread: each costs a
    new botocore session that loads S3's service model again (about 0.1 s of CPU and 13 to
    19 MiB at its peak), which a thread would otherwise pay on its first storage call, after
    every worker start. boto3 clients are thread-safe, and every call here goes through the
    client (``connection.meta.client``) or builds its resource objects afresh per call
    (``bucket.Object(key)``, ``bucket.objects.filter``), as django-storages' own shared
    ``bucket`` already does. A forked child makes its own: a client's sockets are not shared
    across processes."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._reset_shared()

    def _reset_shared(self) -> None:
        self._shared: tuple[int, Any, Any] | None = None  # (pid, resource, bucket)
        self._shared_lock = threading.Lock()

    def _current(self) -> tuple[int, Any, Any]:
        shared = self._shared
        if shared is not None and shared[0] == os.getpid():
            return shared
        with self._shared_lock:
            if self._shared is None or self._shared[0] != os.getpid():
                resource = self._create_session().resource(
                    "s3",
                    region_name=self.region_name,
                    use_ssl=self.use_ssl,
                    endpoint_url=self.endpoint_url,
                    config=self.client_config,
                    verify=self.verify,
                )
                self._shared = (os.getpid(), resource, resource.Bucket(self.bucket_name))
            return self._shared

    @property
    def connection(self) -> Any:
        return self._current()[1]

    @property
    def bucket(self) -> Any:
        return self._current()[2]

    def __getstate__(self) -> dict[str, Any]:
        # A copy (the readiness probe's, with its own timeouts) makes its own client.
        state = super().__getstate__()
        state.pop("_shared", None)
        state.pop("_shared_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._reset_shared()


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    modified_at: datetime


def storage_unavailable() -> ApiError:
    return ApiError(503, Code.INTERNAL_SERVER_ERROR, "Storage unavailable")


class StorageBusy(ApiError):
    """No storage slot was free in time (``storage_slot``); nothing was written."""

    def __init__(self) -> None:
        super().__init__(
            503,
            Code.INTERNAL_SERVER_ERROR,
            "Storage busy; retry the request",
            headers={"Retry-After": "5"},
        )


class _Bulkhead:
    """At most ``STORAGE_CONCURRENCY`` threads of this process inside storage work at once,
    so a storage that hangs holds no more than that many request threads (each until its
    client's timeouts end the call) and the others go on serving requests that never touch
    storage. A request that finds no slot within ``STORAGE_BUSY_WAIT`` seconds is refused
    with a 503 instead of queueing behind the hung calls. A thread holding a slot may enter
    again (an upload's write, then its abandonment) without taking a second one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._size = 0
        self._slots = threading.BoundedSemaphore(1)
        self._held = threading.local()

    def _current(self) -> threading.BoundedSemaphore:
        with self._lock:
            if self._size != settings.STORAGE_CONCURRENCY:
                self._size = settings.STORAGE_CONCURRENCY
                self._slots = threading.BoundedSemaphore(self._size)
            return self._slots

    @contextmanager
    def slot(self) -> Iterator[None]:
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        slots = self._current()
        if not slots.acquire(timeout=settings.STORAGE_BUSY_WAIT):
            logger.warning("No storage slot free within %gs", settings.STORAGE_BUSY_WAIT)
            raise StorageBusy()
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            slots.release()


storage_slot = _Bulkhead().slot


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


def _store_local(storage: FileSystemStorage, key: str, upload: Any, size: int) -> None:
    """Link the finished temporary upload into place: the bytes were hashed as they were
    written, so there is nothing to copy or read back. Falls back to one copy when the
    temporary folder is on another file system. Never overwrites: keys are fresh."""
    path = storage.path(key)
    os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
    source = upload.temporary_file_path()
    upload.file.flush()
    # The build must survive a crash once the row that points at it has committed.
    os.fsync(upload.file.fileno())
    try:
        os.link(source, path)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        _copy_exclusively(source, path)
    os.chmod(path, settings.FILE_UPLOAD_PERMISSIONS or 0o640)
    _fsync_directory(os.path.dirname(path))
    if os.path.getsize(path) != size:
        raise StoredBytesDiffer(key)


def _copy_exclusively(source: str, path: str) -> None:
    with open(source, "rb") as reader, open(path, "xb") as writer:
        shutil.copyfileobj(reader, writer, _COPY_CHUNK)
        writer.flush()
        os.fsync(writer.fileno())


def _fsync_directory(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _store_s3(
    storage: S3Storage, key: str, upload: Any, *, extension: str, size: int, md5: str, sha256: str
) -> None:
    """One PUT of the file as it lies on disk (streamed, never held in memory), carrying its
    MD5 and SHA-256 so the store refuses bytes that changed in transit. The PUT's answer says
    what was stored: no second round trip to read it back."""
    upload.file.flush()
    answer = storage.connection.meta.client.put_object(
        Bucket=storage.bucket_name,
        Key=key,
        Body=FileWindow(upload.file.fileno(), 0, size),
        ContentLength=size,
        ContentType=content_type_for(extension),
        ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode(),
        ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
        **_s3_write_extras(storage),
    )
    stored_sha256 = answer.get("ChecksumSHA256")
    if stored_sha256 and "-" not in stored_sha256:
        if base64.b64decode(stored_sha256).hex() != sha256:
            raise StoredBytesDiffer(key)
        return
    etag = answer.get("ETag", "").strip('"')
    # A single-part upload's ETag is its MD5, except under SSE-KMS.
    if answer.get("ServerSideEncryption") != "aws:kms" and etag != md5:
        raise StoredBytesDiffer(key)


def _s3_write_extras(storage: S3Storage) -> dict[str, Any]:
    """The bucket-wide write parameters the storage is configured with (encryption, cache
    headers), without the ACL: objects stay private."""
    extras = dict(storage.get_object_parameters(""))
    extras.pop("ACL", None)
    return {name: value for name, value in extras.items() if value is not None}


class StoredBytesDiffer(Exception):
    """The store holds something other than the bytes received."""


class FileWindow:
    """``length`` bytes of a file from ``offset``, read with ``pread`` (no shared file
    position, so the hashing threads may read the same file meanwhile): the body of a PUT,
    streamed from the temporary upload and never held whole. A read may return more than
    asked, up to ``BLOCK``: http.client asks for 16 KiB at a time, and bigger blocks take far
    fewer trips through Python for the same bytes."""

    BLOCK = 256 * 1024

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd, self._offset, self._length = fd, offset, length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(base + position, 0), self._length)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._position
        wanted = left if size is None or size < 0 else min(left, max(size, self.BLOCK))
        if wanted <= 0:
            return b""
        chunk = os.pread(self._fd, wanted, self._offset + self._position)
        if not chunk:
            raise OSError("the temporary upload is shorter than the body announced")
        self._position += len(chunk)
        return chunk

    def close(self) -> None:
        """The descriptor is the caller's to close."""


def store_object(
    *,
    key: str,
    upload: Any,
    extension: str,
    size: int,
    md5: str | None = None,
    sha256: str | None = None,
) -> None:
    """Write the finished upload under exactly ``key`` (a fresh key: nothing is overwritten)
    and make sure the store holds exactly those bytes. Any failure is a 503; the caller's
    ledger entry decides what happens to whatever the failed write may have left. The digests
    default to the upload's, read only where the write needs them (S3), so a local write
    need not wait for them."""
    storage = release_storage()
    if isinstance(storage, S3Storage):
        # Both go in the PUT's headers, so both are needed before it starts.
        md5, sha256 = md5 or upload.md5, sha256 or upload.sha256
    try:
        with storage_slot():
            _store(storage, key, upload, extension=extension, size=size, md5=md5, sha256=sha256)
    except StoredBytesDiffer:
        logger.error("Stored object %s does not match the upload", key)
        raise storage_unavailable() from None
    except STORAGE_ERRORS:
        logger.exception("Storing %s failed", key)
        raise storage_unavailable() from None


def _store(
    storage: Storage,
    key: str,
    upload: Any,
    *,
    extension: str,
    size: int,
    md5: str | None,
    sha256: str | None,
) -> None:
    if isinstance(storage, S3Storage):
        _store_s3(storage, key, upload, extension=extension, size=size, md5=md5, sha256=sha256)
    elif isinstance(storage, FileSystemStorage):
        _store_local(storage, key, upload, size)
    else:
        upload.seek(0)
        if storage.save(key, File(upload.file, name=key)) != key:
            raise StoredBytesDiffer(key)


def delete_object(key: str) -> None:
    """Delete an object, raising the storage's error on failure (a missing object is gone)."""
    with storage_slot():
        release_storage().delete(key)


def list_objects(prefix: str = RELEASES_PREFIX) -> Iterator[ListedObject]:
    """Every object under ``prefix`` with its size and last modification time."""
    storage = release_storage()
    if isinstance(storage, S3Storage):
        for summary in storage.bucket.objects.filter(Prefix=prefix):
            yield ListedObject(summary.key, summary.size, summary.last_modified)
        return
    if isinstance(storage, FileSystemStorage):
        root = storage.path(prefix)
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                stat = os.stat(path)
                key = os.path.relpath(path, storage.location).replace(os.sep, "/")
                yield ListedObject(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
        return
    raise NotImplementedError(f"Listing is not supported for {type(storage).__name__}")
