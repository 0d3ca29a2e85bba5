"""Streams a multipart file part to a temporary file, hashing it as it goes and enforcing the size
limit while it streams: the body is never held whole in memory. Temporary files live in
``FILE_UPLOAD_TEMP_DIR``, a folder the service owns; ``reconcile_storage`` removes the ones a
killed process left behind."""

import hashlib
from typing import Any

from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler


class ReleaseUpload(TemporaryUploadedFile):
    """An uploaded file with its digests. ``too_large`` files keep counting bytes but store none."""

    md5: str = ""
    sha256: str = ""
    too_large: bool = False


def upload_from_bytes(name: str, content: bytes) -> ReleaseUpload:
    """A ``ReleaseUpload`` for bytes that did not come over HTTP (operator tools)."""
    upload = ReleaseUpload(name, "application/octet-stream", len(content), None)
    upload.write(content)
    upload.flush()
    upload.seek(0)
    upload.md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
    upload.sha256 = hashlib.sha256(content).hexdigest()
    return upload


class HashingUploadHandler(FileUploadHandler):
    chunk_size = 64 * 1024

    def __init__(self, request: Any = None, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.upload = ReleaseUpload(self.file_name, self.content_type, 0, self.charset)
        self.received = 0
        self.too_large = False
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            # Keep reading the body (so the request's other fields are still parsed and checked
            # first, as the contract orders errors) but drop the bytes.
            if not self.too_large:
                self.too_large = True
                self.upload.truncate(0)
            return None
        self.md5.update(raw_data)
        self.sha256.update(raw_data)
        self.upload.write(raw_data)
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
        upload.md5 = self.md5.hexdigest()
        upload.sha256 = self.sha256.hexdigest()
        return upload
