"""The real service for tests: gunicorn serving the project against the test database.

Use it from a test that has ``transactional_db``, so what the test writes is committed and the
server's own connections can see it (and what the server writes is visible to the test)."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from gunicorn.config import Config

from tests.conftest import free_port, wait_for_port
from tests.process_tests import require_live

READY_TIMEOUT = 30
STOP_TIMEOUT = 20
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Settings the server gets only from ``live_server``, never from the test run's environment.
OWN_SETTINGS = {
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "MEDIA_ROOT",
    "UPLOAD_TEMP_DIR",
}
ACCESS_LINE = re.compile(r"^pid=<?(\d+)>? status=(\d+) (\S+)")


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    workers: int
    media: Path
    log: Path
    access_log: Path

    def worker_pids(self) -> list[int]:
        """The pids of the master's workers, once all of them have started."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            pids = children_of(self.process.pid)
            if len(pids) >= self.workers:
                return pids
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"gunicorn did not start {self.workers} worker(s):\n{self.log_text()}")

    def every_worker_serving(self) -> list[int]:
        """The workers' pids, once each has answered a request: a worker still loading the app
        takes no connection, so a burst sent before would all go to the others. Probes
        ``/healthz`` four at a time until the access log names every worker."""
        pids = self.worker_pids()
        deadline = time.monotonic() + READY_TIMEOUT
        while {pid for pid, _ in self.served_by()} != set(pids):
            assert time.monotonic() < deadline, f"not every worker answered: {self.served_by()}"
            probes = [threading.Thread(target=self._probe) for _ in range(4)]
            for probe in probes:
                probe.start()
            for probe in probes:
                probe.join()
        return pids

    def _probe(self) -> None:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{self.url}/healthz", timeout=READY_TIMEOUT).read()

    def served_by(self, method: str | None = None) -> list[tuple[int, int]]:
        """``(worker pid, status)`` of every request served (of ``method``'s only, if given).
        Complete once the server stopped (a worker logs a request just after sending its
        response)."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        matches = [match for line in lines if (match := ACCESS_LINE.match(line))]
        return [
            (int(match[1]), int(match[2]))
            for match in matches
            if method is None or match[3] == method
        ]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


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


def database_url() -> str:
    """The test database as a DATABASE_URL for the server process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


def server_env(media: Path, extra_env: dict[str, str] | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in OWN_SETTINGS and not name.startswith("AWS_")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="lukittu.settings",
        SECRET_KEY="live-server-test-secret",
        TEAM_KEYS_SECRET="tests-only-team-keys-secret",
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(media),
        # Beside MEDIA_ROOT, on the same file system, as in a deployment.
        UPLOAD_TEMP_DIR=str(media.parent / "uploads"),
        LOG_LEVEL="WARNING",
        # The tests talk plain HTTP to the server.
        SECURE_SSL_REDIRECT="false",
        # The admin's and Swagger UI's files straight from the apps, without collectstatic.
        STATIC_FROM_FINDERS="true",
    )
    # Multiprocess metrics only when a test asks for them (extra_env), in a folder of its own.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    env.update(extra_env or {})
    return env


@contextmanager
def live_server(
    directory: Path,
    *,
    workers: int = 1,
    threads: int = 1,
    extra_env: dict[str, str] | None = None,
    config_file: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[LiveServer]:
    """Gunicorn with ``workers`` processes of ``threads`` threads each on a free port, against
    the test database, with local files under ``directory/media`` (unless ``extra_env`` sets
    S3), Redis when ``REDIS_URL`` is set, and ``extra_env`` on top. Always stopped on exit.
    With ``config_file``, gunicorn reads it first; the options above still take precedence.
    ``extra_args`` go to gunicorn's command line last (``--timeout 2``, say)."""
    require_live("gunicorn")
    port = free_port()
    media = directory / "media"
    media.mkdir(parents=True, exist_ok=True)
    log = directory / "gunicorn.log"
    access_log = directory / "gunicorn-access.log"
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "lukittu.wsgi",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "pid=%(p)s status=%(s)s %(m)s %(U)s",
    ]
    if config_file is not None:
        command += ["--config", str(config_file)]
    command += list(extra_args)
    if "control_socket_disable" in Config().settings:
        # Newer gunicorn opens a control socket at one fixed path under $HOME by default;
        # servers started by parallel test runs would fight over it.
        command.append("--no-control-socket")
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=server_env(media, extra_env),
            stdout=output,
            stderr=subprocess.STDOUT,
            # Its own process group, so a server that will not stop is killed with its workers.
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, workers, media, log, access_log)
    try:
        if not wait_for_port(port, process, seconds=READY_TIMEOUT):
            pytest.fail(
                f"gunicorn did not listen on {port} within {READY_TIMEOUT}s "
                f"(exit code {process.poll()}):\n{server.log_text()}"
            )
        yield server
    finally:
        # A graceful stop: workers finish what they serve and close their database connections
        # before the test database is flushed or dropped.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
