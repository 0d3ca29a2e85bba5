"""Benchmark of the write path of Update Release against real gunicorn servers.

``make bench`` (or ``.venv/bin/python scripts/bench.py``). It sets up everything it needs on
127.0.0.1 (a fresh PostgreSQL database, Redis database 14, moto's S3 server behind a throttling
TCP proxy, gunicorn with the repository's config file) and removes it all at the end. Every
figure is the ratio of two measurements made in the same run (the median of a few repeats
each), printed with the target it answers to. It exits 0 whether or not the targets are met;
only a failed setup is a non-zero exit. A request that fails (not 200, or a stored SHA-256 that
is not the one sent) is reported as an error in its row: a fast failure never counts as fast.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tcp_proxy import TcpProxy  # noqa: E402  (needs the project on sys.path)

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
MIB = 1024 * 1024
BIG = 10 * MIB
SMALL = 64 * 1024
THROTTLE = 25_000_000  # bytes per second, each direction of each connection: "25 MB/s"
GROWTH_LIMIT = 6 * MIB
BIG_TEAM_RELEASES = 10_000
SMALL_TEAM_RELEASES = 10
RELEASES_PER_PRODUCT = 100
FAKE_FILE_SIZE = MIB
PARALLEL = 8
METADATA_ITEMS = 20
LICENSES = 30

ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/14"
S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
S3_REGION = "us-east-1"
SECRET_KEY = "bench-only-secret-key-" + uuid.uuid4().hex

# Every wait is bounded.
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 120.0
MIGRATE_TIMEOUT = 300.0
CLIENT_BLOCK = 256 * 1024

# Settings a server gets only from this script, never from the caller's environment.
OWN_SETTINGS = {
    "DJANGO_SETTINGS_MODULE",
    "SECURE_SSL_REDIRECT",
    "SECRET_KEY",
    "TEAM_KEYS_SECRET",
    "DATABASE_URL",
    "DEBUG",
    "ALLOWED_HOSTS",
    "MEDIA_ROOT",
    "UPLOAD_TEMP_DIR",
    "MAX_RELEASE_FILE_MB",
    "DEV_API_RATE",
    "CLIENT_IP_RATE",
    "CLIENT_LICENSE_RATE",
    "NUM_PROXIES",
    "LOG_LEVEL",
    "PORT",
}
OWN_PREFIXES = ("AWS_", "GUNICORN_", "REDIS_")


class SetupError(Exception):
    """The benchmark could not set itself up: the only reason for a non-zero exit."""


class MeasureError(Exception):
    """A request of a measurement failed; its row reports this instead of a figure."""


# --- Processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def spawn(command: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child in its own process group (so it is killed with its own children)."""
    with log.open("wb") as output:
        return subprocess.Popen(  # noqa: S603  (our own binaries, no shell)
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there after STOP_TIMEOUT."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
    # Whatever the leader left behind in its group.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def run_bounded(command: list[str], *, env: dict[str, str], log: Path, timeout: float) -> None:
    process = spawn(command, env=env, log=log)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{command[-2:]} took over {timeout:.0f} s:\n{tail(log)}") from None
    finally:
        stop(process)
    if code != 0:
        raise SetupError(f"{' '.join(command[1:])} exited with {code}:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    if not log.exists():
        return "(no output)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.1)
    return False


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) is in parentheses and may contain spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def memory_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise MeasureError(f"{name} not in /proc/{pid}/status")


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def short(self) -> str:
        return f"HTTP {self.status}: {self.body[:300].decode(errors='replace')}"


def request(
    base: str,
    method: str,
    path: str,
    *,
    key: str | None = None,
    body: bytes | Path | None = None,
    content_type: str | None = None,
) -> Reply:
    """One request on a new connection; a file body is streamed from disk in large blocks."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(
        address.hostname or HOST, address.port, timeout=REQUEST_TIMEOUT, blocksize=CLIENT_BLOCK
    )
    headers = {"Connection": "close"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if content_type:
        headers["Content-Type"] = content_type
    try:
        if isinstance(body, Path):
            headers["Content-Length"] = str(body.stat().st_size)
            with body.open("rb") as handle:
                connection.request(method, path, body=handle, headers=headers)
                response = connection.getresponse()
        else:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
        return Reply(response.status, response.read())
    except OSError as error:
        raise MeasureError(f"{method} {path}: {error!r}") from error
    finally:
        connection.close()


def multipart(data: dict[str, Any], file_name: str | None) -> tuple[bytes, bytes, str]:
    """The parts around the file's bytes (as tests/test_memory_budget.py writes them)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n'.encode()
        + json.dumps(data).encode()
    )
    if file_name is None:
        return head + f"\r\n--{boundary}--\r\n".encode(), b"", boundary
    head += (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; "
        f'name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode(), boundary


def content_type_of(boundary: str) -> str:
    return f"multipart/form-data; boundary={boundary}"


# --- Test data ------------------------------------------------------------------------------


@dataclass
class Content:
    """The bytes uploaded, on disk and in memory, with their digests."""

    path: Path
    data: bytes
    sha256: str = field(init=False)
    md5: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.md5 = hashlib.md5(self.data, usedforsecurity=False).hexdigest()


@dataclass
class Target:
    """A release to update, with the key of its team."""

    team_id: str
    key: str
    release_id: str
    product_id: str
    version: str
    license_ids: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/api/v1/dev/teams/{self.team_id}/releases/{self.release_id}"

    def data(self, **overrides: Any) -> dict[str, Any]:
        data = {
            "version": self.version,
            "productId": self.product_id,
            "status": "PUBLISHED",
            "setAsLatest": False,
            "keepExistingFile": True,
            "branchId": None,
            "metadata": [],
            "licenseIds": [],
        }
        data.update(overrides)
        return data


@dataclass
class Upload:
    """A ready-made multipart request that uploads ``content`` to ``target``."""

    target: Target
    body: bytes | Path
    content_type: str
    content: Content | None

    def send(self, base: str) -> Reply:
        return request(
            base,
            "PUT",
            self.target.path,
            key=self.target.key,
            body=self.body,
            content_type=self.content_type,
        )

    def checked(self, base: str) -> float:
        """Seconds the request took; raises MeasureError unless it stored exactly the bytes."""
        started = time.perf_counter()
        reply = self.send(base)
        elapsed = time.perf_counter() - started
        check(reply, self.content)
        return elapsed


def check(reply: Reply, content: Content | None) -> None:
    if reply.status != 200:
        raise MeasureError(reply.short())
    if content is None:
        return
    stored = reply.json()["data"]["file"] or {}
    if stored.get("sha256") != content.sha256 or stored.get("size") != len(content.data):
        raise MeasureError(f"the response's file is not the upload: {stored}")


def upload_of(target: Target, content: Content, folder: Path, **overrides: Any) -> Upload:
    """A file-backed body for large content, an in-memory one for small."""
    head, end, boundary = multipart(target.data(**overrides), "build.bin")
    if len(content.data) < MIB:
        return Upload(target, head + content.data + end, content_type_of(boundary), content)
    path = folder / f"body-{uuid.uuid4().hex}.bin"
    with path.open("wb") as body, content.path.open("rb") as source:
        body.write(head)
        shutil.copyfileobj(source, body, MIB)
        body.write(end)
    return Upload(target, path, content_type_of(boundary), content)


def metadata_update(target: Target, round_number: int) -> Upload:
    """An update with no file: metadata only (the file is kept)."""
    metadata = [{"key": f"k{index}", "value": f"v{round_number}"} for index in range(3)]
    body, _, boundary = multipart(target.data(metadata=metadata), None)
    return Upload(target, body, content_type_of(boundary), None)


class World:
    """Teams, keys, products and releases, written through the project's own Django code."""

    def __init__(self) -> None:
        import django

        django.setup()

    def team(self, name: str, releases: int) -> list[Target]:
        from releases.models import Product, Release, ReleaseStatus
        from teams.services import api_key_create, team_create

        team = team_create(name=name, file_uploads=True, storage_limit_mb=100_000)
        _, key = api_key_create(team=team, name="bench")
        product = Product.objects.create(team=team, name=f"{name} App")
        targets = []
        for index in range(releases):
            release = Release.objects.create(
                team=team, product=product, version=f"1.0.{index}", status=ReleaseStatus.PUBLISHED
            )
            targets.append(
                Target(str(team.pk), key, str(release.pk), str(product.pk), release.version)
            )
        return targets

    def populated_team(self, name: str, releases: int) -> Target:
        """A team with ``releases`` releases that each have a file (rows only: the objects need
        not exist), its stored-bytes total in step, and LICENSES licenses. Returns a release
        in the middle to update (not latest, so licenses may be attached to it)."""
        from django.db import transaction
        from django.db.models import Sum

        from releases.models import Product, Release, ReleaseFile, ReleaseStatus, version_sort_key
        from releases.storage import release_file_key
        from teams.models import Team
        from teams.services import api_key_create, license_create, team_create

        with transaction.atomic():
            team = team_create(name=name, file_uploads=True, storage_limit_mb=100_000)
            _, key = api_key_create(team=team, name="bench")
            license_ids = [str(license_create(team=team)[0].pk) for _ in range(LICENSES)]
            rows: list[Release] = []
            for number in range(max(1, releases // RELEASES_PER_PRODUCT)):
                product = Product.objects.create(team=team, name=f"{name} {number}")
                count = min(RELEASES_PER_PRODUCT, releases - len(rows))
                for index in range(count):
                    version = f"1.{index // 10}.{index % 10}"
                    rows.append(
                        Release(
                            team=team,
                            product=product,
                            version=version,
                            version_sort_key=version_sort_key(version),
                            status=ReleaseStatus.PUBLISHED,
                            # Each product's last release is its latest, as in real use.
                            latest=index == count - 1,
                        )
                    )
            Release.objects.bulk_create(rows, batch_size=2000)
            digest = hashlib.sha256(b"not stored").hexdigest()
            md5 = hashlib.md5(b"not stored", usedforsecurity=False).hexdigest()
            files = []
            for release in rows:
                file_id = uuid.uuid4()
                files.append(
                    ReleaseFile(
                        id=file_id,
                        team=team,
                        release=release,
                        key=release_file_key(
                            team_id=team.pk, release_id=release.pk, file_id=file_id, extension="bin"
                        ),
                        size=FAKE_FILE_SIZE,
                        name="build.bin",
                        checksum=md5,
                        sha256=digest,
                    )
                )
            ReleaseFile.objects.bulk_create(files, batch_size=2000)
            total = ReleaseFile.objects.filter(team=team).aggregate(total=Sum("size"))["total"]
            Team.objects.filter(pk=team.pk).update(storage_used_bytes=total)
        middle = rows[len(rows) // 2]
        assert not middle.latest
        return Target(
            str(team.pk), key, str(middle.pk), str(middle.product_id), middle.version, license_ids
        )

    @staticmethod
    def team_only(name: str) -> Any:
        """A bare team (no key, no releases)."""
        from teams.services import team_create

        return team_create(name=name, file_uploads=False, storage_limit_mb=100)

    def release_count(self, target: Target) -> int:
        from releases.models import Release

        return Release.objects.filter(team_id=target.team_id).count()

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


# --- Servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    workers: int
    log: Path

    def worker_pids(self) -> list[int]:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            pids = children_of(self.process.pid)
            if len(pids) >= self.workers:
                return pids
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise SetupError(f"{self.name}: gunicorn did not start its workers:\n{tail(self.log)}")


class Bench:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.folder = Path(tempfile.mkdtemp(prefix="lukittu-bench-"))
        self.media = self.folder / "media"
        self.uploads = self.folder / "uploads"
        self.bodies = self.folder / "bodies"
        for folder in (self.media, self.uploads, self.bodies):
            folder.mkdir()
        self.database = f"bench_{os.getpid()}"
        self.database_url = f"postgres://postgres@127.0.0.1:5432/{self.database}"
        self.redis_url: str | None = None
        self.cleanups: list[Callable[[], None]] = []
        self.notes: list[str] = []
        self.rows: list[Row] = []
        self.moto_url = ""
        self.proxy_url = ""
        self.bucket = f"bench-{uuid.uuid4().hex[:12]}"
        self.proxy: TcpProxy | None = None
        self.world: World | None = None
        self.s3: Any = None  # a boto3 S3 client straight to moto

    # --- Setup ---

    def setup(self) -> None:
        self.create_database()
        self.check_redis()
        self.start_s3()
        self.migrate()
        os.environ.update(self.django_env())
        self.world = World()
        self.cleanups.append(self.world.close)
        self.tiny = self.content(1024, "tiny.bin")

    def django_env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "lukittu.settings",
            "SECRET_KEY": SECRET_KEY,
            "TEAM_KEYS_SECRET": SECRET_KEY,
            "DATABASE_URL": self.database_url,
            "DEBUG": "false",
            # The benchmark speaks plain HTTP to the servers it starts.
            "SECURE_SSL_REDIRECT": "false",
            "MEDIA_ROOT": str(self.media),
            "UPLOAD_TEMP_DIR": str(self.uploads),
            "LOG_LEVEL": "WARNING",
        }

    def create_database(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True, connect_timeout=10) as db:
                db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        except psycopg.Error as error:
            raise SetupError(f"cannot create database {self.database}: {error}") from error
        self.cleanups.append(self.drop_database)

    def drop_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True, connect_timeout=10) as db:
            db.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )

    def check_redis(self) -> None:
        import redis

        try:
            client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
            client.ping()
            client.close()
        except redis.RedisError as error:
            self.notes.append(f"Redis unreachable ({error}): servers run without REDIS_URL")
            return
        self.redis_url = REDIS_URL

    def migrate(self) -> None:
        env = {**self.base_env(), **self.django_env()}
        run_bounded(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            env=env,
            log=self.folder / "migrate.log",
            timeout=MIGRATE_TIMEOUT,
        )

    def start_s3(self) -> None:
        import boto3

        port = free_port()
        log = self.folder / "moto.log"
        process = spawn(
            [str(BIN / "moto_server"), "-H", HOST, "-p", str(port)], env=self.base_env(), log=log
        )
        self.cleanups.append(lambda: stop(process))
        if not wait_for_port(port, process, READY_TIMEOUT):
            raise SetupError(f"moto_server did not start:\n{tail(log)}")
        self.moto_url = f"http://{HOST}:{port}"
        self.s3 = boto3.client(
            "s3", endpoint_url=self.moto_url, region_name=S3_REGION, **S3_CREDENTIALS
        )
        self.s3.create_bucket(Bucket=self.bucket)
        self.proxy = TcpProxy(HOST, port).start()
        self.cleanups.append(self.proxy.stop)
        self.proxy_url = f"http://{HOST}:{self.proxy.port}"

    def base_env(self) -> dict[str, str]:
        return {
            name: value
            for name, value in os.environ.items()
            if name not in OWN_SETTINGS and not name.startswith(OWN_PREFIXES)
        }

    @contextmanager
    def server(
        self, name: str, *, s3_endpoint: str | None, workers: int, threads: int
    ) -> Iterator[Server]:
        """gunicorn with the repository's config file, stopped on exit."""
        from gunicorn.config import Config

        port = free_port()
        env = self.base_env()
        env.update(self.django_env())
        env.update(
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DEV_API_RATE="100000/minute",
            # One client address and license key send every Client API request.
            CLIENT_IP_RATE="100000000/minute",
            CLIENT_LICENSE_RATE="100000000/minute",
            GUNICORN_BIND=f"{HOST}:{port}",
            GUNICORN_WORKERS=str(workers),
            GUNICORN_THREADS=str(threads),
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if s3_endpoint:
            env.update(
                AWS_STORAGE_BUCKET_NAME=self.bucket,
                AWS_S3_ENDPOINT_URL=s3_endpoint,
                AWS_ACCESS_KEY_ID=S3_CREDENTIALS["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["aws_secret_access_key"],
                AWS_S3_REGION_NAME=S3_REGION,
            )
        command = [str(BIN / "gunicorn"), "-c", "lukittu/gunicorn_conf.py", "lukittu.wsgi"]
        if "control_socket_disable" in Config().settings:
            # Newer gunicorn opens a control socket at one fixed path under $HOME by default.
            command.append("--no-control-socket")
        log = self.folder / f"gunicorn-{name.replace(' ', '-')}.log"
        process = spawn(command, env=env, log=log)
        server = Server(name, f"http://{HOST}:{port}", process, workers, log)
        try:
            if not wait_for_port(port, process, READY_TIMEOUT):
                raise SetupError(f"gunicorn ({name}) did not listen:\n{tail(log)}")
            server.worker_pids()
            self.wait_until_serving(server)
            self.warm_up(server)
            yield server
        finally:
            stop(process)

    def wait_until_serving(self, server: Server) -> None:
        """Django answers (a 401 for an unauthenticated list is an answer)."""
        path = f"/api/v1/dev/teams/{uuid.uuid4()}/releases"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            with suppress(MeasureError):
                if request(server.url, "GET", path).status == 401:
                    return
            if server.process.poll() is not None:
                break
            time.sleep(0.2)
        raise SetupError(f"gunicorn ({server.name}) does not serve the API:\n{tail(server.log)}")

    def cleanup(self) -> None:
        for action in reversed(self.cleanups):
            try:
                action()
            except Exception as error:  # a cleanup must not stop the next one
                print(f"cleanup: {error!r}", file=sys.stderr)
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- Content ---

    def content(self, size: int, name: str) -> Content:
        data = os.urandom(size)
        path = self.folder / name
        path.write_bytes(data)
        return Content(path, data)

    # --- Measuring ---

    def warm_up(self, server: Server) -> None:
        """Requests that make every thread of every worker open its database connection (and
        its S3 client): with gthread, any thread may take the next request."""
        assert self.world is not None
        targets = self.world.team(f"Bench warm-up {server.name}", PARALLEL)
        uploads = [upload_of(target, self.tiny, self.bodies) for target in targets]
        for _ in range(3):
            parallel(uploads, server.url)

    def run(self, row: Row, action: Callable[[], tuple[str, str, float]]) -> None:
        """One measurement; a failed request makes its row an error instead of a figure."""
        print(f"\n## {row.number}. {row.measure}", flush=True)
        started = time.monotonic()
        try:
            row.a, row.b, row.ratio = action()
        except MeasureError as error:
            row.a, row.b, row.ratio, row.error = "error", "-", None, str(error)
            print(f"  ERROR: {error}", flush=True)
        self.rows.append(row)
        print(f"  -> {' | '.join(row.cells())}  ({time.monotonic() - started:.1f} s)", flush=True)


# --- Results ----------------------------------------------------------------------------------


@dataclass
class Row:
    number: int
    measure: str
    limit: float
    strict: bool = False  # the target is "< limit" rather than "<= limit"
    a: str = ""
    b: str = ""
    ratio: float | None = None
    error: str = ""

    @property
    def target(self) -> str:
        return f"{'<' if self.strict else '<='} {self.limit:g}x"

    @property
    def met(self) -> str:
        if self.ratio is None:
            return "error"
        ok = self.ratio < self.limit if self.strict else self.ratio <= self.limit
        return "yes" if ok else "NO"

    def cells(self) -> list[str]:
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}x"
        return [f"{self.number}. {self.measure}", self.a, self.b, ratio, self.target, self.met]


HEADERS = ["measure", "A", "B", "ratio", "target", "met"]


def table_text(rows: list[Row]) -> str:
    cells = [HEADERS] + [row.cells() for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def table_markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + " --- |" * len(HEADERS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def median(values: list[float]) -> float:
    return statistics.median(values)


def show(label: str, values: list[float]) -> None:
    print(
        f"  {label}: median {seconds(median(values))} of {len(values)}: "
        + ", ".join(seconds(value) for value in values)
    )


def compared(a: list[float], b: list[float]) -> tuple[str, str, float]:
    return seconds(median(a)), seconds(median(b)), median(a) / median(b)


# --- Measurements ---------------------------------------------------------------------------


def parallel(uploads: list[Upload], base: str) -> float:
    """Wall time of sending ``uploads`` all at once, each checked."""
    go = threading.Event()
    aborted = threading.Event()

    def one(upload: Upload) -> float:
        go.wait(READY_TIMEOUT)
        if aborted.is_set():
            raise MeasureError("aborted")
        return upload.checked(base)

    pool = ThreadPoolExecutor(max_workers=len(uploads))
    try:
        futures = [pool.submit(one, upload) for upload in uploads]
        time.sleep(0.05)  # every thread is waiting on ``go``
        started = time.perf_counter()
        go.set()
        for future in futures:
            future.result(timeout=REQUEST_TIMEOUT * 2)
        return time.perf_counter() - started
    except BaseException:
        # A failed upload, or SIGTERM: do not wait for the others (the servers are stopped
        # next, which ends any request still running).
        aborted.set()
        raise
    finally:
        go.set()
        pool.shutdown(wait=not aborted.is_set(), cancel_futures=True)


def probe_during_batch(
    base: str, uploads: list[Upload], target: Target, probe_round: int
) -> tuple[list[float], int]:
    """Metadata-only updates sent one after another while ``uploads`` run in parallel; each
    one sent before the batch ended counts, however long it then waited."""
    batch_done = threading.Event()
    latencies: list[float] = []
    failure: list[MeasureError] = []

    def probe() -> None:
        nonlocal probe_round
        time.sleep(0.1)  # the uploads are streaming by then
        while not batch_done.is_set():
            try:
                latencies.append(metadata_update(target, probe_round).checked(base))
            except MeasureError as error:
                failure.append(error)
                return
            probe_round += 1

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        parallel(uploads, base)
    finally:
        batch_done.set()
        prober.join(REQUEST_TIMEOUT)
    if failure:
        raise MeasureError(f"metadata update during the batch: {failure[0]}")
    return latencies, probe_round


def measure_batches(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """1: one team vs eight teams on throttled S3. 2: a metadata-only update, busy vs idle."""
    one_team = world.team("Bench one team", PARALLEL + 1)
    probe_target = one_team.pop()
    eight_teams = [world.team(f"Bench team {number}", 1)[0] for number in range(PARALLEL)]
    one_team_uploads = [upload_of(target, big, bench.bodies) for target in one_team]
    eight_team_uploads = [upload_of(target, big, bench.bodies) for target in eight_teams]
    proxy = bench.proxy
    assert proxy is not None
    proxy.throttle(THROTTLE)
    with bench.server("s3-throttled", s3_endpoint=bench.proxy_url, workers=2, threads=4) as server:
        # Every measured release gets a file first, so each measured upload replaces one.
        for uploads in (one_team_uploads, eight_team_uploads):
            parallel([upload_of(u.target, bench.tiny, bench.bodies) for u in uploads], server.url)

        def batches() -> tuple[str, str, float]:
            one: list[float] = []
            eight: list[float] = []
            for number in range(rounds):
                order = [(one, one_team_uploads), (eight, eight_team_uploads)]
                for results, uploads in order if number % 2 == 0 else order[::-1]:
                    sent = proxy.bytes_to_upstream
                    results.append(parallel(uploads, server.url))
                    if proxy.bytes_to_upstream - sent < PARALLEL * BIG:
                        raise MeasureError("the uploads did not all go through the throttled proxy")
            show("one team", one)
            show(f"{PARALLEL} teams", eight)
            return compared(one, eight)

        def latency() -> tuple[str, str, float]:
            idle: list[float] = []
            busy: list[float] = []
            probe_round = 1
            for _ in range(rounds):
                for _ in range(8):
                    idle.append(metadata_update(probe_target, probe_round).checked(server.url))
                    probe_round += 1
                during, probe_round = probe_during_batch(
                    server.url, one_team_uploads, probe_target, probe_round
                )
                busy += during
            if not busy:
                raise MeasureError("no metadata update was sent while the batch ran")
            show("during the batch", busy)
            show("idle", idle)
            return compared(busy, idle)

        bench.run(
            Row(
                1,
                f"{PARALLEL} parallel 10 MiB uploads, S3 at 25 MB/s, batch wall time: "
                f"one team (A) vs {PARALLEL} teams (B)",
                1.3,
            ),
            batches,
        )
        bench.run(
            Row(2, "same-team metadata-only update latency: during batch 1 (A) vs idle (B)", 2.0),
            latency,
        )
    proxy.throttle(None)


def write_floor(content: Content, folder: Path) -> float:
    """What storing 10 MiB costs at the least: both digests and one durable write."""
    path = folder / f"floor-{uuid.uuid4().hex}.bin"
    started = time.perf_counter()
    hashlib.md5(content.data, usedforsecurity=False).hexdigest()
    hashlib.sha256(content.data).hexdigest()
    with path.open("xb") as handle:
        handle.write(content.data)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed


def measure_local(bench: Bench, world: World, big: Content, small: Content, rounds: int) -> None:
    """3: a 10 MiB upload on local files vs the floor. 5: a full update with a small file, in
    a team of 10,000 releases vs a team of 10."""
    [target] = world.team("Bench local", 1)
    upload = upload_of(target, big, bench.bodies)
    started = time.monotonic()
    big_team = world.populated_team("Bench big", BIG_TEAM_RELEASES)
    small_team = world.populated_team("Bench small", SMALL_TEAM_RELEASES)
    print(
        f"  made teams of {world.release_count(big_team):,} and "
        f"{world.release_count(small_team)} releases with files in "
        f"{time.monotonic() - started:.1f} s",
        flush=True,
    )
    metadata = [{"key": f"key-{n}", "value": f"value {n}"} for n in range(METADATA_ITEMS)]
    full = {
        name: upload_of(team, small, bench.bodies, metadata=metadata, licenseIds=team.license_ids)
        for name, team in (("big", big_team), ("small", small_team))
    }
    with bench.server("local", s3_endpoint=None, workers=2, threads=4) as server:

        def upload_vs_floor() -> tuple[str, str, float]:
            upload.checked(server.url)
            write_floor(big, bench.folder)
            service: list[float] = []
            floor: list[float] = []
            for _ in range(rounds):
                service.append(upload.checked(server.url))
                floor.append(write_floor(big, bench.folder))
            show("service", service)
            show("floor", floor)
            return compared(service, floor)

        def team_size() -> tuple[str, str, float]:
            for each in full.values():
                each.checked(server.url)
            times: dict[str, list[float]] = {"big": [], "small": []}
            for number in range(rounds * 6):
                for name in ("big", "small") if number % 2 == 0 else ("small", "big"):
                    times[name].append(full[name].checked(server.url))
            show(f"{BIG_TEAM_RELEASES:,} releases", times["big"])
            show(f"{SMALL_TEAM_RELEASES} releases", times["small"])
            return compared(times["big"], times["small"])

        bench.run(
            Row(
                3,
                "10 MiB upload, local files, end to end (A) vs in-process floor: MD5 + "
                "SHA-256 + write + fsync (B)",
                2.0,
            ),
            upload_vs_floor,
        )
        bench.run(
            Row(
                5,
                f"full update, 64 KiB file + {METADATA_ITEMS} metadata + {LICENSES} "
                f"licenses, local files: team of {BIG_TEAM_RELEASES:,} releases (A) vs "
                f"{SMALL_TEAM_RELEASES} (B)",
                1.1,
            ),
            team_size,
        )


def put_direct(bench: Bench, content: Content) -> float:
    key = f"direct/{uuid.uuid4().hex}.bin"
    started = time.perf_counter()
    with content.path.open("rb") as body:
        answer = bench.s3.put_object(Bucket=bench.bucket, Key=key, Body=body)
    elapsed = time.perf_counter() - started
    if answer.get("ETag", "").strip('"') != content.md5:
        raise MeasureError(f"put_object stored something else (ETag {answer.get('ETag')})")
    bench.s3.delete_object(Bucket=bench.bucket, Key=key)
    return elapsed


def measure_s3(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """4: a 10 MiB upload through the service to moto vs boto3's put_object to moto."""
    [target] = world.team("Bench s3", 1)
    upload = upload_of(target, big, bench.bodies)
    with bench.server("s3", s3_endpoint=bench.moto_url, workers=2, threads=4) as server:

        def service_vs_boto3() -> tuple[str, str, float]:
            upload.checked(server.url)
            put_direct(bench, big)
            service: list[float] = []
            direct: list[float] = []
            for _ in range(rounds):
                service.append(upload.checked(server.url))
                direct.append(put_direct(bench, big))
            show("service", service)
            show("put_object", direct)
            return compared(service, direct)

        bench.run(
            Row(
                4,
                "10 MiB upload, S3 (moto, unthrottled), end to end (A) vs boto3 put_object "
                "of the same bytes to moto (B)",
                1.5,
            ),
            service_vs_boto3,
        )


def measure_memory(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """6: a one-worker, one-thread server's peak memory growth while it takes 10 MiB."""
    for storage, endpoint in (("local files", None), ("S3", bench.moto_url)):
        [target] = world.team(f"Bench memory {storage}", 1)
        upload = upload_of(target, big, bench.bodies)
        name = "memory-" + storage.split()[0].lower()
        with bench.server(name, s3_endpoint=endpoint, workers=1, threads=1) as server:
            bench.run(
                Row(
                    6,
                    f"worker peak memory growth taking a 10 MiB upload, {storage} (A) vs "
                    "the 6 MiB limit (B)",
                    1.0,
                    strict=True,
                ),
                partial(memory_growth, server, upload, rounds),
            )


def memory_growth(server: Server, upload: Upload, rounds: int) -> tuple[str, str, float]:
    [pid] = server.worker_pids()
    clear_refs = Path(f"/proc/{pid}/clear_refs")
    if not os.access(clear_refs, os.W_OK):
        raise MeasureError(f"{clear_refs} is not writable, so the peak cannot be reset")
    grown: list[float] = []
    for _ in range(rounds):
        clear_refs.write_text("5")
        before = memory_kib(pid, "VmRSS")
        upload.checked(server.url)
        peak = memory_kib(pid, "VmHWM")
        grown.append((peak - before) * 1024)
        if server.worker_pids() != [pid]:
            raise MeasureError("the worker was replaced during the measurement")
    print(f"  worker {pid}, growth: " + ", ".join(f"{value / MIB:.2f} MiB" for value in grown))
    value = median(grown)
    return f"{value / MIB:.2f} MiB", f"{GROWTH_LIMIT / MIB:g} MiB", value / GROWTH_LIMIT


# --- Reads: one release vs the bare envelope --------------------------------------------------

READ_CLIENTS = 8  # keep-alive client threads, as many as the server's 2 workers x 4 threads
READ_REQUESTS = 2000  # per path and round; a fixed count, so both paths see the same recycling
READ_WARM_UP = 200
READ_METADATA = 20
READ_LICENSES = 3
READ_TARGET = 0.3
BARE_PATH = "/api/v1/nothing"


@dataclass
class AtLeastRow(Row):
    """A row whose ratio must reach its limit (a throughput), not stay under it (a cost)."""

    @property
    def target(self) -> str:
        return f">= {self.limit:g}x"

    @property
    def met(self) -> str:
        if self.ratio is None:
            return "error"
        return "yes" if self.ratio >= self.limit else "NO"


def release_to_read(world: World) -> Target:
    """A published release with a file (a row: the object need not exist), READ_METADATA
    metadata items and READ_LICENSES licenses, as Get Release answers it in real use."""
    from django.db import transaction

    from releases.models import (
        Product,
        Release,
        ReleaseFile,
        ReleaseLicense,
        ReleaseMetadata,
        ReleaseStatus,
    )
    from teams.services import api_key_create, license_create, team_create

    with transaction.atomic():
        team = team_create(name="Bench reads", file_uploads=True, storage_limit_mb=100_000)
        _, key = api_key_create(team=team, name="bench")
        product = Product.objects.create(team=team, name="Bench reads App")
        release = Release.objects.create(
            team=team, product=product, version="1.0.0", status=ReleaseStatus.PUBLISHED
        )
        file_id = uuid.uuid4()
        ReleaseFile.objects.create(
            id=file_id,
            team=team,
            release=release,
            key=f"releases/{team.pk}/{release.pk}/{file_id}.jar",
            size=FAKE_FILE_SIZE,
            name="build.jar",
            checksum=hashlib.md5(b"not stored", usedforsecurity=False).hexdigest(),
            sha256=hashlib.sha256(b"not stored").hexdigest(),
            main_class_name="com.example.Main",
        )
        ReleaseMetadata.objects.bulk_create(
            ReleaseMetadata(release=release, position=n, key=f"key-{n}", value=f"value {n}")
            for n in range(READ_METADATA)
        )
        licenses = [license_create(team=team)[0] for _ in range(READ_LICENSES)]
        ReleaseLicense.objects.bulk_create(
            ReleaseLicense(release=release, license=license) for license in licenses
        )
    return Target(
        str(team.pk),
        key,
        str(release.pk),
        str(product.pk),
        release.version,
        [str(license.pk) for license in licenses],
    )


class KeepAliveClient:
    """One client thread's HTTP/1.1 connection, reused from request to request. A reused
    connection that the server closed meanwhile (a worker recycled after max_requests, or the
    keep-alive timeout) is reopened and the GET sent again; a fresh connection failing is an
    error."""

    def __init__(self, base: str) -> None:
        address = urlsplit(base)
        self.host = address.hostname or HOST
        self.port = address.port
        self.connection: http.client.HTTPConnection | None = None
        self.opened = 0

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        while True:
            fresh = self.connection is None
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT
                )
                self.opened += 1
            try:
                self.connection.request("GET", path, headers=headers)
                response = self.connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if fresh:
                    raise MeasureError(f"GET {path}: {error!r}") from error
                continue
            if response.will_close:
                self.close()
            return Reply(response.status, body)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def requests_per_second(
    base: str, path: str, headers: dict[str, str], expected: tuple[int, bytes], total: int
) -> tuple[float, int]:
    """``total`` GETs of ``path`` shared by READ_CLIENTS keep-alive threads, each answer
    checked (status and a piece of the body): requests per second, and connections opened."""
    status, piece = expected
    lock = threading.Lock()
    sent = 0
    failures: list[str] = []
    clients = [KeepAliveClient(base) for _ in range(READ_CLIENTS)]
    go = threading.Barrier(READ_CLIENTS + 1)

    def work(client: KeepAliveClient) -> None:
        nonlocal sent
        go.wait(READY_TIMEOUT)
        while not failures:
            with lock:
                if sent >= total:
                    return
                sent += 1
            try:
                reply = client.get(path, headers)
            except MeasureError as error:
                failures.append(str(error))
                return
            if reply.status != status or piece not in reply.body:
                failures.append(reply.short())
                return

    threads = [threading.Thread(target=work, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    go.wait(READY_TIMEOUT)
    started = time.perf_counter()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    if failures:
        raise MeasureError(f"GET {path}: {failures[0]}")
    if any(thread.is_alive() for thread in threads):
        raise MeasureError(f"GET {path}: a client thread did not finish")
    return total / elapsed, sum(client.opened for client in clients)


def measure_reads(bench: Bench, world: World, rounds: int) -> None:
    """7: Get Release (a file, 20 metadata, 3 licenses) vs the bare /api/ 404, in requests per
    second on one server, each path driven by READ_CLIENTS keep-alive clients in turn."""
    target = release_to_read(world)
    read = (
        target.path,
        {"Authorization": f"Bearer {target.key}"},
        (200, target.release_id.encode()),
    )
    # The envelope's 404 for an unknown /api/ URL: everything every API response costs
    # (middleware, routing, the JSON envelope), without a view.
    bare = (BARE_PATH, {}, (404, b'"code":"BAD_REQUEST"'))
    with bench.server("reads", s3_endpoint=None, workers=2, threads=4) as server:

        def release_vs_bare() -> tuple[str, str, float]:
            # Every worker thread has imported, connected and answered both paths first.
            for path, headers, expected in (read, bare):
                requests_per_second(server.url, path, headers, expected, READ_WARM_UP)
            results: dict[str, list[float]] = {"release": [], "bare": []}
            opened = 0
            for number in range(rounds):
                order = [("release", read), ("bare", bare)]
                for name, (path, headers, expected) in order if number % 2 == 0 else order[::-1]:
                    rate, connections = requests_per_second(
                        server.url, path, headers, expected, READ_REQUESTS
                    )
                    results[name].append(rate)
                    opened += connections
            for name, label in (("release", "one release"), ("bare", "bare 404")):
                values = results[name]
                print(
                    f"  {label}: median {median(values):.0f} req/s of {len(values)}: "
                    + ", ".join(f"{value:.0f}" for value in values)
                )
            # READ_CLIENTS per run, plus one each time a recycled worker (gunicorn's
            # max_requests) or the keep-alive timeout closed a connection.
            print(f"  connections opened: {opened} for {2 * rounds} runs of {READ_CLIENTS}")
            release, bare_rate = median(results["release"]), median(results["bare"])
            return f"{release:.0f} req/s", f"{bare_rate:.0f} req/s", release / bare_rate

        bench.run(
            AtLeastRow(
                7,
                f"GET one release ({READ_METADATA} metadata, {READ_LICENSES} licenses, a file) "
                f"(A) vs bare /api/ 404 (B), requests per second, {READ_CLIENTS} keep-alive "
                "clients",
                READ_TARGET,
            ),
            release_vs_bare,
        )
    bench.notes.append(
        f"7: {READ_REQUESTS} requests per path and round from {READ_CLIENTS} keep-alive client "
        f"threads in this process, the two paths in turn on one server; a higher ratio is "
        f"better."
    )


# --- Delivery: the Client API ------------------------------------------------------------------

DELIVERY_HWID = "bench-machine-000001"
DELIVERY_LICENSES = 1_000
DELIVERY_RELEASES = 1_000
THROUGHPUT_TARGET = 0.5
LATEST_TARGET = 0.3
WARM_UP_VERSION = "0.0.1"


@dataclass
class ClientShop:
    """A team selling a product (the first of its products) through the Client API: the
    license key, the team's public key as a loader has it, and the delivered build."""

    team_id: str
    product_id: str
    license_key: str
    public_key_pem: str
    content: Content

    def path(self, endpoint: str, **extra: str) -> str:
        from urllib.parse import urlencode

        query = {
            "licenseKey": self.license_key,
            "productId": self.product_id,
            "hardwareIdentifier": DELIVERY_HWID,
            **extra,
        }
        return f"/api/v1/client/teams/{self.team_id}/{endpoint}?{urlencode(query)}"

    def classloader(self, **extra: str) -> tuple[str, Any]:
        """A classloader URL with a new session key, and the loader that can read its answer
        (tests/loader.py, written from the protocol rather than from the service's code)."""
        from tests.loader import Loader

        loader = Loader(self.public_key_pem)
        return self.path(
            "verification/classloader", sessionKey=loader.session_key_hex(), **extra
        ), loader


def delivery_shop(
    bench: Bench,
    name: str,
    content: Content,
    *,
    on_s3: bool,
    releases: int = 1,
    licenses: int = 1,
    warm_up: Content | None = None,
) -> ClientShop:
    """A team of ``releases`` releases with file rows (100 a product, each product's last one
    its latest) and ``licenses`` licenses that all open its first product. That product's
    latest release carries ``content``, stored for real (and ``warm_up``, stored as release
    WARM_UP_VERSION of the same line). The measured license has seat limits, with the
    measured device's seats already taken, so every check a customer meets is made."""
    from django.db import transaction

    from delivery.models import Seat, hwid_digest
    from releases.models import Product, Release, ReleaseFile, ReleaseStatus, version_sort_key
    from releases.storage import release_file_key
    from teams.keys import key_pair_for
    from teams.models import License
    from teams.services import license_create, team_create

    stored: list[tuple[str, Content]] = []
    with transaction.atomic():
        team = team_create(name=name, file_uploads=True, storage_limit_mb=100_000)
        products = [
            Product.objects.create(team=team, name=f"{name} {number}")
            for number in range(max(1, -(-releases // RELEASES_PER_PRODUCT)))
        ]
        rows: list[Release] = []
        for product in products:
            count = min(RELEASES_PER_PRODUCT, releases - len(rows))
            for index in range(count):
                version = f"1.{index // 10}.{index % 10}"
                rows.append(
                    Release(
                        team=team,
                        product=product,
                        version=version,
                        version_sort_key=version_sort_key(version),
                        status=ReleaseStatus.PUBLISHED,
                        latest=index == count - 1,
                    )
                )
        if warm_up is not None:
            rows.append(
                Release(
                    team=team,
                    product=products[0],
                    version=WARM_UP_VERSION,
                    version_sort_key=version_sort_key(WARM_UP_VERSION),
                    status=ReleaseStatus.PUBLISHED,
                )
            )
        Release.objects.bulk_create(rows, batch_size=2000)
        delivered = next(row for row in rows if row.product_id == products[0].pk and row.latest)
        files = []
        for release in rows:
            file_id = uuid.uuid4()
            key = release_file_key(
                team_id=team.pk, release_id=release.pk, file_id=file_id, extension="jar"
            )
            real = content if release is delivered else None
            if warm_up is not None and release.version == WARM_UP_VERSION:
                real = warm_up
            if real is not None:
                stored.append((key, real))
            files.append(
                ReleaseFile(
                    id=file_id,
                    team=team,
                    release=release,
                    key=key,
                    size=len(real.data) if real else FAKE_FILE_SIZE,
                    name="build.jar",
                    checksum=real.md5
                    if real
                    else hashlib.md5(b"x", usedforsecurity=False).hexdigest(),
                    sha256=real.sha256 if real else hashlib.sha256(b"x").hexdigest(),
                    main_class_name="com.example.Main",
                )
            )
        ReleaseFile.objects.bulk_create(files, batch_size=2000)
        license, license_key = license_create(
            team=team, products=[products[0]], ip_limit=10, hwid_limit=10
        )
        others = []
        for _ in range(licenses - 1):
            other = License(team=team)
            other.set_key(License.generate_key())
            others.append(other)
        License.objects.bulk_create(others, batch_size=2000)
        through = Product.licenses.through
        through.objects.bulk_create(
            [through(product_id=products[0].pk, license_id=other.pk) for other in others],
            batch_size=2000,
        )
        for kind, value in (
            (Seat.Kind.IP, "127.0.0.1"),
            (Seat.Kind.HWID, hwid_digest(DELIVERY_HWID)),
        ):
            Seat.objects.create(license=license, kind=kind, value=value)
        public_key_pem = key_pair_for(team).public_key_pem
    for key, real in stored:
        if on_s3:
            with real.path.open("rb") as body:
                bench.s3.put_object(Bucket=bench.bucket, Key=key, Body=body)
        else:
            path = bench.media / key
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real.path, path)
    return ClientShop(str(team.pk), str(products[0].pk), license_key, public_key_pem, content)


def fetch_classloader(
    base: str, shop: ClientShop, first_bytes: list[float] | None = None, **extra: str
) -> float:
    """Seconds to fetch the build through the classloader on a new connection, from the
    request to its last byte (and, into ``first_bytes``, to its status line and headers); the
    answer is then decrypted and compared (untimed)."""
    path, loader = shop.classloader(**extra)
    address = urlsplit(base)
    connection = http.client.HTTPConnection(
        address.hostname or HOST, address.port, timeout=REQUEST_TIMEOUT
    )
    try:
        started = time.perf_counter()
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        headers_in = time.perf_counter()
        reply = Reply(response.status, response.read())
        elapsed = time.perf_counter() - started
    except OSError as error:
        raise MeasureError(f"GET {path}: {error!r}") from error
    finally:
        connection.close()
    if first_bytes is not None:
        first_bytes.append(headers_in - started)
    if reply.status != 200:
        raise MeasureError(reply.short())
    try:
        plain = loader.decrypt(reply.body)
    except Exception as error:  # InvalidTag, a short frame
        raise MeasureError(f"the classloader's answer does not decrypt: {error!r}") from error
    if not extra and hashlib.sha256(plain).hexdigest() != shop.content.sha256:
        raise MeasureError("the classloader delivered other bytes than the stored build")
    return elapsed


def fetch_raw(bench: Bench, key: str, content: Content) -> float:
    """Seconds to read the stored object straight from S3 with boto3, to its last byte."""
    started = time.perf_counter()
    body = bench.s3.get_object(Bucket=bench.bucket, Key=key)["Body"].read()
    elapsed = time.perf_counter() - started
    if hashlib.sha256(body).hexdigest() != content.sha256:
        raise MeasureError("get_object returned other bytes")
    return elapsed


def delivered_key(shop: ClientShop) -> str:
    from releases.models import ReleaseFile

    return ReleaseFile.objects.get(
        release__product_id=shop.product_id, release__latest=True, release__branch=None
    ).key


def measure_delivery_throughput(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """8: the classloader's encrypted download of 10 MiB from S3 (moto) vs boto3's
    get_object of the same object from moto, in MB/s."""
    shop = delivery_shop(bench, "Bench classloader S3", big, on_s3=True)
    key = delivered_key(shop)
    with bench.server("delivery-s3", s3_endpoint=bench.moto_url, workers=2, threads=4) as server:

        def classloader_vs_raw() -> tuple[str, str, float]:
            # Concurrent warm-ups, so that each worker has its key loaded and S3 opened once.
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: fetch_classloader(server.url, shop), range(8)))
            fetch_raw(bench, key, big)
            service: list[float] = []
            headers_in: list[float] = []
            raw: list[float] = []
            for number in range(rounds):
                order = [
                    (service, lambda: fetch_classloader(server.url, shop, headers_in)),
                    (raw, lambda: fetch_raw(bench, key, big)),
                ]
                for results, fetch in order if number % 2 == 0 else order[::-1]:
                    results.append(fetch())
            show("classloader", service)
            show("  of which until the headers (the checks, seats, record, S3 open)", headers_in)
            show("get_object", raw)
            a, b = len(big.data) / median(service) / 1e6, len(big.data) / median(raw) / 1e6
            return f"{a:.0f} MB/s", f"{b:.0f} MB/s", a / b

        bench.run(
            AtLeastRow(
                8,
                "10 MiB classloader download (RSA session key, AES-GCM frames), S3 (moto): "
                "throughput of the service (A) vs boto3 get_object of the stored object (B)",
                THROUGHPUT_TARGET,
            ),
            classloader_vs_raw,
        )


def measure_delivery_memory(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """9: a one-worker, one-thread server's peak memory growth while it streams 10 MiB through
    the classloader, after a warm-up classloader download of a small build."""
    small = bench.content(4096, "delivery-warm-up.bin")
    for storage, endpoint in (("local files", None), ("S3", bench.moto_url)):
        shop = delivery_shop(
            bench,
            f"Bench classloader memory {storage}",
            big,
            on_s3=endpoint is not None,
            warm_up=small,
        )
        name = "delivery-memory-" + storage.split()[0].lower()
        with bench.server(name, s3_endpoint=endpoint, workers=1, threads=1) as server:
            bench.run(
                Row(
                    9,
                    f"worker peak memory growth streaming a 10 MiB classloader download, {storage} "
                    "(A) vs the 6 MiB limit (B)",
                    1.0,
                    strict=True,
                ),
                partial(delivery_memory_growth, server, shop, rounds),
            )


def delivery_memory_growth(server: Server, shop: ClientShop, rounds: int) -> tuple[str, str, float]:
    [pid] = server.worker_pids()
    clear_refs = Path(f"/proc/{pid}/clear_refs")
    if not os.access(clear_refs, os.W_OK):
        raise MeasureError(f"{clear_refs} is not writable, so the peak cannot be reset")
    fetch_classloader(server.url, shop, version=WARM_UP_VERSION)
    grown: list[float] = []
    for _ in range(rounds):
        clear_refs.write_text("5")
        before = memory_kib(pid, "VmRSS")
        fetch_classloader(server.url, shop)
        peak = memory_kib(pid, "VmHWM")
        grown.append((peak - before) * 1024)
        if server.worker_pids() != [pid]:
            raise MeasureError("the worker was replaced during the measurement")
    print(f"  worker {pid}, growth: " + ", ".join(f"{value / MIB:.2f} MiB" for value in grown))
    value = median(grown)
    return f"{value / MIB:.2f} MiB", f"{GROWTH_LIMIT / MIB:g} MiB", value / GROWTH_LIMIT


def measure_latest(bench: Bench, world: World, rounds: int) -> None:
    """10: the update check (``latest``) in a team of 1,000 releases and 1,000 licenses vs the
    bare /api/ 404, in requests per second on one server, READ_CLIENTS keep-alive clients."""
    small = bench.content(4096, "delivery-latest.bin")
    shop = delivery_shop(
        bench,
        "Bench latest",
        small,
        on_s3=False,
        releases=DELIVERY_RELEASES,
        licenses=DELIVERY_LICENSES,
    )
    latest = (shop.path("releases/latest"), {}, (200, b'"details":"Release found"'))
    bare = (BARE_PATH, {}, (404, b'"code":"BAD_REQUEST"'))
    with bench.server("latest", s3_endpoint=None, workers=2, threads=4) as server:

        def latest_vs_bare() -> tuple[str, str, float]:
            for path, headers, expected in (latest, bare):
                requests_per_second(server.url, path, headers, expected, READ_WARM_UP)
            results: dict[str, list[float]] = {"latest": [], "bare": []}
            for number in range(rounds):
                order = [("latest", latest), ("bare", bare)]
                for name, (path, headers, expected) in order if number % 2 == 0 else order[::-1]:
                    rate, _ = requests_per_second(
                        server.url, path, headers, expected, READ_REQUESTS
                    )
                    results[name].append(rate)
            for name, label in (("latest", "latest"), ("bare", "bare 404")):
                values = results[name]
                print(
                    f"  {label}: median {median(values):.0f} req/s of {len(values)}: "
                    + ", ".join(f"{value:.0f}" for value in values)
                )
            a, b = median(results["latest"]), median(results["bare"])
            return f"{a:.0f} req/s", f"{b:.0f} req/s", a / b

        bench.run(
            AtLeastRow(
                10,
                f"GET latest (team of {DELIVERY_RELEASES:,} releases and {DELIVERY_LICENSES:,} "
                f"licenses) (A) vs bare /api/ 404 (B), requests per second, {READ_CLIENTS} "
                "keep-alive clients",
                LATEST_TARGET,
            ),
            latest_vs_bare,
        )
    bench.notes.append(
        "8: each classloader request carries a new session key (RSA-OAEP), takes its seats and "
        "records the download; timed from the request to the last byte, the frames decrypted "
        "and compared afterwards. 9: the worker streams from moto's S3 or local files. 10: the "
        "license has seat limits with the device's seats taken, so the seat check runs."
    )


# --- Webhook fairness ---------------------------------------------------------------------------

FLOOD_ENDPOINTS = 20  # the other team's receivers, none of which ever answers
FLOOD_EVENTS = 50  # queued for each of them: 1,000 deliveries
FAIRNESS_TARGET = 2.0
WEBHOOK_WAIT = 60.0  # for one event to arrive, before the row is an error


class ArrivalLog:
    """A webhook receiver on 127.0.0.1 that answers 204 and notes when each webhook-id came."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        log = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with log.changed:
                    log.arrived[self.headers.get("webhook-id", "")] = time.monotonic()
                    log.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, message_id: str) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: message_id in self.arrived, WEBHOOK_WAIT):
                raise MeasureError(f"webhook {message_id} did not arrive in {WEBHOOK_WAIT:g} s")
            return self.arrived[message_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts every connection and never answers: each attempt to it runs to its deadline."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0), backlog=128)
        self.url = f"http://{HOST}:{self.listener.getsockname()[1]}/hooks"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                self.held.append(self.listener.accept()[0])

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


def webhook_team(name: str, url: str, endpoints: int) -> Any:
    from webhooks.services import endpoint_create

    team = World.team_only(name)
    for _ in range(endpoints):
        endpoint_create(team=team, url=url, events=["release.updated"])
    return team


def write_event(team: Any, number: int) -> str:
    """A committed write's event (as a write service emits it); its webhook-id."""
    from django.db import transaction

    from webhooks.events import emit

    with transaction.atomic():
        deliveries = emit(team, "release.updated", {"bench": number})
    return deliveries[0].event.message_id


def event_latencies(team: Any, arrivals: ArrivalLog, rounds: int) -> list[float]:
    """Write to receiver, one event at a time, a random pause before each so that the worker's
    polling phase is sampled rather than fixed."""
    latencies = []
    for number in range(rounds):
        time.sleep(random.uniform(0.2, 1.2))  # noqa: S311 - not for secrets
        written = time.monotonic()
        latencies.append(arrivals.wait_for(write_event(team, number)) - written)
    return latencies


def measure_webhook_fairness(bench: Bench, world: World, rounds: int) -> None:
    """11: team A's event latency (write to receiver) through one ``db_worker`` while team B
    has FLOOD_ENDPOINTS receivers that never answer and FLOOD_EVENTS events queued for each,
    vs the same with team B silent."""
    arrivals, silent = ArrivalLog(), Silent()
    bench.cleanups += [arrivals.close, silent.close]
    team_a = webhook_team("Bench webhooks A", arrivals.url, 1)
    team_b = webhook_team("Bench webhooks B", silent.url, FLOOD_ENDPOINTS)
    env = {**bench.base_env(), **bench.django_env(), "WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS": "true"}
    log = bench.folder / "db-worker.log"
    worker = spawn(
        [sys.executable, "manage.py", "db_worker", "--no-startup-delay"], env=env, log=log
    )
    bench.cleanups.append(lambda: stop(worker))

    def busy_vs_idle() -> tuple[str, str, float]:
        arrivals.wait_for(write_event(team_a, -1))  # the worker is up
        idle = event_latencies(team_a, arrivals, rounds)
        show("idle", idle)
        for number in range(FLOOD_EVENTS):
            write_event(team_b, number)
        deadline = time.monotonic() + WEBHOOK_WAIT
        while len(silent.held) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        if not silent.held:
            raise MeasureError(f"team B's attempts never started:\n{tail(log)}")
        busy = event_latencies(team_a, arrivals, rounds)
        show(f"team B busy ({len(silent.held)} of its attempts left hanging by then)", busy)
        return compared(busy, idle)

    bench.run(
        Row(
            11,
            f"webhook latency of team A while team B has {FLOOD_ENDPOINTS} never-answering "
            f"endpoints and {FLOOD_EVENTS} events queued (A) vs idle (B), one worker",
            FAIRNESS_TARGET,
        ),
        busy_vs_idle,
    )
    stop(worker)
    bench.notes.append(
        "11: each event is written in its own transaction in the benchmark's process (as a "
        "write service emits it) and timed until the receiver has it; one `db_worker` with its "
        "defaults (16 attempts in flight, 4 a team, polling its task queue every second); idle "
        "first, then busy (team B's backlog cannot be undone between rounds). Busy can be "
        "faster: a sweep with attempts in flight looks for due deliveries every 0.25 s."
    )


# --- Main -------------------------------------------------------------------------------------


def on_sigterm(signum: int, frame: Any) -> None:
    # Once: the cleanup that this starts must not be interrupted by a repeated SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> int:
    """``make bench`` measures every row; ``scripts/bench.py 4 8`` only the rows named."""
    only = {int(number) for number in sys.argv[1:]}
    signal.signal(signal.SIGTERM, on_sigterm)
    bench = Bench()
    try:
        print("Setting up: PostgreSQL database, Redis, moto S3 server, TCP proxy ...", flush=True)
        bench.setup()
        assert bench.world is not None
        print(
            f"  database {bench.database}, Redis: {bench.redis_url or 'none'}, "
            f"moto at {bench.moto_url}, proxy at {bench.proxy_url}",
            flush=True,
        )
        for note in bench.notes:
            print(f"  NOTE: {note}", flush=True)
        big = bench.content(BIG, "content-10mib.bin")
        small = bench.content(SMALL, "content-64kib.bin")
        world = bench.world
        measurements: list[tuple[set[int], Callable[[], None]]] = [
            ({1, 2}, lambda: measure_batches(bench, world, big, rounds=5)),
            ({3, 5}, lambda: measure_local(bench, world, big, small, rounds=9)),
            ({4}, lambda: measure_s3(bench, world, big, rounds=9)),
            ({6}, lambda: measure_memory(bench, world, big, rounds=3)),
            ({7}, lambda: measure_reads(bench, world, rounds=5)),
            ({8}, lambda: measure_delivery_throughput(bench, world, big, rounds=9)),
            ({9}, lambda: measure_delivery_memory(bench, world, big, rounds=3)),
            ({10}, lambda: measure_latest(bench, world, rounds=5)),
            ({11}, lambda: measure_webhook_fairness(bench, world, rounds=9)),
        ]
        for numbers, measure in measurements:
            if not only or numbers & only:
                measure()
        report(bench, time.monotonic() - bench.started)
        return 0
    except SetupError as error:
        print(f"\nSETUP FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()


def report(bench: Bench, elapsed: float) -> None:
    rows = sorted(bench.rows, key=lambda row: row.number)
    load = os.getloadavg()
    context = [
        f"{os.cpu_count()} CPUs (load average {load[0]:.1f} at the end); PostgreSQL 127.0.0.1; "
        + (f"Redis {bench.redis_url}" if bench.redis_url else "no Redis")
        + "; gunicorn -c lukittu/gunicorn_conf.py (gthread), 2 workers x 4 threads, 1 x 1 for 6; "
        f"S3 is moto_server. Ratio = A / B, each the median of several runs, A and B "
        f"interleaved. Run time {elapsed:.0f} s.",
        "1 and 2: S3 behind a TCP proxy throttled to 25 MB/s per connection and direction. "
        "3: the floor includes an fsync of the written file, as the service fsyncs the stored "
        "file (and its folder). 5: 10,000 releases in "
        f"{BIG_TEAM_RELEASES // RELEASES_PER_PRODUCT} products, each with a file row (the "
        "objects are not stored) and the team's stored bytes in step. 6: VmHWM after minus "
        "VmRSS before, peak reset with /proc/<pid>/clear_refs.",
        *bench.notes,
        *(f"Error in {row.number}: {row.error}" for row in rows if row.error),
    ]
    print("\n" + table_text(rows))
    print("\n".join(context))
    print("\nAs Markdown:\n")
    print(table_markdown(rows))
    print()
    print("\n\n".join(context))


if __name__ == "__main__":
    sys.exit(main())
