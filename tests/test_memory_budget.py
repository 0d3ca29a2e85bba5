"""A 10 MiB upload through the real server (gunicorn, one sync worker) grows the worker's peak
memory by less than 6 MiB: the body streams to disk and storage, never held whole in memory.

The peak is the kernel's VmHWM for the worker, reset with ``/proc/<pid>/clear_refs`` after a
warm-up request, so imports and first-use caches are not counted."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.db import connection

from releases.models import ReleaseFile
from tests.helpers import release_url, update_data

MIB = 1024 * 1024
UPLOAD_BYTES = 10 * MIB
GROWTH_LIMIT = 6 * MIB
READY_TIMEOUT = 30


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url():
    """The test database as a DATABASE_URL for the server process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for_port(port, process, log):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not listen on {port} within {READY_TIMEOUT}s:\n{log.read_text()}")


def worker_pid(master):
    deadline = time.monotonic() + READY_TIMEOUT
    children_file = Path(f"/proc/{master}/task/{master}/children")
    while time.monotonic() < deadline:
        children = children_file.read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    pytest.fail("gunicorn started no worker")


def memory_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture
def server(transactional_db, tmp_path):
    """The real service on a free port, against the test database; stopped at teardown."""
    port = free_port()
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    log = tmp_path / "gunicorn.log"
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "DEBUG"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="lukittu.settings",
        SECRET_KEY="memory-budget-test-secret",
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(media),
        LOG_LEVEL="WARNING",
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(gunicorn), "lukittu.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}"],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process, log)
        yield {"url": f"http://127.0.0.1:{port}", "master": process.pid, "media": media}
    finally:
        # Gunicorn stops its worker on SIGTERM, closing the worker's database connection before
        # the test database is flushed and dropped.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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
            server["url"] + release_url(world.team.id, world.release.id),
            data=body,
            headers={"Authorization": f"Bearer {world.key}", "Content-Type": content_type},
            timeout=60,
        )


def test_a_10_mib_upload_grows_the_worker_by_less_than_6_mib(server, world, tmp_path):
    pid = worker_pid(server["master"])
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
        f"\nworker {pid}: VmRSS before {before} KiB, VmHWM after {peak} KiB, "
        f"growth {growth / MIB:.2f} MiB"
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"]["details"] == "Release updated"
    assert body["data"]["file"]["size"] == UPLOAD_BYTES
    assert body["data"]["file"]["sha256"] == digest.hexdigest()
    stored = ReleaseFile.objects.get(release=world.release)
    assert (stored.size, stored.sha256) == (UPLOAD_BYTES, digest.hexdigest())
    stored_path = server["media"] / stored.key
    with stored_path.open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == digest.hexdigest()
    assert growth < GROWTH_LIMIT, f"peak memory grew by {growth / MIB:.2f} MiB"
