"""Speaking HTTP to the servers: one request, a prepared upload, a batch of them sent at once,
and keep-alive clients counting requests per second."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scripts.bench.base import (
    CLIENT_BLOCK,
    HOST,
    MIB,
    READY_TIMEOUT,
    REQUEST_TIMEOUT,
    MeasureError,
)

READ_CLIENTS = 8  # keep-alive client threads, as many as the server's 2 workers x 4 threads
READ_REQUESTS = 2000  # per path and round; a fixed count, so both paths see the same recycling
READ_WARM_UP = 200


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


class KeepAliveClient:
    """One client thread's HTTP/1.1 connection, reused from request to request. A reused
    connection that the server closed meanwhile (a recycled worker, or the keep-alive timeout)
    is reopened and the request sent again (every measured request may be repeated: a GET, or
    an update that sets the same values); a fresh connection failing is an error."""

    def __init__(self, base: str) -> None:
        address = urlsplit(base)
        self.host = address.hostname or HOST
        self.port = address.port
        self.connection: http.client.HTTPConnection | None = None
        self.opened = 0

    def get(self, path: str, headers: dict[str, str]) -> Reply:
        return self.send(Ask("GET", path, headers, (200, b"")))

    def send(self, ask: Ask) -> Reply:
        while True:
            fresh = self.connection is None
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT
                )
                self.opened += 1
            try:
                self.connection.request(ask.method, ask.path, body=ask.body, headers=ask.headers)
                response = self.connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if fresh:
                    raise MeasureError(f"{ask.method} {ask.path}: {error!r}") from error
                continue
            if response.will_close:
                self.close()
            return Reply(response.status, body)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass(frozen=True)
class Ask:
    """One request a keep-alive client repeats, and what its answer must be: the status and a
    piece of the body."""

    method: str
    path: str
    headers: dict[str, str]
    expected: tuple[int, bytes]
    body: bytes | None = None


def requests_per_second(base: str, asks: list[Ask], total: int) -> tuple[float, int]:
    """``total`` requests shared by READ_CLIENTS keep-alive threads, client ``n`` repeating
    ``asks[n % len(asks)]``, each answer checked: requests per second, and connections
    opened."""
    lock = threading.Lock()
    sent = 0
    failures: list[str] = []
    clients = [KeepAliveClient(base) for _ in range(READ_CLIENTS)]
    go = threading.Barrier(READ_CLIENTS + 1)

    def work(client: KeepAliveClient, ask: Ask) -> None:
        nonlocal sent
        status, piece = ask.expected
        go.wait(READY_TIMEOUT)
        while not failures:
            with lock:
                if sent >= total:
                    return
                sent += 1
            try:
                reply = client.send(ask)
            except MeasureError as error:
                failures.append(str(error))
                return
            if reply.status != status or piece not in reply.body:
                failures.append(f"{ask.method} {ask.path}: {reply.short()}")
                return

    threads = [
        threading.Thread(target=work, args=(client, asks[n % len(asks)]), daemon=True)
        for n, client in enumerate(clients)
    ]
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
        raise MeasureError(failures[0])
    if any(thread.is_alive() for thread in threads):
        raise MeasureError(f"{asks[0].method} {asks[0].path}: a client thread did not finish")
    return total / elapsed, sum(client.opened for client in clients)


Probe = tuple[str, dict[str, str], tuple[int, bytes]]  # path, headers, (status, a body piece)
# The envelope's 404 for an unknown /api/ URL: everything every API response costs
# (middleware, routing, the JSON envelope), without a view.
BARE: Probe = ("/api/v1/nothing", {}, (404, b'"code":"BAD_REQUEST"'))


def asks_of(probe: Probe | list[Ask]) -> list[Ask]:
    """A GET probe as the one request every client repeats; a list of asks as it is."""
    if isinstance(probe, list):
        return probe
    path, headers, expected = probe
    return [Ask("GET", path, headers, expected)]


def _times(pid: int) -> list[int]:
    """utime, stime, cutime, cstime of ``pid`` in clock ticks (fields 14 to 17 of its stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return [0, 0, 0, 0]
    return [int(value) for value in fields[11:15]]


def server_cpu_seconds(master: int) -> float:
    """CPU time used by a gunicorn server's workers, past and present: those still running,
    plus those that exited (the master's reaped children)."""
    from scripts.bench.harness import children_of

    _, _, reaped_user, reaped_system = _times(master)
    running = sum(sum(_times(pid)[:2]) for pid in children_of(master))
    return (reaped_user + reaped_system + running) / os.sysconf("SC_CLK_TCK")


def rates_compared(
    base: str,
    probes: dict[str, Probe | list[Ask]],
    rounds: int,
    server_pid: int | None = None,
    requests: int = READ_REQUESTS,
) -> tuple[dict[str, list[float]], int]:
    """Requests per second of each probe, ``rounds`` runs of ``requests`` each, the probes in
    turn (the order reversed every other round) after a warm-up of each, printed by name
    (with the server's CPU time per request, given its master's pid); and how many
    connections the clients opened."""
    asks = {name: asks_of(probe) for name, probe in probes.items()}
    # Every worker thread has imported, connected and answered each path first.
    for each in asks.values():
        requests_per_second(base, each, READ_WARM_UP)
    results: dict[str, list[float]] = {name: [] for name in probes}
    cpu: dict[str, list[float]] = {name: [] for name in probes}
    opened = 0
    order = list(asks.items())
    for number in range(rounds):
        for name, each in order if number % 2 == 0 else order[::-1]:
            used = server_cpu_seconds(server_pid) if server_pid else 0.0
            rate, connections = requests_per_second(base, each, requests)
            if server_pid:
                cpu[name].append((server_cpu_seconds(server_pid) - used) / requests)
            results[name].append(rate)
            opened += connections
    for name, values in results.items():
        server_cpu = (
            f" (server CPU {statistics.median(cpu[name]) * 1000:.1f} ms a request)"
            if server_pid
            else ""
        )
        print(
            f"  {name}: median {statistics.median(values):.0f} req/s of {len(values)}"
            f"{server_cpu}: " + ", ".join(f"{value:.0f}" for value in values)
        )
    return results, opened
