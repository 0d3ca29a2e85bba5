"""Streams a multipart file part to a temporary file, hashing it as it goes and enforcing the size
limit while it streams: the body is never held whole in memory. Temporary files live in
``FILE_UPLOAD_TEMP_DIR``, a folder the service owns; ``reconcile_storage`` removes the ones a
killed process left behind.

The MD5 and SHA-256 are computed by a thread that reads the temporary file just behind the
writer: hashlib and file reads release the GIL, so hashing overlaps reading the socket and
parsing, instead of adding to them, and holds no more memory than its one read buffer."""

import hashlib
import os
import threading
from typing import Any

from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from releases.storage import release_storage


class _Digests(threading.Thread):
    """MD5 and SHA-256 of what the writer has announced with ``wrote``, read back from the file
    through a descriptor of its own (closing the upload cannot pull it away mid-read)."""

    READ_SIZE = 256 * 1024
    SYNC_EVERY = 2 * 1024 * 1024
    # Seconds without news from the writer before the thread gives up: only an upload whose
    # handler never finished or discarded it waits that long.
    IDLE_TIMEOUT = 120.0

    def __init__(self, fileno: int, *, sync: bool) -> None:
        super().__init__(name="upload-digests", daemon=True)
        self._fd = os.dup(fileno)
        self._sync = sync
        self._condition = threading.Condition()
        self._written = 0
        self._done = False
        self._discarded = False
        self._failed = False
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.start()

    def run(self) -> None:
        try:
            self._hash_until_done()
        except OSError:
            self._failed = True
        finally:
            os.close(self._fd)

    def _hash_until_done(self) -> None:
        position = synced = 0
        while True:
            with self._condition:
                while position == self._written and not self._done:
                    if not self._condition.wait(self.IDLE_TIMEOUT):
                        self._failed = True
                        return
                if self._discarded:
                    return
                target, done = self._written, self._done
            while position < target:
                chunk = os.pread(self._fd, min(self.READ_SIZE, target - position), position)
                if not chunk:
                    raise OSError("the temporary upload is shorter than what was written")
                self.md5.update(chunk)
                self.sha256.update(chunk)
                position += len(chunk)
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

    def wrote(self, count: int) -> None:
        with self._condition:
            self._written += count
            self._condition.notify()

    def finish(self) -> tuple[str, str]:
        """The hex digests of everything written; waits for the thread to catch up."""
        with self._condition:
            self._done = True
            self._condition.notify()
        self.join()
        if self._failed:
            raise OSError("the temporary upload could not be read back to hash it")
        return self.md5.hexdigest(), self.sha256.hexdigest()

    def discard(self) -> None:
        with self._condition:
            self._discarded = self._done = True
            self._condition.notify()


class ReleaseUpload(TemporaryUploadedFile):
    """An uploaded file with its digests (``md5``, ``sha256``), which may still be being
    computed: reading either waits for them. ``too_large`` files keep counting bytes but store
    none."""

    too_large: bool = False
    _digests: _Digests | None = None
    _md5: str = ""
    _sha256: str = ""

    def set_digests(self, md5: str, sha256: str) -> None:
        self._md5, self._sha256 = md5, sha256

    def _resolve(self) -> None:
        if self._digests is not None:
            digests, self._digests = self._digests, None
            self._md5, self._sha256 = digests.finish()

    @property
    def md5(self) -> str:
        self._resolve()
        return self._md5

    @property
    def sha256(self) -> str:
        self._resolve()
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
        return upload
