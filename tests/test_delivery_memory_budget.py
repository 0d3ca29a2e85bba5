"""Streaming a 10 MiB build to a client (the classloader's encrypted frames, or the plain
download) grows the worker's peak memory by less than 6 MiB, on local files and on S3: the
object is read 64 KiB at a time as the client takes it, never held whole.

On S3 the plain download is a redirect to a presigned URL, so the worker streams nothing; the
test measures that too, and follows the redirect to check the bytes.

As in tests/test_memory_budget.py, the peak is the kernel's VmHWM for the one sync worker,
reset with ``/proc/<pid>/clear_refs`` after a warm-up request for a small build (the same code
paths, so imports and first-use caches are not counted, and no large buffer is left behind
to hide a second one)."""

import hashlib
import os
from pathlib import Path

import pytest
import requests

from delivery.models import Download
from releases.models import Release, ReleaseStatus
from teams.keys import key_pair_for
from teams.services import license_create
from tests.helpers import attach_file
from tests.live import live_server
from tests.loader import Loader, classloader_url, download_url
from tests.test_memory_budget import memory_kib

MIB = 1024 * 1024
BUILD_BYTES = 10 * MIB
GROWTH_LIMIT = 6 * MIB
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["local", "s3"])
def backend(request):
    env = {"CLIENT_IP_RATE": "1000/minute", "CLIENT_LICENSE_RATE": "1000/minute"}
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        env.update(
            AWS_STORAGE_BUCKET_NAME=s3.bucket,
            AWS_S3_ENDPOINT_URL=s3.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_S3_REGION_NAME="us-east-1",
        )
    return request.param, env


@pytest.mark.parametrize("endpoint", ["classloader", "download"])
def test_streaming_a_10_mib_build_grows_the_worker_by_less_than_6_mib(
    backend, endpoint, world, tmp_path
):
    name, env = backend
    content = os.urandom(BUILD_BYTES)
    attach_file(world.other_release, "build.jar", content)  # 0.9.0, the latest
    Release.objects.filter(pk=world.release.pk).update(status=ReleaseStatus.PUBLISHED)
    attach_file(world.release, "warm-up.jar", b"a small build for the warm-up")  # 1.0.0
    license, key = license_create(team=world.team, products=[world.product])
    public_key_pem = key_pair_for(world.team).public_key_pem

    def fetch(server, **extra):
        params = {
            "licenseKey": key,
            "productId": str(world.product.id),
            "hardwareIdentifier": "memory-budget-0001",
            **extra,
        }
        if endpoint == "download":
            response = requests.get(
                server.url + download_url(world.team.id), params=params, timeout=60
            )
            return response, response.content
        loader = Loader(public_key_pem)
        response = requests.get(
            server.url + classloader_url(world.team.id),
            params={**params, "sessionKey": loader.session_key_hex()},
            stream=True,
            timeout=60,
        )
        body = b"".join(response.iter_content(256 * 1024))
        return response, loader.decrypt(body) if response.status_code == 200 else body

    with live_server(tmp_path, workers=1, extra_env=env) as server:
        [pid] = server.worker_pids()
        clear_refs = Path(f"/proc/{pid}/clear_refs")
        if not os.access(clear_refs, os.W_OK):
            pytest.skip(f"{clear_refs} is not writable, so the peak memory cannot be reset")
        warm_up, small = fetch(server, version="1.0.0")
        assert warm_up.status_code == 200, warm_up.text
        assert small == b"a small build for the warm-up"

        clear_refs.write_text("5")
        before = memory_kib(pid, "VmRSS")
        response, received = fetch(server)
        peak = memory_kib(pid, "VmHWM")
        assert server.worker_pids() == [pid], "the worker was replaced"
    growth = (peak - before) * 1024
    print(
        f"\n{name} {endpoint}: worker {pid}: VmRSS before {before} KiB, VmHWM after {peak} KiB, "
        f"growth {growth / MIB:.2f} MiB"
    )

    assert response.status_code == 200, response.text[:300]
    assert hashlib.sha256(received).digest() == hashlib.sha256(content).digest()
    if endpoint == "download" and name == "s3":
        assert response.history[0].status_code == 302  # moto served the bytes, not the worker
    assert Download.objects.filter(license=license).count() == 2
    assert growth < GROWTH_LIMIT, f"peak memory grew by {growth / MIB:.2f} MiB"
