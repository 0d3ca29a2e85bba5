"""Fixtures: a team with an API key and a release world, and an outsider team with its own."""

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

import teams.keys
from lukittu.after_response import forget_pending
from lukittu.storage_settings import s3_storage
from releases.models import Branch, Product, Release, ReleaseStatus
from teams.models import License, Team
from teams.services import api_key_create, license_create, team_create
from tests.process_tests import require_live, running, starts_processes


@dataclass
class World:
    """One team's objects: the key (plain text), a product with a branch, releases, licenses."""

    team: Team
    key: str
    product: Product
    other_product: Product
    branch: Branch
    release: Release
    other_release: Release
    licenses: list[License] = field(default_factory=list)


def build_world(name: str, *, file_uploads: bool = True, storage_limit_mb: int = 100) -> World:
    team = team_create(name=name, file_uploads=file_uploads, storage_limit_mb=storage_limit_mb)
    _, key = api_key_create(team=team, name="tests")
    product = Product.objects.create(team=team, name=f"{name} App")
    other_product = Product.objects.create(team=team, name=f"{name} Other")
    branch = Branch.objects.create(product=product, name="beta")
    release = Release.objects.create(
        team=team, product=product, version="1.0.0", status=ReleaseStatus.DRAFT
    )
    other_release = Release.objects.create(
        team=team, product=product, version="0.9.0", status=ReleaseStatus.PUBLISHED, latest=True
    )
    licenses = [license_create(team=team)[0] for _ in range(3)]
    return World(team, key, product, other_product, branch, release, other_release, licenses)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that start processes ``live`` (see tests/process_tests.py)."""
    # Imported here: tests.live imports this module.
    from tests.browser import start_chromium
    from tests.live import live_server

    for item in items:
        if starts_processes(item, (live_server, start_chromium)):
            item.add_marker(pytest.mark.live)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    """Keeps the running test at hand for ``require_live``."""
    running.append(item)
    try:
        return (yield)
    finally:
        running.remove(item)


@pytest.fixture(autouse=True)
def _isolated_media_and_cache(settings: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    cache.clear()
    yield
    # A request that a test let raise out of the test client never finished: the next test
    # starts outside any request.
    forget_pending()


# RSA-2048 generation costs about 70 ms a key and every team makes one. Keys come from a pool
# shared by the whole run instead: within one test every team still gets a key of its own (the
# n-th team of a test gets the pool's n-th key), so tests of cross-team isolation keep meaning.
_KEY_POOL: list[rsa.RSAPrivateKey] = []


@pytest.fixture(autouse=True)
def _pooled_team_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    generate = teams.keys._generate_private_key
    handed = 0

    def pooled() -> rsa.RSAPrivateKey:
        nonlocal handed
        if handed == len(_KEY_POOL):
            _KEY_POOL.append(generate())
        handed += 1
        return _KEY_POOL[handed - 1]

    monkeypatch.setattr(teams.keys, "_generate_private_key", pooled)


@pytest.fixture
def world(db: None) -> World:
    return build_world("Owner")


@pytest.fixture
def outsider(db: None) -> World:
    return build_world("Outsider")


@pytest.fixture
def staff(db: None) -> Client:
    """A client logged in to the admin as a superuser (``operator``)."""
    user = User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def client() -> Client:
    return Client()


# --- A real S3-compatible server ------------------------------------------------------------


@dataclass
class S3:
    endpoint: str
    bucket: str
    client: object  # a boto3 S3 client for inspecting what the service stored


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> bool:
    for _ in range(int(seconds * 10)):
        if process.poll() is not None:
            return False
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1, started for this test session."""
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        pytest.skip("S3 test server not installed (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port(port, process):
            pytest.skip("the S3 test server (moto_server) could not be started")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


S3_CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


@pytest.fixture
def s3(s3_endpoint: str, settings: pytest.FixtureRequest) -> S3:
    """The service's default storage switched to a fresh bucket on the S3 test server."""
    # Here, not in the session-wide server's fixture: every test that uses it is checked.
    require_live("the S3 test server")
    bucket = f"releases-{uuid.uuid4().hex[:16]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
        region_name=S3_CREDENTIALS["region_name"],
    )
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(bucket_name=bucket, endpoint_url=s3_endpoint, **S3_CREDENTIALS),
    }
    return S3(s3_endpoint, bucket, client)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Runs a test once on local files and once on the S3 test server."""
    if request.param == "s3":
        request.getfixturevalue("s3")
    return request.param
