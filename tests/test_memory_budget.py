"""A 10 MiB upload through the real server (gunicorn, one sync worker) grows the worker's peak
memory by less than 6 MiB, on local files and on S3: the body streams to disk and storage,
never held whole in memory.

The peak is the kernel's VmHWM for the worker, reset with ``/proc/<pid>/clear_refs`` after a
warm-up request, so imports and first-use caches are not counted."""

import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest
import requests

from releases.models import ReleaseFile
from releases.storage import release_storage
from tests.helpers import release_url, update_data
from tests.live import live_server

MIB = 1024 * 1024
UPLOAD_BYTES = 10 * MIB
GROWTH_LIMIT = 6 * MIB


def memory_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture(params=["local", "s3"])
def server(request, transactional_db, tmp_path):
    """The real service (one sync worker) on a free port, against the test database, storing
    files locally or on the S3 test server."""
    env = {}
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        env = {
            "AWS_STORAGE_BUCKET_NAME": s3.bucket,
            "AWS_S3_ENDPOINT_URL": s3.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_S3_REGION_NAME": "us-east-1",
        }
    with live_server(tmp_path, workers=1, extra_env=env) as live:
        live.backend = request.param
        yield live


def write_multipart(path, data, file_name, content_path):
    """A multipart/form-data body on disk, so the client streams it from a file."""
    boundary = uuid.uuid4().hex
    with path.open("wb") as body, content_path.open("rb") as content:
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n'.encode()
            + json.dumps(data).encode()
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="{file_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        while chunk := content.read(MIB):
            body.write(chunk)
        body.write(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}"


def upload(server, world, tmp_path, name, content_path):
    body_path = tmp_path / f"{name}.body"
    content_type = write_multipart(
        body_path, update_data(world.release, status="PUBLISHED"), name, content_path
    )
    with body_path.open("rb") as body:
        return requests.put(
            server.url + release_url(world.team.id, world.release.id),
            data=body,
            headers={"Authorization": f"Bearer {world.key}", "Content-Type": content_type},
            timeout=60,
        )


def test_a_10_mib_upload_grows_the_worker_by_less_than_6_mib(server, world, tmp_path):
    [pid] = server.worker_pids()
    clear_refs = Path(f"/proc/{pid}/clear_refs")
    if not os.access(clear_refs, os.W_OK):
        pytest.skip(f"{clear_refs} is not writable, so the peak memory cannot be reset")

    small = tmp_path / "warm-up.bin"
    small.write_bytes(b"warm up")
    warm_up = upload(server, world, tmp_path, "warm-up.bin", small)
    assert warm_up.status_code == 200, warm_up.text

    big = tmp_path / "build.bin"
    digest = hashlib.sha256()
    with big.open("wb") as handle:
        for _ in range(UPLOAD_BYTES // MIB):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            handle.write(chunk)

    clear_refs.write_text("5")
    before = memory_kib(pid, "VmRSS")
    response = upload(server, world, tmp_path, "build.bin", big)
    peak = memory_kib(pid, "VmHWM")
    growth = (peak - before) * 1024
    print(
        f"\n{server.backend}: worker {pid}: VmRSS before {before} KiB, VmHWM after {peak} KiB, "
        f"growth {growth / MIB:.2f} MiB"
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"]["details"] == "Release updated"
    assert body["data"]["file"]["size"] == UPLOAD_BYTES
    assert body["data"]["file"]["sha256"] == digest.hexdigest()
    stored = ReleaseFile.objects.get(release=world.release)
    assert (stored.size, stored.sha256) == (UPLOAD_BYTES, digest.hexdigest())
    with release_storage().open(stored.key, "rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == digest.hexdigest()
    assert growth < GROWTH_LIMIT, f"peak memory grew by {growth / MIB:.2f} MiB"
