"""Streams a multipart file part to a temporary file, hashing it as it goes and enforcing the size
limit while it streams: the body is never held whole in memory. Temporary files live in
``FILE_UPLOAD_TEMP_DIR``, a folder the service owns; ``reconcile_storage`` removes the ones a
killed process left behind.

The MD5 and SHA-256 are computed by two threads that read the temporary file just behind the
writer: hashlib and file reads release the GIL, so hashing overlaps reading the socket and
parsing, instead of adding to them, and each holds no more memory than its one read buffer."""

import hashlib
import os
import threading
from typing import Any

from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from releases.storage import release_storage


class _Follower(threading.Thread):
    """One digest of what the writer has announced, read back from the file through a
    descriptor of its own (closing the upload cannot pull it away mid-read)."""

    READ_SIZE = 256 * 1024
    SYNC_EVERY = 2 * 1024 * 1024

    def __init__(
        self,
        source: "_Digests",
        fileno: int,
        hasher: Any,
        *,
        sync: bool = False,
    ) -> None:
        super().__init__(name="upload-digests", daemon=True)
        self._source = source
        self._fd = os.dup(fileno)
        self._sync = sync
        self.hasher = hasher
        self.failed = False

    def run(self) -> None:
        try:
            self._follow()
        except OSError:
            self.failed = True
        finally:
            os.close(self._fd)

    def _follow(self) -> None:
        position = synced = 0
        # One buffer, read into again and again: a new one for every read would leave the
        # worker's allocator holding far more memory than the one buffer.
        view = memoryview(bytearray(self.READ_SIZE))
        while True:
            news = self._source.wait_for_bytes(position)
            if news is None:
                self.failed = not self._source.discarded
                return
            target, done = news
            while position < target:
                wanted = min(self.READ_SIZE, target - position)
                count = os.preadv(self._fd, [view[:wanted]], position)
                if not count:
                    raise OSError("the temporary upload is shorter than what was written")
                self.hasher.update(view[:count])
                position += count
                if self._sync and position - synced >= self.SYNC_EVERY:
                    # Written back while the rest of the body arrives, so that the final
                    # fsync has little left to do.
                    os.fdatasync(self._fd)
                    synced = position
            if done:
                if self._sync:
                    # The file is kept (linked into local storage): put its bytes on disk now,
                    # while the request checks its data, so the store's own fsync finds
                    # nothing left to write.
                    os.fsync(self._fd)
                return


class _Digests:
    """MD5 and SHA-256 of what the writer has announced with ``wrote``, each computed by a
    thread of its own that follows the writer: MD5 is much the slower (SHA-256 has CPU
    instructions of its own), so apart they finish about when MD5 alone would, and whatever
    needs only one of them (a local link needs neither) need not wait for the other."""

    # Seconds without news from the writer before the threads give up: only an upload whose
    # handler never finished or discarded it waits that long.
    IDLE_TIMEOUT = 120.0

    def __init__(self, fileno: int, *, sync: bool) -> None:
        self._condition = threading.Condition()
        self._written = 0
        self._done = False
        self.discarded = False
        self._md5 = _Follower(self, fileno, hashlib.md5(usedforsecurity=False))
        # The faster one syncs the file it is reading (local storage keeps it).
        self._sha256 = _Follower(self, fileno, hashlib.sha256(), sync=sync)
        self._md5.start()
        self._sha256.start()

    # --- The writer's side ---

    def wrote(self, count: int) -> None:
        with self._condition:
            self._written += count
            self._condition.notify_all()

    def end(self) -> None:
        """Nothing more will be written."""
        with self._condition:
            self._done = True
            self._condition.notify_all()

    def discard(self) -> None:
        with self._condition:
            self.discarded = self._done = True
            self._condition.notify_all()

    # --- The followers' side ---

    def wait_for_bytes(self, position: int) -> tuple[int, bool] | None:
        """``(written, done)`` once there is more than ``position`` or nothing more will come;
        None when the upload was discarded or the writer went silent."""
        with self._condition:
            while position == self._written and not self._done:
                if not self._condition.wait(self.IDLE_TIMEOUT):
                    return None
            return None if self.discarded else (self._written, self._done)

    # --- The readers' side ---

    def md5(self) -> str:
        return self._result(self._md5)

    def sha256(self) -> str:
        return self._result(self._sha256)

    def _result(self, follower: _Follower) -> str:
        self.end()
        follower.join()
        if follower.failed:
            raise OSError("the temporary upload could not be read back to hash it")
        return follower.hasher.hexdigest()

    # --- Like a thread, for whoever waits for the hashing to stop ---

    def join(self, timeout: float | None = None) -> None:
        self._md5.join(timeout)
        self._sha256.join(timeout)

    def is_alive(self) -> bool:
        return self._md5.is_alive() or self._sha256.is_alive()


class ReleaseUpload(TemporaryUploadedFile):
    """An uploaded file with its digests (``md5``, ``sha256``), which may still be being
    computed: reading either waits for it alone. ``too_large`` files keep counting bytes but
    store none."""

    too_large: bool = False
    _digests: _Digests | None = None
    _md5: str = ""
    _sha256: str = ""

    def set_digests(self, md5: str, sha256: str) -> None:
        self._md5, self._sha256 = md5, sha256

    @property
    def md5(self) -> str:
        if not self._md5 and self._digests is not None:
            self._md5 = self._digests.md5()
        return self._md5

    @property
    def sha256(self) -> str:
        if not self._sha256 and self._digests is not None:
            self._sha256 = self._digests.sha256()
        return self._sha256

    def close(self) -> None:
        if self._digests is not None:
            self._digests.discard()
            self._digests = None
        super().close()


def upload_from_bytes(name: str, content: bytes) -> ReleaseUpload:
    """A ``ReleaseUpload`` for bytes that did not come over HTTP (operator tools)."""
    upload = ReleaseUpload(name, "application/octet-stream", len(content), None)
    upload.write(content)
    upload.flush()
    upload.seek(0)
    upload.set_digests(
        hashlib.md5(content, usedforsecurity=False).hexdigest(),
        hashlib.sha256(content).hexdigest(),
    )
    return upload


class HashingUploadHandler(FileUploadHandler):
    # Django's parser reads the body in the smallest chunk size of its handlers: bigger chunks
    # mean fewer trips through its Python code, while the few it holds at once stay well
    # within the upload's memory budget.
    chunk_size = 256 * 1024

    def __init__(self, request: Any = None, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.upload = ReleaseUpload(self.file_name, self.content_type, 0, self.charset)
        self.upload._digests = _Digests(
            self.upload.file.fileno(), sync=isinstance(release_storage(), FileSystemStorage)
        )
        self.received = 0
        self.too_large = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            # Keep reading the body (so the request's other fields are still parsed and checked
            # first, as the contract orders errors) but drop the bytes.
            if not self.too_large:
                self.too_large = True
                if self.upload._digests is not None:
                    self.upload._digests.discard()
                    self.upload._digests = None
                self.upload.truncate(0)
            return None
        self.upload.write(raw_data)
        # Flushed, so the hashing thread's reads see every byte announced.
        self.upload.file.flush()
        if self.upload._digests is not None:
            self.upload._digests.wrote(len(raw_data))
        return None

    def upload_interrupted(self) -> None:
        """The body ended inside the file: drop its temporary file now, not at collection."""
        upload = getattr(self, "upload", None)
        if upload is not None:
            upload.close()

    def file_complete(self, file_size: int) -> ReleaseUpload:
        upload = self.upload
        upload.flush()
        upload.seek(0)
        upload.size = self.received
        upload.too_large = self.too_large
        if upload._digests is not None:
            # The last bytes: the hashing threads finish (and sync the file) now.
            upload._digests.end()
        return upload
