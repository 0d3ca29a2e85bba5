"""Every shell block of README.md and docs/ runs as written (tests/doc_blocks.py says which).

One server as ``make run`` starts it (``runserver`` and the webhook worker, ``DEBUG=true``, a
fresh SQLite database and media folder in a temporary directory). Each page gets a demo team of
its own from ``seed_demo``, whose printed ``export`` line starts the page's shell, and runs its
blocks in order in that one shell, from a folder that looks like the repository (its files
linked, its own ``var/``). A block fails on a non-zero exit, on a request answered 4xx or 5xx
(unless the block's documented answer is that error), and when its documented answer's shape
is not the real one's."""

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for_port
from tests.doc_blocks import ROOT, Block, check_block, doc_pages, read_page, sections

PAGE_TIMEOUT = 300
# Marks where each block's output begins and ends, on stdout and stderr, on a line of its own
# whether or not what came before ended with a newline.
MARK_FUNCTION = r"""doctest_mark() { printf '\n@@doctest %s %s\n' "$1" "$2" | tee /dev/stderr; }"""
# Records each request's status on stderr; what the command prints is unchanged.
CURL_SHIM = "curl() { command curl -w '%{stderr}@@doctest status %{http_code}\\n' \"$@\"; }"
PAGES = [read_page(path) for path in doc_pages()]


@dataclass
class DocServer:
    base: str
    root: Path
    env: dict[str, str]


def _environment(root: Path) -> dict[str, str]:
    """``make run``'s settings, and nothing of the test run's own (its database, Redis, ...)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    return {
        **env,
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "MEDIA_ROOT": str(root / "media"),
        "UPLOAD_TEMP_DIR": str(root / "uploads"),
        "PYTHONUNBUFFERED": "1",
    }


def _manage(env: dict[str, str], *args: str, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, **kwargs)


@pytest.fixture(scope="module")
def doc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocServer]:
    root = tmp_path_factory.mktemp("docs-server")
    env = _environment(root)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    log = (root / "server.log").open("w")
    processes = [
        _manage(env, "runserver", "--noreload", f"127.0.0.1:{port}", stdout=log, stderr=log),
        _manage(env, "db_worker", "--no-reload", stdout=log, stderr=log),
    ]
    try:
        assert wait_for_port(port, processes[0]), (root / "server.log").read_text()
        yield DocServer(f"http://127.0.0.1:{port}", root, env)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def _workdir(server: DocServer, name: str) -> Path:
    """A folder like the repository's: its files linked, a ``var/`` of its own."""
    workdir = server.root / name
    workdir.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"var", ".env", "site"}:
            (workdir / entry.name).symlink_to(entry)
    (workdir / "var").mkdir()
    return workdir


def _export_line(server: DocServer, workdir: Path) -> str:
    """``make run``'s summary for a new demo team, and the ``export`` line it ends with."""
    demo = str(workdir / "var" / "demo.json")
    seed = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--base-url", server.base, "--reuse", demo],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
    )
    assert seed.returncode == 0, seed.stderr
    lines = [line.strip() for line in seed.stdout.splitlines()]
    exports = [line for line in lines if line.startswith("export BASE=")]
    assert exports, f"seed_demo printed no export line:\n{seed.stdout}"
    assert (workdir / "var" / "demo-app.jar").exists()
    return exports[-1]


def _script(export: str, blocks: list[Block]) -> str:
    parts = ["set -eo pipefail", MARK_FUNCTION, CURL_SHIM, export]
    for number, block in enumerate(blocks):
        parts += [
            f"doctest_mark begin {number}",
            block.text.rstrip("\n"),
            f"doctest_mark end {number}",
        ]
    return "\n".join(parts) + "\n"


def _run_page(server: DocServer, page_path: str, blocks: list[Block]) -> list[str]:
    workdir = _workdir(server, page_path.replace("/", "_").removesuffix(".md"))
    script = workdir / "doctest.sh"
    script.write_text(_script(_export_line(server, workdir), blocks))
    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=workdir,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        return [f"{page_path}: the blocks did not finish within {PAGE_TIMEOUT} s\n{stderr[-3000:]}"]
    finally:
        # What a block left running in the background (a webhook receiver, say).
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    outs, errs = sections(stdout), sections(stderr)
    problems = []
    for number, block in enumerate(blocks):
        if number not in outs:
            return [*problems, f"{block.where()}: never started\n{stderr[-3000:]}"]
        finished = f"\n@@doctest end {number}\n" in stdout
        found = check_block(block, outs[number], errs.get(number, ""))
        if not finished:
            found.insert(0, f"exited with status {process.returncode}")
        if found:
            problems.append(
                f"{block.where()}: " + "; ".join(found) + f"\n--- block:\n{block.text}"
                f"--- stdout:\n{outs[number][-3000:]}\n--- stderr:\n{errs.get(number, '')[-3000:]}"
            )
        if not finished:
            break
    shutil.rmtree(workdir / "var", ignore_errors=True)
    return problems


@pytest.mark.parametrize(
    "page", [page for page in PAGES if any(b.runs for b in page.blocks)], ids=lambda p: p.path
)
def test_every_block_of_the_page_runs(doc_server: DocServer, page) -> None:
    blocks = [block for block in page.blocks if block.runs]
    problems = _run_page(doc_server, page.path, blocks)
    assert not problems, "\n\n".join(problems)
