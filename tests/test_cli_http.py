"""lukittu-release against a scripted HTTP server on 127.0.0.1: retries (5xx, 429 with
Retry-After, timeouts, dropped connections, refused connections), the one Idempotency-Key per
write, what is never retried, the wait budget, and the publish and download flows' decisions
(checksum checks, latest only after the check, recovering from a lost create)."""

import hashlib
import io
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lukittu_release.cli import main

TEAM = str(uuid.uuid4())
PRODUCT = str(uuid.uuid4())
RELEASE = str(uuid.uuid4())
KEY = "lk_test_do_not_print_me_0123456789"
LICENSE_KEY = "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY"
BUILD = b"PK\x03\x04 a build " * 5000
BUILD_SHA = hashlib.sha256(BUILD).hexdigest()
RELEASES = f"/api/v1/dev/teams/{TEAM}/releases"
CLIENT = f"/api/v1/client/teams/{TEAM}/releases"


# --- The scripted server --------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Respond:
    status: int
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Drop:
    """Read the request, then close the connection without a word."""


@dataclass
class Hang:
    seconds: float


@dataclass
class CutShort:
    """Announce ``length`` bytes, send ``body``, then close."""

    body: bytes
    length: int
    headers: dict[str, str] = field(default_factory=dict)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        seen = Seen(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {name.lower(): value for name, value in self.headers.items()},
            body,
        )
        self.server.seen.append(seen)
        action = self.server.handler(seen)
        if isinstance(action, Drop):
            self.close_connection = True
            return
        if isinstance(action, Hang):
            time.sleep(action.seconds)
            self.close_connection = True
            return
        if isinstance(action, CutShort):
            self.send_response(200)
            for name, value in action.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(action.length))
            self.end_headers()
            self.wfile.write(action.body)
            self.close_connection = True
            return
        payload = action.body
        headers = dict(action.headers)
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(action.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: Callable[[Seen], Any]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.handler = handler
        self.seen: list[Seen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def script(*actions: Any) -> Callable[[Seen], Any]:
    """Answers requests with ``actions`` in turn; past the end, a 418 no retry hides."""
    queue = deque(actions)
    return lambda seen: queue.popleft() if queue else Respond(418, error(418, "script over"))


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers = []

    def start(handler: Callable[[Seen], Any]) -> Server:
        server = Server(handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- Envelopes and helpers ------------------------------------------------------------------


def envelope(data: Any, details: str = "OK") -> dict[str, Any]:
    timestamp = "2026-01-02T03:04:05.678Z"
    return {"data": data, "result": {"timestamp": timestamp, "valid": True, "details": details}}


def error(status: int, details: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    result = {"timestamp": "2026-01-02T03:04:05.678Z", "valid": False, "details": details}
    return {"data": None, "result": {**result, "code": code}}


def ok(data: Any, status: int = 200, **headers: str) -> Respond:
    return Respond(status, envelope(data), headers)


def fail(status: int, details: str, code: str = "BAD_REQUEST", **headers: str) -> Respond:
    return Respond(status, error(status, details, code), {**headers, "X-Request-ID": "req-42"})


def release(
    version: str = "1.0.0", sha256: str = BUILD_SHA, *, latest: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "id": RELEASE,
        "version": version,
        "status": "PUBLISHED",
        "latest": latest,
        "productId": PRODUCT,
        "branchId": None,
        "teamId": TEAM,
        "createdAt": "2026-01-02T03:04:05.678Z",
        "updatedAt": "2026-01-02T03:04:05.678Z",
        "metadata": [],
        "product": {"id": PRODUCT, "name": "App"},
        "branch": None,
        "file": {"name": "app.jar", "size": len(BUILD), "sha256": sha256},
        "licenseIds": [],
        **extra,
    }


def page(*releases: dict[str, Any], more: bool = False) -> Respond:
    return ok({"releases": list(releases), "hasNextPage": more, "totalResults": len(releases)})


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass
class Run:
    code: int
    out: str
    err: str
    sleeps: list[float]

    def json(self) -> Any:
        return json.loads(self.out)


def run(
    server_url: str,
    *argv: str,
    env: dict[str, str] | None = None,
    rand: float = 0.5,
    real_sleep: bool = False,
    stderr: io.StringIO | None = None,
) -> Run:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if real_sleep:
            time.sleep(seconds)

    environ = {
        "LUKITTU_API_URL": server_url,
        "LUKITTU_TEAM_ID": TEAM,
        "LUKITTU_API_KEY": KEY,
        **(env or {}),
    }
    out, err = io.StringIO(), stderr or io.StringIO()
    code = main(list(argv), environ=environ, stdout=out, stderr=err, sleep=sleep, rand=lambda: rand)
    run = Run(code, out.getvalue(), err.getvalue(), sleeps)
    assert KEY not in run.out + run.err
    assert LICENSE_KEY not in run.out + run.err
    return run


def data_part(body: bytes) -> dict[str, Any]:
    match = re.search(rb'name="data"\r\n\r\n(.*?)\r\n--', body, re.S)
    assert match, body[:300]
    return json.loads(match.group(1))


def file_part(body: bytes) -> bytes | None:
    match = re.search(
        rb'name="file"; filename="[^"]*"\r\n[^\r]*\r\n\r\n(.*)\r\n--[^\r]*--\r\n$', body, re.S
    )
    return match.group(1) if match else None


@pytest.fixture
def build(tmp_path: Path) -> Path:
    path = tmp_path / "app.jar"
    path.write_bytes(BUILD)
    return path


def idempotency_keys(seen: list[Seen]) -> list[str | None]:
    return [request.headers.get("idempotency-key") for request in seen]


# --- Retries --------------------------------------------------------------------------------


def test_a_503_is_retried_after_a_backoff_with_the_same_idempotency_key(serve):
    server = serve(script(fail(503, "Storage unavailable", "INTERNAL_SERVER_ERROR"), ok(release())))
    result = run(server.url, "--json", "delete", RELEASE)
    assert result.code == 0, result.err
    assert result.json() == release()
    assert [request.method for request in server.seen] == ["DELETE", "DELETE"]
    keys = idempotency_keys(server.seen)
    assert keys[0] == keys[1]
    assert str(uuid.UUID(keys[0])) == keys[0]
    # Backoff: the first step is 1 s, jittered into [0.5, 1]; rand 0.5 gives 0.75.
    assert result.sleeps == [0.75]
    assert "HTTP 503 (Storage unavailable); retrying in 0.8 s (attempt 2 of 5)" in result.err


def test_each_invocation_has_its_own_idempotency_key(serve):
    server = serve(script(ok(release()), ok(release())))
    assert run(server.url, "delete", RELEASE).code == 0
    assert run(server.url, "delete", RELEASE).code == 0
    first, second = idempotency_keys(server.seen)
    assert first and second and first != second


def test_a_429_waits_as_long_as_retry_after_says(serve):
    server = serve(
        script(fail(429, "Too many requests", "RATE_LIMIT", **{"Retry-After": "3"}), ok(release()))
    )
    result = run(server.url, "--json", "get", RELEASE, rand=1.0)
    assert result.code == 0, result.err
    assert len(server.seen) == 2
    assert 3.0 <= result.sleeps[0] <= 3.5
    # A read sends no Idempotency-Key.
    assert idempotency_keys(server.seen) == [None, None]


def test_a_429_really_waits_before_the_next_attempt(serve):
    times: list[float] = []

    def handler(seen: Seen) -> Respond:
        times.append(time.monotonic())
        if len(times) == 1:
            return fail(429, "Too many requests", "RATE_LIMIT", **{"Retry-After": "1"})
        return ok(release())

    server = serve(handler)
    result = run(server.url, "delete", RELEASE, real_sleep=True)
    assert result.code == 0, result.err
    assert times[1] - times[0] >= 1.0
    assert len(set(idempotency_keys(server.seen))) == 1


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (400, "BAD_REQUEST", 1),
        (401, "UNAUTHORIZED", 5),
        (403, "FORBIDDEN", 5),
        (404, "RELEASE_NOT_FOUND", 3),
        (409, "BAD_REQUEST", 4),
        (412, "BAD_REQUEST", 4),
        (413, "BAD_REQUEST", 1),
        (422, "BAD_REQUEST", 4),
    ],
)
def test_other_4xx_are_never_retried_and_give_their_exit_code(serve, status, code, exit_code):
    server = serve(script(fail(status, "Nope", code), ok(release())))
    result = run(server.url, "--json", "delete", RELEASE)
    assert result.code == exit_code
    assert len(server.seen) == 1
    assert result.sleeps == []
    assert result.json() == {
        "error": {
            "kind": "api",
            "exitCode": exit_code,
            "message": "Nope",
            "status": status,
            "code": code,
            "requestId": "req-42",
        }
    }
    assert f"Nope (HTTP {status} {code}, request req-42)" in result.err


def test_a_dropped_connection_is_retried_with_the_same_idempotency_key(serve):
    server = serve(script(Drop(), ok(release())))
    result = run(server.url, "delete", RELEASE)
    assert result.code == 0, result.err
    assert len(server.seen) == 2  # the server had the first request: only its answer was lost
    first, second = idempotency_keys(server.seen)
    assert first == second and first is not None
    assert "RemoteProtocolError" in result.err


def test_a_timeout_is_retried(serve):
    server = serve(script(Hang(3), ok(release())))
    result = run(server.url, "--timeout", "0.5", "get", RELEASE)
    assert result.code == 0, result.err
    assert len(server.seen) == 2
    assert "ReadTimeout" in result.err


def test_a_refused_connection_uses_every_attempt_then_exits_7():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    result = run(f"http://127.0.0.1:{port}", "--json", "--max-attempts", "3", "get", RELEASE)
    assert result.code == 7
    assert len(result.sleeps) == 2
    failure = result.json()["error"]
    assert (failure["kind"], failure["exitCode"], failure["attempts"]) == (
        "retries_exhausted",
        7,
        3,
    )
    assert "ConnectError" in failure["message"]


def test_5xx_until_the_attempts_run_out_exits_7(serve):
    server = serve(lambda seen: fail(502, "Bad gateway", "INTERNAL_SERVER_ERROR"))
    result = run(server.url, "--json", "--max-attempts", "3", "delete", RELEASE)
    assert result.code == 7
    assert len(server.seen) == 3
    assert len(set(idempotency_keys(server.seen))) == 1
    failure = result.json()["error"]
    assert failure["status"] == 502 and failure["attempts"] == 3
    assert "gave up after 3 attempt(s)" in failure["message"]


def test_a_retry_after_past_the_wait_budget_gives_up_at_once(serve):
    server = serve(script(fail(429, "Too many requests", "RATE_LIMIT", **{"Retry-After": "30"})))
    result = run(server.url, "--json", "--max-retry-wait", "10", "get", RELEASE)
    assert result.code == 7
    assert len(server.seen) == 1
    assert result.sleeps == []
    assert "asked to wait 30 s, more than the 10 s left" in result.json()["error"]["message"]


def test_the_total_wait_is_bounded(serve):
    server = serve(lambda seen: fail(503, "Storage unavailable", "INTERNAL_SERVER_ERROR"))
    result = run(
        server.url, "--max-attempts", "20", "--max-retry-wait", "5", "get", RELEASE, rand=1.0
    )
    assert result.code == 7
    # Waits of 1, 2, then what is left of the 5 s (2), then none: 4 attempts, not 20.
    assert result.sleeps == [1.0, 2.0, 2.0]
    assert len(server.seen) == 4
    assert "the retry wait limit is used up" in result.err


def test_a_409_saying_the_first_attempt_is_still_running_is_waited_for(serve, build):
    """The server's answer to a retry that overtook its first attempt: 409 with Retry-After.
    Waited for like a 429; the next attempt gets the first one's answer, replayed."""
    running = fail(
        409,
        "A request with this Idempotency-Key is still being processed",
        **{"Retry-After": "1"},
    )
    replayed = ok(release(), 201, **{"Idempotent-Replayed": "true"})
    server = serve(script(page(), Drop(), running, replayed))
    result = run(server.url, "publish", "--product", PRODUCT, "--version", "1.0.0", str(build))
    assert result.code == 0, result.err
    assert [request.method for request in server.seen] == ["GET", "POST", "POST", "POST"]
    assert len(set(idempotency_keys(server.seen[1:]))) == 1
    assert result.sleeps[1] >= 1.0
    assert "the server replayed its answer" in result.err


def test_a_409_with_retry_after_is_not_retried_without_an_idempotency_key(serve):
    server = serve(script(fail(409, "Busy", **{"Retry-After": "1"}), ok(release())))
    result = run(server.url, "get", RELEASE)
    assert result.code == 4
    assert len(server.seen) == 1


def test_no_wait_allowed_means_no_retry(serve):
    server = serve(
        lambda seen: fail(429, "Too many requests", "RATE_LIMIT", **{"Retry-After": "0"})
    )
    result = run(server.url, "--max-retry-wait", "0", "delete", RELEASE)
    assert result.code == 7
    assert len(server.seen) == 1
    assert result.sleeps == []


def test_a_redirect_is_a_configuration_error_not_followed(serve):
    server = serve(script(Respond(301, b"", {"Location": "https://elsewhere.example/api"})))
    result = run(server.url, "delete", RELEASE)
    assert result.code == 2
    assert len(server.seen) == 1
    assert "redirected (HTTP 301)" in result.err


def test_an_answer_that_is_not_the_envelope_is_an_error(serve):
    server = serve(script(Respond(200, b"<html>hello</html>", {"Content-Type": "text/html"})))
    result = run(server.url, "get", RELEASE)
    assert result.code == 1
    assert "not the API's JSON envelope" in result.err


# --- publish --------------------------------------------------------------------------------


def test_an_upload_whose_answer_is_lost_is_sent_again_in_full(serve, build):
    server = serve(script(page(), Drop(), ok(release(), 201)))
    result = run(
        server.url, "--json", "publish", "--product", PRODUCT, "--version", "1.0.0", str(build)
    )
    assert result.code == 0, result.err
    assert [request.method for request in server.seen] == ["GET", "POST", "POST"]
    first, second = server.seen[1], server.seen[2]
    assert first.body == second.body
    assert file_part(first.body) == BUILD
    assert int(first.headers["content-length"]) == len(first.body)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["authorization"] == f"Bearer {KEY}"


def test_publish_looks_the_version_up_page_by_page_with_exact_matches(serve, build):
    near_misses = [
        release("1.0.0-beta", **{"id": str(uuid.uuid4())}),
        release("1.0.0", **{"id": str(uuid.uuid4()), "branchId": str(uuid.uuid4())}),
    ]
    server = serve(script(page(*near_misses, more=True), page(release()), ok(release())))
    result = run(server.url, "publish", "--product", PRODUCT, "--version", "1.0.0", str(build))
    assert result.code == 0, result.err
    listing = server.seen[:2]
    assert [request.query["page"] for request in listing] == [["1"], ["2"]]
    for request in listing:
        assert request.query["productId"] == [PRODUCT]
        assert request.query["search"] == ["1.0.0"]
    update = server.seen[2]
    assert (update.method, update.path) == ("PUT", f"{RELEASES}/{RELEASE}")
    assert data_part(update.body) == {
        "version": "1.0.0",
        "productId": PRODUCT,
        "branchId": None,
        "status": "PUBLISHED",
        "setAsLatest": False,
        "metadata": [],
        "licenseIds": [],
        "keepExistingFile": True,
    }
    assert result.out.startswith(f"updated release 1.0.0 ({RELEASE}) on the main line")


def test_latest_is_set_by_a_second_update_only_after_the_check(serve, build):
    server = serve(script(page(), ok(release(), 201), ok(release(latest=True))))
    result = run(
        server.url,
        "--json",
        "publish",
        *("--product", PRODUCT, "--version", "1.0.0", "--latest"),
        *("--metadata", "channel=stable", str(build)),
    )
    assert result.code == 0, result.err
    assert result.json()["latest"] is True
    create, mark = server.seen[1], server.seen[2]
    assert (create.method, mark.method) == ("POST", "PUT")
    assert data_part(create.body)["setAsLatest"] is False
    assert data_part(create.body)["metadata"] == [{"key": "channel", "value": "stable"}]
    assert file_part(create.body) == BUILD
    assert data_part(mark.body) == {
        **data_part(create.body),
        "setAsLatest": True,
        "keepExistingFile": True,
    }
    assert file_part(mark.body) is None
    assert create.headers["idempotency-key"] != mark.headers["idempotency-key"]


def test_a_checksum_mismatch_exits_6_and_never_sets_latest(serve, build):
    wrong = hashlib.sha256(b"something else").hexdigest()
    server = serve(script(page(), ok(release(sha256=wrong), 201), ok(release(latest=True))))
    result = run(
        server.url,
        "--json",
        "publish",
        "--product",
        PRODUCT,
        "--version",
        "1.0.0",
        "--latest",
        str(build),
    )
    assert result.code == 6
    assert [request.method for request in server.seen] == ["GET", "POST"]
    failure = result.json()["error"]
    assert failure["kind"] == "checksum_mismatch"
    assert (failure["expected"], failure["actual"], failure["releaseId"]) == (
        BUILD_SHA,
        wrong,
        RELEASE,
    )


def test_a_create_that_finds_the_version_taken_updates_it_instead(serve, build):
    taken = fail(409, "A release with this version already exists for this product and branch")
    server = serve(script(page(), taken, page(release()), ok(release())))
    result = run(server.url, "publish", "--product", PRODUCT, "--version", "1.0.0", str(build))
    assert result.code == 0, result.err
    assert [request.method for request in server.seen] == ["GET", "POST", "GET", "PUT"]
    assert "exists already" in result.err
    assert file_part(server.seen[3].body) == BUILD


def test_an_existing_latest_release_stays_latest_while_its_file_is_replaced(serve, build):
    server = serve(script(page(release(latest=True)), ok(release(latest=True))))
    result = run(server.url, "publish", "--product", PRODUCT, "--version", "1.0.0", str(build))
    assert result.code == 0, result.err
    assert data_part(server.seen[1].body)["setAsLatest"] is True


def test_publish_with_a_branch_finds_it_by_name(serve, build):
    branch_id = str(uuid.uuid4())
    branches = f"/api/v1/dev/teams/{TEAM}/products/{PRODUCT}/branches"
    branch = {"id": branch_id, "name": "beta", "productId": PRODUCT}
    others = [{**branch, "id": str(uuid.uuid4()), "name": name} for name in ("Beta", "beta2")]
    server = serve(
        script(
            ok({"branches": others, "hasNextPage": True, "totalResults": 3}),
            ok({"branches": [branch], "hasNextPage": False, "totalResults": 3}),
            page(release(branchId=None), release(branchId=branch_id, id=str(uuid.uuid4()))),
            ok(release(branchId=branch_id)),
        )
    )
    result = run(
        server.url,
        "publish",
        "--product",
        PRODUCT,
        "--branch",
        "beta",
        "--version",
        "1.0.0",
        str(build),
    )
    assert result.code == 0, result.err
    assert [(request.method, request.path) for request in server.seen[:2]] == [
        ("GET", branches)
    ] * 2
    assert data_part(server.seen[3].body)["branchId"] == branch_id
    assert server.seen[3].method == "PUT"


def test_a_missing_branch_is_created_only_when_asked(serve, build):
    empty = ok({"branches": [], "hasNextPage": False, "totalResults": 0})
    server = serve(script(empty))
    result = run(
        server.url,
        "publish",
        "--product",
        PRODUCT,
        "--branch",
        "beta",
        "--version",
        "1.0.0",
        str(build),
    )
    assert result.code == 3
    assert "--create-branch" in result.err
    assert len(server.seen) == 1

    branch = {"id": str(uuid.uuid4()), "name": "beta", "productId": PRODUCT}
    server = serve(
        script(empty, Drop(), ok(branch, 201), page(), ok(release(branchId=branch["id"]), 201))
    )
    result = run(
        server.url,
        *("publish", "--product", PRODUCT, "--branch", "beta", "--create-branch"),
        *("--version", "1.0.0", str(build)),
    )
    assert result.code == 0, result.err
    create = server.seen[1:3]
    assert [request.method for request in create] == ["POST", "POST"]
    assert json.loads(create[0].body) == {"name": "beta"}
    assert create[0].headers["idempotency-key"] == create[1].headers["idempotency-key"]
    assert data_part(server.seen[4].body)["branchId"] == branch["id"]


def test_a_missing_file_is_a_usage_error(serve, tmp_path):
    server = serve(script())
    result = run(
        server.url,
        "publish",
        "--product",
        PRODUCT,
        "--version",
        "1.0.0",
        str(tmp_path / "none.jar"),
    )
    assert result.code == 2
    assert server.seen == []


def test_the_upload_draws_a_bar_only_on_a_terminal(serve, build):
    server = serve(script(page(), ok(release(), 201), page(), ok(release(), 201)))
    terminal = Terminal()
    result = run(
        server.url,
        "publish",
        "--product",
        PRODUCT,
        "--version",
        "1.0.0",
        str(build),
        stderr=terminal,
    )
    assert result.code == 0
    assert "\ruploading app.jar [" in result.err and "100%" in result.err
    plain = run(server.url, "publish", "--product", PRODUCT, "--version", "1.0.0", str(build))
    assert plain.code == 0
    assert "\r" not in plain.err and "uploading" not in plain.err


# --- delete ---------------------------------------------------------------------------------


def test_a_delete_whose_answer_was_lost_and_then_404s_succeeded(serve):
    server = serve(script(Drop(), fail(404, "Release not found", "RELEASE_NOT_FOUND")))
    result = run(server.url, "--json", "delete", RELEASE)
    assert result.code == 0, result.err
    assert result.json() == {"id": RELEASE, "deleted": True, "alreadyDeleted": True}


# --- download -------------------------------------------------------------------------------


def download_args(*extra: str) -> list[str]:
    return [
        "--json",
        "download",
        "--license",
        LICENSE_KEY,
        "--product",
        PRODUCT,
        "--hwid",
        "machine-0001",
        *extra,
    ]


def storage_handler(content: bytes, latest_sha: str) -> Callable[[Seen], Any]:
    """The service redirects to a presigned URL with no checksum header; ``latest`` says
    which SHA-256 to expect."""

    def handle(seen: Seen) -> Any:
        if seen.path == f"{CLIENT}/download":
            return Respond(302, b"", {"Location": "/bucket/object.jar?X-Amz-Signature=abc"})
        if seen.path == "/bucket/object.jar":
            return Respond(200, content, {"Content-Disposition": 'attachment; filename="app.jar"'})
        if seen.path == f"{CLIENT}/latest":
            return ok({"version": "1.0.0", "file": {"sha256": latest_sha}})
        return Respond(404, b"")

    return handle


def test_a_redirected_download_is_checked_against_latest(serve, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = serve(storage_handler(BUILD, BUILD_SHA))
    result = run(server.url, *download_args())
    assert result.code == 0, result.err
    assert (tmp_path / "app.jar").read_bytes() == BUILD
    assert result.json() == {
        "path": "app.jar",
        "size": len(BUILD),
        "sha256": BUILD_SHA,
        "version": "1.0.0",
        "checksumSource": "releases/latest",
        "redirected": True,
    }
    assert [request.path for request in server.seen] == [
        f"{CLIENT}/download",
        "/bucket/object.jar",
        f"{CLIENT}/latest",
    ]
    for request in (server.seen[0], server.seen[2]):
        assert request.query == {
            "licenseKey": [LICENSE_KEY],
            "productId": [PRODUCT],
            "hardwareIdentifier": ["machine-0001"],
        }
    # The Client API takes no API key, even with one in the environment.
    assert all("authorization" not in request.headers for request in server.seen)


def test_a_redirected_download_that_does_not_match_latest_is_not_kept(serve, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = serve(storage_handler(BUILD + b"tampered", BUILD_SHA))
    result = run(server.url, *download_args())
    assert result.code == 6
    assert result.json()["error"]["kind"] == "checksum_mismatch"
    assert list(tmp_path.iterdir()) == []


def test_a_streamed_download_is_checked_against_its_header(serve, tmp_path):
    headers = {"X-Checksum-SHA256": hashlib.sha256(b"other").hexdigest(), "X-Version": "2.0.0"}
    server = serve(script(Respond(200, BUILD, headers)))
    result = run(server.url, *download_args("-o", str(tmp_path / "out.jar")))
    assert result.code == 6
    assert list(tmp_path.iterdir()) == []
    good = {"X-Checksum-SHA256": BUILD_SHA, "X-Version": "2.0.0"}
    server = serve(script(Respond(200, BUILD, good)))
    result = run(server.url, *download_args("-o", str(tmp_path / "out.jar")))
    assert result.code == 0, result.err
    assert (tmp_path / "out.jar").read_bytes() == BUILD
    assert result.json()["checksumSource"] == "X-Checksum-SHA256"
    assert result.json()["version"] == "2.0.0"
    assert len(server.seen) == 1  # no need to ask latest


def test_a_download_cut_short_is_retried_from_the_start(serve, tmp_path):
    headers = {
        "X-Checksum-SHA256": BUILD_SHA,
        "Content-Disposition": 'attachment; filename="app.jar"',
    }
    server = serve(
        script(CutShort(BUILD[:1000], len(BUILD), headers), Respond(200, BUILD, headers))
    )
    result = run(server.url, *download_args("-o", str(tmp_path)))
    assert result.code == 0, result.err
    assert len(server.seen) == 2
    assert (tmp_path / "app.jar").read_bytes() == BUILD
    assert [path.name for path in tmp_path.iterdir()] == ["app.jar"]


def test_a_refused_download_gives_the_services_error_and_hides_the_license_key(serve, tmp_path):
    server = serve(script(fail(403, "License suspended", "LICENSE_SUSPENDED")))
    result = run(server.url, *download_args("-o", str(tmp_path / "x.jar")))
    assert result.code == 5
    assert result.json()["error"]["code"] == "LICENSE_SUSPENDED"
    assert list(tmp_path.iterdir()) == []
