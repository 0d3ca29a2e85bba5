"""lukittu-release end to end: the command against gunicorn serving the project on the test
database (tests/live.py), as a vendor's CI runs it.

- publish a new version with its file (SHA-256 verified, latest set), then the same version
  again (an update of that release, not a second one);
- get, list and delete with --json;
- the licensed plain download, streamed from local files and redirected to S3 (checked
  against the SHA-256 the service's redirect names);
- a create whose answer is lost on the way back (tests/tcp_proxy.py) still ends as one release;
- branches by name (runs once the products/branches API is routed)."""

import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.urls import get_resolver, include
from django.urls import path as url_path

from lukittu_release.cli import main
from releases.models import Branch, Release, ReleaseFile
from teams.models import AuditLog
from teams.services import license_create
from tests.helpers import make_jar
from tests.live import LiveServer, live_server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)

HWID = "ci-machine-0001"


def url_routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    """Every route under ``patterns``, includes followed."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            yield from url_routes(pattern.url_patterns, route)
        else:
            yield route


def has_branches_route(patterns: list[Any]) -> bool:
    return any(
        "products/<" in route and route.rstrip("/$").endswith("/branches")
        for route in url_routes(patterns)
    )


def branches_api_available() -> bool:
    """Whether the project's URLs (and whatever they include, such as a releases module's
    urlpatterns) route ``.../products/<productId>/branches``."""
    return has_branches_route(get_resolver().url_patterns)


@pytest.fixture
def server(world: Any, tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "server") as running:
        yield running


def environment(server_url: str, world: Any) -> dict[str, str]:
    return {
        "LUKITTU_API_URL": server_url,
        "LUKITTU_TEAM_ID": str(world.team.id),
        "LUKITTU_API_KEY": world.key,
    }


def cli(server_url: str, world: Any, *argv: str, **extra_env: str) -> tuple[int, Any, str]:
    """(exit code, the --json output parsed, standard error), run in process."""
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--json", "--max-retry-wait", "10", *argv],
        environ={**environment(server_url, world), **extra_env},
        stdout=out,
        stderr=err,
    )
    printed = out.getvalue() + err.getvalue()
    for name in ("LUKITTU_API_KEY", "LUKITTU_LICENSE_KEY"):
        secret = extra_env.get(name) or (world.key if name == "LUKITTU_API_KEY" else None)
        assert not secret or secret not in printed
    return code, json.loads(out.getvalue()), err.getvalue()


def build_file(folder: Path, name: str, label: str) -> tuple[Path, str]:
    content = make_jar(extra={"build.txt": label})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def stored_bytes(server: LiveServer, release_id: str) -> bytes:
    return (server.media / ReleaseFile.objects.get(release_id=release_id).key).read_bytes()


def test_publish_creates_the_release_verifies_its_file_and_sets_latest(server, world, tmp_path):
    """Through the installed command, configured from the environment like a CI job."""
    path, sha256 = build_file(tmp_path / "dist", "app-2.0.0.jar", "2.0.0")
    command = [
        str(Path(sys.executable).with_name("lukittu-release")),
        *("publish", "--json", "--product", str(world.product.id), "--version", "2.0.0"),
        *("--latest", "--metadata", "channel=stable", "--metadata", "commit=abc123", str(path)),
    ]
    env = {name: value for name, value in os.environ.items() if not name.startswith("LUKITTU_")}
    result = subprocess.run(
        command,
        env={**env, **environment(server.url, world)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert world.key not in result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert (data["version"], data["status"], data["latest"]) == ("2.0.0", "PUBLISHED", True)
    assert data["file"]["sha256"] == sha256
    assert data["file"]["name"] == "app-2.0.0.jar"
    assert data["metadata"] == [
        {"key": "channel", "value": "stable", "locked": False},
        {"key": "commit", "value": "abc123", "locked": False},
    ]
    release = Release.objects.get(product=world.product, version="2.0.0", branch=None)
    assert str(release.id) == data["id"]
    assert release.latest
    assert not Release.objects.get(pk=world.other_release.pk).latest  # 0.9.0 lost the flag
    assert hashlib.sha256(stored_bytes(server, data["id"])).hexdigest() == sha256
    # Created without latest, then made latest by a second update, once the file checked out.
    entries = AuditLog.objects.filter(target_id=str(release.id)).order_by("created_at", "id")
    assert [entry.action for entry in entries] == ["release.create", "release.update"]
    assert all(entry.user_agent.startswith("lukittu-release/") for entry in entries)


def test_publishing_the_same_version_again_updates_that_release(server, world, tmp_path):
    first, _ = build_file(tmp_path / "first", "app.jar", "first build")
    second, second_sha = build_file(tmp_path / "second", "app.jar", "second build")
    product = str(world.product.id)
    code, created, _ = cli(
        server.url, world, "publish", "--product", product, "--version", "2.0.0", str(first)
    )
    assert code == 0
    assert created["latest"] is False
    code, updated, err = cli(
        server.url, world, "publish", "--product", product, "--version", "2.0.0", str(second)
    )
    assert code == 0, err
    assert updated["id"] == created["id"]
    assert updated["file"]["sha256"] == second_sha
    assert Release.objects.filter(product=world.product, version="2.0.0").count() == 1
    assert hashlib.sha256(stored_bytes(server, created["id"])).hexdigest() == second_sha
    # 1.0.0 exists already (a draft, without a file): it is that release that gets the build.
    code, existing, _ = cli(
        server.url,
        world,
        "publish",
        "--product",
        product,
        "--version",
        "1.0.0",
        "--status",
        "DRAFT",
        str(first),
    )
    assert code == 0
    assert existing["id"] == str(world.release.id)
    assert Release.objects.filter(product=world.product).count() == 3


def test_get_list_and_delete_with_json(server, world, outsider):
    code, got, _ = cli(server.url, world, "get", str(world.other_release.id))
    assert code == 0
    assert (got["id"], got["version"], got["latest"]) == (
        str(world.other_release.id),
        "0.9.0",
        True,
    )

    code, listed, _ = cli(server.url, world, "list", "--product", str(world.product.id))
    assert code == 0
    assert {item["id"] for item in listed["releases"]} == {
        str(world.release.id),
        str(world.other_release.id),
    }
    assert (listed["totalResults"], listed["hasNextPage"]) == (2, False)
    code, published, _ = cli(server.url, world, "list", "--status", "PUBLISHED", "--search", "0.9")
    assert code == 0
    assert [item["id"] for item in published["releases"]] == [str(world.other_release.id)]

    code, deleted, _ = cli(server.url, world, "delete", str(world.release.id))
    assert code == 0
    assert (deleted["id"], deleted["version"]) == (str(world.release.id), "1.0.0")
    assert not Release.objects.filter(pk=world.release.pk).exists()

    code, missing, _ = cli(server.url, world, "get", str(world.release.id))
    assert code == 3
    assert missing["error"]["code"] == "RELEASE_NOT_FOUND"
    # Another team's release is not found either; a key for the wrong team is refused.
    assert cli(server.url, world, "delete", str(outsider.release.id))[0] == 3
    code, refused, _ = cli(
        server.url, world, "get", str(world.other_release.id), LUKITTU_API_KEY=outsider.key
    )
    assert code == 5
    assert refused["error"]["code"] == "UNAUTHORIZED"


def test_download_of_the_plain_licensed_download(server, world, tmp_path):
    license, license_key = license_create(team=world.team)
    world.product.licenses.add(license)
    path, sha256 = build_file(tmp_path / "dist", "app.jar", "for customers")
    product = str(world.product.id)
    code, _, _ = cli(
        server.url,
        world,
        "publish",
        "--product",
        product,
        "--version",
        "2.0.0",
        "--latest",
        str(path),
    )
    assert code == 0
    target = tmp_path / "fetched" / "app.jar"
    target.parent.mkdir()
    args = ("download", "--license", license_key, "--product", product, "--hwid", HWID)
    code, fetched, err = cli(server.url, world, *args, "-o", str(target), LUKITTU_API_KEY="")
    assert code == 0, err
    assert target.read_bytes() == path.read_bytes()
    assert fetched == {
        "path": str(target),
        "size": path.stat().st_size,
        "sha256": sha256,
        "version": "2.0.0",
        "checksumSource": "X-Checksum-SHA256",
        "redirected": False,
    }
    assert license_key not in err
    # 0.9.0 has no file: nothing to deliver.
    other = target.with_name("old.jar")
    code, missing, _ = cli(server.url, world, *args, "--version", "0.9.0", "-o", str(other))
    assert code == 3
    assert missing["error"]["message"] == "Release not found"
    assert not other.exists()
    # The file is there already: refused before anything is asked, unless --force.
    code, exists, _ = cli(server.url, world, *args, "-o", str(target))
    assert (code, exists["error"]["kind"]) == (2, "file_exists")
    code, _, _ = cli(server.url, world, *args, "-o", str(target), "--force")
    assert code == 0
    assert target.read_bytes() == path.read_bytes()


def s3_env(s3: Any) -> dict[str, str]:
    return {
        "AWS_STORAGE_BUCKET_NAME": s3.bucket,
        "AWS_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_REGION_NAME": "us-east-1",
    }


def test_download_redirected_to_s3_is_checked_against_the_services_checksum(s3, world, tmp_path):
    """The service's redirect names the SHA-256; S3's answer is not asked for one."""
    license, license_key = license_create(team=world.team)
    world.product.licenses.add(license)
    path, sha256 = build_file(tmp_path / "dist", "app.jar", "from the bucket")
    product = str(world.product.id)
    with live_server(tmp_path / "server", extra_env=s3_env(s3)) as running:
        code, _, err = cli(
            running.url,
            world,
            "publish",
            "--product",
            product,
            "--version",
            "2.0.0",
            "--latest",
            str(path),
        )
        assert code == 0, err
        target = tmp_path / "fetched.jar"
        args = ("download", "--license", license_key, "--product", product, "--hwid", HWID)
        code, fetched, err = cli(running.url, world, *args, "-o", str(target))
    assert code == 0, err
    assert target.read_bytes() == path.read_bytes()
    assert (fetched["redirected"], fetched["checksumSource"]) == (True, "X-Checksum-SHA256")
    assert (fetched["sha256"], fetched["version"]) == (sha256, "2.0.0")


def test_a_create_whose_answer_is_lost_still_ends_as_one_release(server, world, tmp_path):
    """The proxy forwards the create and cuts the connection before its answer: the release
    exists, the command does not know. Its retry (same Idempotency-Key) must not end in a
    second release or a failure."""
    path, sha256 = build_file(tmp_path / "dist", "app.jar", "lost answer")
    address = urlsplit(server.url)
    with TcpProxy(address.hostname, address.port) as proxy:
        proxy.drop_after(f"POST /api/v1/dev/teams/{world.team.id}/releases ".encode())
        code, data, err = cli(
            f"http://{proxy.address}",
            world,
            *("publish", "--product", str(world.product.id), "--version", "3.0.0", "--latest"),
            str(path),
        )
        assert proxy.dropped.is_set()
    assert code == 0, err
    assert "retrying" in err
    # The server knew the key: it replayed the create's answer instead of refusing the version.
    assert "the server replayed its answer" in err
    releases = Release.objects.filter(product=world.product, version="3.0.0")
    assert releases.count() == 1
    assert str(releases.get().id) == data["id"]
    assert data["latest"] is True and data["file"]["sha256"] == sha256
    entries = AuditLog.objects.filter(target_id=data["id"]).order_by("created_at", "id")
    assert [entry.action for entry in entries] == ["release.create", "release.update"]


@pytest.mark.skipif(
    not branches_api_available(),
    reason="the products/branches API (GET/POST .../products/{productId}/branches) is not "
    "routed yet; this runs once it is",
)
def test_publish_to_a_branch_by_name_creating_it_when_asked(server, world, tmp_path):
    path, sha256 = build_file(tmp_path / "dist", "app.jar", "branch build")
    product = str(world.product.id)
    common = ("publish", "--product", product, "--version", "2.0.0-beta", "--latest")

    code, data, err = cli(server.url, world, *common, "--branch", "beta", str(path))
    assert code == 0, err
    assert (data["branchId"], data["branch"]["name"]) == (str(world.branch.id), "beta")
    assert data["latest"] is True and data["file"]["sha256"] == sha256
    assert Release.objects.get(pk=world.other_release.pk).latest  # the main line keeps its own

    code, missing, _ = cli(server.url, world, *common, "--branch", "rc", str(path))
    assert code == 3
    assert "--create-branch" in missing["error"]["message"]
    assert not Branch.objects.filter(product=world.product, name="rc").exists()

    code, data, err = cli(
        server.url, world, *common, "--branch", "rc", "--create-branch", str(path)
    )
    assert code == 0, err
    branch = Branch.objects.get(product=world.product, name="rc")
    assert data["branchId"] == str(branch.id)
    # Again: the branch and the release are found, not made twice.
    code, again, err = cli(
        server.url, world, *common, "--branch", "rc", "--create-branch", str(path)
    )
    assert code == 0, err
    assert again["id"] == data["id"]
    assert Branch.objects.filter(product=world.product, name="rc").count() == 1
    assert Release.objects.filter(product=world.product, version="2.0.0-beta").count() == 2


def test_the_branches_route_is_found_wherever_it_is_included():
    """The skip condition above is itself right: false without a branches route, true with
    one, at the top level or included."""

    def view(request: Any) -> None:
        return None

    releases = url_path("api/v1/dev/teams/<str:teamId>/releases", view)
    branches = url_path("products/<str:productId>/branches", view)
    assert not has_branches_route([releases])
    assert not has_branches_route(
        [url_path("api/v1/dev/teams/<str:teamId>/branches/<str:id>", view)]
    )
    assert has_branches_route(
        [releases, url_path("api/v1/dev/teams/<str:teamId>/", include([branches]))]
    )
    assert has_branches_route(
        [url_path("api/v1/dev/teams/<str:teamId>/products/<str:p>/branches", view)]
    )


def test_an_unknown_key_is_exit_5_and_never_printed(server, world):
    code, failure, _ = cli(server.url, world, "list", LUKITTU_API_KEY="lk_" + uuid.uuid4().hex)
    assert code == 5
    assert failure["error"]["code"] == "UNAUTHORIZED"
