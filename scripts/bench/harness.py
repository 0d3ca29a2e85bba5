"""What is measured, started and stopped: a fresh PostgreSQL database, Redis, moto's S3 server
behind the test TCP proxy, gunicorn with the repository's config file; and a row's run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from scripts.bench.base import (
    GROWTH_LIMIT,
    HOST,
    MIB,
    MIGRATE_TIMEOUT,
    PARALLEL,
    READY_TIMEOUT,
    ROOT,
    STOP_TIMEOUT,
    MeasureError,
    SetupError,
)
from scripts.bench.profile import folder_from_environment, profiled
from scripts.bench.results import Row, median
from scripts.bench.wire import Content, parallel, request, upload_of
from scripts.bench.world import World
from tests.tcp_proxy import TcpProxy

BIN = Path(sys.executable).parent
T = TypeVar("T")
ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/14"
S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
S3_REGION = "us-east-1"
SECRET_KEY = "bench-only-secret-key-" + uuid.uuid4().hex

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


def poll_until(
    answer: Callable[[], T | None], process: subprocess.Popen[bytes], interval: float
) -> T | None:
    """``answer()`` once it is not None, tried every ``interval`` seconds for READY_TIMEOUT;
    None if ``process`` exits first or time runs out."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if (result := answer()) is not None:
            return result
        if process.poll() is not None:
            return None
        time.sleep(interval)
    return None


def listening(port: int) -> bool | None:
    with socket.socket() as probe:
        probe.settimeout(1)
        return True if probe.connect_ex((HOST, port)) == 0 else None


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


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    workers: int
    log: Path

    def worker_pids(self) -> list[int]:
        def started() -> list[int] | None:
            pids = children_of(self.process.pid)
            return pids if len(pids) >= self.workers else None

        pids = poll_until(started, self.process, 0.1)
        if pids is not None:
            return pids
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
        # BENCH_PROFILE (make profile): the servers run under py-spy, its samples kept there.
        self.profile_folder = folder_from_environment()

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
        if not poll_until(partial(listening, port), process, 0.1):
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
        self,
        name: str,
        *,
        s3_endpoint: str | None,
        workers: int,
        threads: int,
        warm: bool = True,
    ) -> Iterator[Server]:
        """gunicorn with the repository's config file, stopped on exit; with ``warm``, every
        thread has served an upload first (``warm_up``)."""
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
            if not poll_until(partial(listening, port), process, 0.1):
                raise SetupError(f"gunicorn ({name}) did not listen:\n{tail(log)}")
            server.worker_pids()
            self.wait_until_serving(server)
            if warm:
                self.warm_up(server)
            with profiled(server, self.profile_folder):
                yield server
        finally:
            stop(process)

    def wait_until_serving(self, server: Server) -> None:
        """Django answers (a 401 for an unauthenticated list is an answer)."""
        path = f"/api/v1/dev/teams/{uuid.uuid4()}/releases"

        def answered() -> bool | None:
            with suppress(MeasureError):
                if request(server.url, "GET", path).status == 401:
                    return True
            return None

        if not poll_until(answered, server.process, 0.2):
            raise SetupError(
                f"gunicorn ({server.name}) does not serve the API:\n{tail(server.log)}"
            )

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


def peak_growth(
    server: Server, action: Callable[[], object], rounds: int
) -> tuple[str, str, float]:
    """How much a one-worker server's peak memory grows while it serves ``action``, the median
    of ``rounds``, against GROWTH_LIMIT."""
    [pid] = server.worker_pids()
    clear_refs = Path(f"/proc/{pid}/clear_refs")
    if not os.access(clear_refs, os.W_OK):
        raise MeasureError(f"{clear_refs} is not writable, so the peak cannot be reset")
    grown: list[float] = []
    for _ in range(rounds):
        clear_refs.write_text("5")
        before = memory_kib(pid, "VmRSS")
        action()
        peak = memory_kib(pid, "VmHWM")
        grown.append((peak - before) * 1024)
        if server.worker_pids() != [pid]:
            raise MeasureError("the worker was replaced during the measurement")
    print(f"  worker {pid}, growth: " + ", ".join(f"{value / MIB:.2f} MiB" for value in grown))
    value = median(grown)
    return f"{value / MIB:.2f} MiB", f"{GROWTH_LIMIT / MIB:g} MiB", value / GROWTH_LIMIT


Measurement = Callable[[Server], tuple[str, str, float]]


def memory_rows(
    bench: Bench, number: int, serving: str, prepare: Callable[[str, str | None], Measurement]
) -> None:
    """Row ``number`` on local files, then on S3: a one-worker, one-thread server's peak memory
    growth while ``serving``, measured by what ``prepare(storage, S3 endpoint)`` returns."""
    for storage, endpoint in (("local files", None), ("S3", bench.moto_url)):
        measurement = prepare(storage, endpoint)
        name = f"{number}-memory-{storage.split()[0].lower()}"
        with bench.server(name, s3_endpoint=endpoint, workers=1, threads=1) as server:
            bench.run(
                Row(
                    number,
                    f"worker peak memory growth {serving}, {storage} (A) vs the 6 MiB limit (B)",
                    1.0,
                    strict=True,
                ),
                partial(measurement, server),
            )
