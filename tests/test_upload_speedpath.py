"""The upload's fast path: the MD5 and SHA-256 are computed by threads of their own, a write
waits only for the digests it uses, and the S3 PUT streams the file in large blocks. None of it
may change what is stored or what the PUT carries."""

import base64
import hashlib
import os
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from releases import uploads
from releases.storage import FileWindow, release_storage, store_object
from releases.uploads import HashingUploadHandler
from tests.helpers import make_jar, put_release, read_object, update_data

WAIT = 30
BUILD = make_jar(extra={"payload.bin": os.urandom(300_000)})


def upload(client, world, *, content=BUILD):
    return put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release),
        file=("app.jar", content),
    )


# --- The digests, computed apart --------------------------------------------------------------


class HeldMD5:
    """An MD5 whose updates wait until ``release`` is set: a slow MD5."""

    release = threading.Event()

    def __init__(self, *args, **kwargs):
        self._md5 = hashlib.md5(*args, **kwargs)

    def update(self, data):
        self.release.wait(WAIT)
        self._md5.update(data)

    def hexdigest(self):
        return self._md5.hexdigest()


@pytest.fixture
def held_md5(monkeypatch):
    """The upload handler's MD5 is held (no one else's)."""
    HeldMD5.release = threading.Event()
    monkeypatch.setattr(uploads, "hashlib", SimpleNamespace(md5=HeldMD5, sha256=hashlib.sha256))
    yield HeldMD5.release
    HeldMD5.release.set()


def received(content, name="build.jar"):
    handler = HashingUploadHandler(max_bytes=10 * 1024 * 1024)
    handler.new_file("file", name, "application/java-archive", None)
    for offset in range(0, len(content), 100_000):
        handler.receive_data_chunk(content[offset : offset + 100_000], offset)
    return handler.file_complete(len(content))


def test_the_sha256_does_not_wait_for_the_md5(db, held_md5):
    upload = received(BUILD)
    started = time.monotonic()
    assert upload.sha256 == hashlib.sha256(BUILD).hexdigest()
    assert time.monotonic() - started < WAIT / 2
    assert upload._digests._md5.is_alive()
    held_md5.set()
    assert upload.md5 == hashlib.md5(BUILD).hexdigest()
    upload.close()


def test_a_local_write_does_not_wait_for_the_md5(db, held_md5):
    upload = received(BUILD)
    key = f"releases/{uuid.uuid4()}/{uuid.uuid4()}/{uuid.uuid4()}.jar"
    store_object(key=key, upload=upload, extension="jar", size=len(BUILD))
    assert read_object(key) == BUILD
    assert upload._digests._md5.is_alive()
    held_md5.set()
    assert upload.md5 == hashlib.md5(BUILD).hexdigest()
    upload.close()


# --- The PUT's body ---------------------------------------------------------------------------


def test_a_file_window_reads_its_bytes_in_large_blocks(tmp_path):
    path = tmp_path / "file"
    content = os.urandom(3 * FileWindow.BLOCK + 5)
    path.write_bytes(b"head" + content + b"tail")
    descriptor = os.open(path, os.O_RDONLY)
    try:
        window = FileWindow(descriptor, 4, len(content))
        first = window.read(16 * 1024)
        assert len(first) == FileWindow.BLOCK  # more than asked, fewer trips
        assert first + window.read(10**9) == content
        assert window.read(1) == b""
        assert window.seek(0) == 0 and window.tell() == 0
        assert window.seek(-5, os.SEEK_END) == len(content) - 5
        assert window.read(100) == content[-5:]
    finally:
        os.close(descriptor)


def test_the_put_still_carries_the_md5_and_sha256(client, world, s3):
    sent = []
    release_storage().connection.meta.client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append(
            (request.headers.get("Content-MD5"), request.headers.get("x-amz-checksum-sha256"))
        ),
    )
    assert upload(client, world).status_code == 200
    [(md5, sha256)] = [tuple(v.decode() if isinstance(v, bytes) else v for v in s) for s in sent]
    assert md5 == base64.b64encode(hashlib.md5(BUILD).digest()).decode()
    assert sha256 == base64.b64encode(hashlib.sha256(BUILD).digest()).decode()
