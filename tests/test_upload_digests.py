"""The upload handler's digests: computed beside the writer, exactly those of the bytes kept."""

import hashlib
import os

from releases.uploads import HashingUploadHandler


def feed(handler, chunks, name="build.bin"):
    handler.new_file("file", name, "application/octet-stream", None)
    offset = 0
    for chunk in chunks:
        handler.receive_data_chunk(chunk, offset)
        offset += len(chunk)
    return handler.file_complete(offset)


def test_the_digests_are_those_of_every_byte_received(db):
    chunks = [os.urandom(size) for size in (1, 256 * 1024, 3 * 1024 * 1024 + 7, 0, 99)]
    upload = feed(HashingUploadHandler(max_bytes=10 * 1024 * 1024), chunks)
    content = b"".join(chunks)
    assert upload.size == len(content)
    assert upload.md5 == hashlib.md5(content).hexdigest()
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    with open(upload.temporary_file_path(), "rb") as handle:
        assert handle.read() == content
    upload.close()


def test_an_empty_file_has_the_empty_digests(db):
    upload = feed(HashingUploadHandler(max_bytes=10), [])
    assert (upload.size, upload.md5, upload.sha256) == (
        0,
        hashlib.md5(b"").hexdigest(),
        hashlib.sha256(b"").hexdigest(),
    )
    upload.close()


def test_a_file_over_the_limit_keeps_no_bytes_and_stops_hashing(db):
    upload = feed(HashingUploadHandler(max_bytes=100), [b"x" * 60, b"y" * 60, b"z" * 10])
    assert upload.too_large
    assert upload.size == 130
    assert os.path.getsize(upload.temporary_file_path()) == 0
    upload.close()


def test_closing_an_upload_stops_its_hashing_thread(db):
    handler = HashingUploadHandler(max_bytes=10 * 1024 * 1024)
    handler.new_file("file", "build.bin", "application/octet-stream", None)
    handler.receive_data_chunk(b"a" * 1000, 0)
    thread = handler.upload._digests
    handler.upload_interrupted()
    thread.join(5)
    assert not thread.is_alive()
