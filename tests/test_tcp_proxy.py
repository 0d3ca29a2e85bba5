"""The fault-injection TCP proxy itself: relaying, throttling, stalling and dropping replies."""

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.tcp_proxy import TcpProxy

MIB = 1024 * 1024
# Generous: only a broken proxy gets near it, and then the test fails instead of hanging.
IO_TIMEOUT = 10.0
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


class Upstream:
    """A tiny server for the proxy to relay to.

    ``echo`` sends back what it gets; ``lines`` answers each line with ``ok <line>``, like a
    request/response protocol on a keep-alive connection; ``sink`` answers the number of bytes
    it got once the client has finished sending.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._received = bytearray()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    @property
    def received(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def _serve(self) -> None:
        with self.listener:
            while not self._stopping.is_set():
                try:
                    connection, _ = self.listener.accept()
                except TimeoutError:
                    continue
                connection.settimeout(IO_TIMEOUT)
                with self._lock:
                    self._connections.append(connection)
                thread = threading.Thread(target=self._handle, args=(connection,), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _handle(self, connection: socket.socket) -> None:
        pending = b""
        total = 0
        with connection:
            try:
                while data := connection.recv(64 * 1024):
                    total += len(data)
                    with self._lock:
                        self._received += data
                    if self.mode == "echo":
                        connection.sendall(data)
                    elif self.mode == "lines":
                        pending += data
                        while b"\n" in pending:
                            line, pending = pending.split(b"\n", 1)
                            connection.sendall(b"ok " + line + b"\n")
                if self.mode == "sink":
                    connection.sendall(f"{total}\n".encode())
            except OSError:
                # The proxy hung up on purpose (a dropped reply) or the test is over.
                pass


@pytest.fixture
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    server = Upstream(request.param)
    yield server
    server.stop()


def with_upstream(mode: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("upstream", [mode], indirect=True)


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=IO_TIMEOUT)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the peer closes; a reset counts as the end too."""
    chunks = []
    try:
        while chunk := sock.recv(64 * 1024):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line


def request(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line + b"\n")
    return read_line(sock)


def send_in_background(sock: socket.socket, payload: bytes) -> threading.Thread:
    """Send and then end the stream, without relying on socket buffers to hold the payload."""

    def send() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def wait_until(condition: Callable[[], bool], timeout: float = IO_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(0.01)


def assert_no_reply_yet(sock: socket.socket) -> None:
    """The connection is open and silent: a hang, not an error or an end of stream."""
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(IO_TIMEOUT)


# --- Relaying ---------------------------------------------------------------------------------


@with_upstream("echo")
def test_relays_both_ways_and_counts_bytes(upstream: Upstream) -> None:
    payload = os.urandom(MIB)
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        assert proxy.address == f"127.0.0.1:{proxy.port}"

        sender = send_in_background(client, payload)
        echoed = read_to_end(client)
        sender.join(timeout=IO_TIMEOUT)

    assert echoed == payload
    assert upstream.received == payload
    # Read once stop() has joined the relaying threads, so the counts are final.
    assert (proxy.bytes_to_upstream, proxy.bytes_to_client) == (MIB, MIB)
    assert proxy.connections_accepted == 1


@with_upstream("lines")
def test_each_connection_gets_its_own_upstream_connection(upstream: Upstream) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy:
        clients = [connect(proxy) for _ in range(3)]
        for number, client in enumerate(clients):
            assert request(client, b"GET /%d" % number) == b"ok GET /%d\n" % number
        for client in clients:
            client.close()
        assert proxy.connections_accepted == 3


@with_upstream("lines")
def test_stop_closes_open_connections_and_releases_stalls(upstream: Upstream) -> None:
    proxy = TcpProxy("127.0.0.1", upstream.port).start()
    with connect(proxy) as client:
        proxy.stall_upstream()
        client.sendall(b"PUT /a\n")
        assert proxy.stalled.wait(IO_TIMEOUT)

        started = time.monotonic()
        proxy.stop()

        assert time.monotonic() - started < 5
        assert read_to_end(client) == b""
        assert proxy.open_connections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=IO_TIMEOUT)


# --- Throttling -------------------------------------------------------------------------------


@with_upstream("sink")
def test_throttle_slows_a_transfer_down(upstream: Upstream) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        proxy.throttle(4 * MIB)
        started = time.monotonic()
        client.sendall(os.urandom(MIB))
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(client) == b"%d\n" % MIB
        elapsed = time.monotonic() - started

    # A lower bound only: 1 MiB at 4 MiB/s needs 0.25 s, however fast the machine.
    assert elapsed >= 0.2


@with_upstream("sink")
def test_throttle_can_be_lifted_mid_transfer(upstream: Upstream) -> None:
    size = 64 * 1024
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        # At 1 KiB/s this transfer would take a minute, far beyond the client's timeout.
        proxy.throttle(1024)
        sender = send_in_background(client, os.urandom(size))
        wait_until(lambda: proxy.bytes_to_upstream > 0)
        assert proxy.bytes_to_upstream < size

        proxy.throttle(None)

        assert read_to_end(client) == b"%d\n" % size
        sender.join(timeout=IO_TIMEOUT)


# --- Stalling ---------------------------------------------------------------------------------


@with_upstream("sink")
def test_stall_holds_client_bytes_until_release(upstream: Upstream) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        proxy.stall_upstream(after_bytes=1000)
        client.sendall(b"x" * 5000)

        assert proxy.stalled.wait(IO_TIMEOUT)
        wait_until(lambda: len(upstream.received) == 1000)
        assert_no_reply_yet(client)
        assert len(upstream.received) == 1000

        proxy.release()
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(client) == b"5000\n"


@with_upstream("sink")
def test_connections_opened_while_stalled_stall_too(upstream: Upstream) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy:
        proxy.stall_upstream()
        with connect(proxy) as client:
            client.sendall(b"hello")
            assert proxy.stalled.wait(IO_TIMEOUT)
            assert upstream.received == b""

            proxy.release()
            client.shutdown(socket.SHUT_WR)
            assert read_to_end(client) == b"5\n"


@with_upstream("lines")
def test_stall_with_match_catches_a_request_on_a_keep_alive_connection(
    upstream: Upstream,
) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        assert request(client, b"HEAD /a") == b"ok HEAD /a\n"
        proxy.stall_upstream(match=b"PUT ")

        assert request(client, b"HEAD /b") == b"ok HEAD /b\n"
        client.sendall(b"PUT /c\n")
        assert proxy.stalled.wait(IO_TIMEOUT)
        with connect(proxy) as other:
            assert request(other, b"DELETE /d") == b"ok DELETE /d\n"
        assert_no_reply_yet(client)
        assert b"PUT " in upstream.received
        assert b"/c" not in upstream.received

        proxy.release()
        assert read_line(client) == b"ok PUT /c\n"


@with_upstream("lines")
def test_hold_replies_lets_the_message_through_and_holds_only_its_answer(
    upstream: Upstream,
) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        assert request(client, b"HEAD /a") == b"ok HEAD /a\n"
        proxy.hold_replies(b"PUT ")

        client.sendall(b"PUT /c\n")
        assert proxy.held.wait(IO_TIMEOUT)
        # The upstream has the whole message (it did the work); the client hears nothing.
        wait_until(lambda: upstream.received.endswith(b"PUT /c\n"))
        assert_no_reply_yet(client)
        with connect(proxy) as other:
            assert request(other, b"HEAD /d") == b"ok HEAD /d\n"

        proxy.release()
        assert read_line(client) == b"ok PUT /c\n"


# --- Dropping a reply -------------------------------------------------------------------------


@with_upstream("lines")
def test_drop_after_loses_the_reply_to_the_armed_pattern(upstream: Upstream) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy:
        proxy.drop_after(b"COMMIT", armed_by=b"INSERT INTO t")
        with connect(proxy) as client:
            assert request(client, b"COMMIT") == b"ok COMMIT\n"
            assert request(client, b"INSERT INTO t") == b"ok INSERT INTO t\n"
            client.sendall(b"COMMIT\n")

            assert read_to_end(client) == b""
        assert proxy.dropped.wait(IO_TIMEOUT)
        assert upstream.received.endswith(b"INSERT INTO t\nCOMMIT\n")

        # once=True: the next connection is relayed as usual.
        with connect(proxy) as client:
            assert request(client, b"INSERT INTO t") == b"ok INSERT INTO t\n"
            assert request(client, b"COMMIT") == b"ok COMMIT\n"


@with_upstream("lines")
def test_drop_after_finds_patterns_split_across_chunks(upstream: Upstream) -> None:
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        # 100 bytes/s reads 5-byte chunks, so both patterns arrive in pieces.
        proxy.throttle(100)
        proxy.drop_after(b"COMMIT", armed_by=b"INSERT INTO t")
        assert request(client, b"INSERT INTO t") == b"ok INSERT INTO t\n"
        client.sendall(b"COMMIT\n")

        assert read_to_end(client) == b""
        assert proxy.dropped.wait(IO_TIMEOUT)
        assert upstream.received.endswith(b"COMMIT\n")


@pytest.fixture
def postgres_table() -> Iterator[str]:
    try:
        socket.create_connection((POSTGRES["host"], POSTGRES["port"]), timeout=2).close()
    except OSError:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    table = f"tcp_proxy_drop_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**POSTGRES, autocommit=True, connect_timeout=5) as direct:
        direct.execute(f'CREATE TABLE "{table}" (id integer PRIMARY KEY, note text NOT NULL)')
    yield table
    with psycopg.connect(**POSTGRES, autocommit=True, connect_timeout=5) as direct:
        direct.execute(f'DROP TABLE IF EXISTS "{table}"')


def test_drop_after_loses_a_postgresql_commit_acknowledgement(postgres_table: str) -> None:
    with TcpProxy(POSTGRES["host"], POSTGRES["port"]) as proxy:
        proxy.drop_after(b"COMMIT", armed_by=f'INSERT INTO "{postgres_table}"'.encode())
        connection = psycopg.connect(**{**POSTGRES, "port": proxy.port}, connect_timeout=5)
        try:
            connection.execute(
                f'INSERT INTO "{postgres_table}" (id, note) VALUES (%s, %s)', (1, "lost ack")
            )
            with pytest.raises(psycopg.OperationalError):
                connection.commit()
        finally:
            connection.close()
        assert proxy.dropped.is_set()

    # The client never heard back, yet the server committed.
    with psycopg.connect(**POSTGRES, connect_timeout=5) as direct:
        rows = direct.execute(f'SELECT id, note FROM "{postgres_table}"').fetchall()
    assert rows == [(1, "lost ack")]


@with_upstream("sink")
def test_stall_counts_after_bytes_past_a_match_inside_a_large_chunk(upstream: Upstream) -> None:
    payload = b"a" * 40_000 + b"PUT " + b"b" * 20_000
    with TcpProxy("127.0.0.1", upstream.port) as proxy, connect(proxy) as client:
        proxy.stall_upstream(after_bytes=10, match=b"PUT ")
        # Set after the proxy started reading 64 KiB chunks, so one chunk goes out in pieces.
        proxy.throttle(200_000)
        sender = threading.Thread(target=client.sendall, args=(payload,), daemon=True)
        sender.start()

        assert proxy.stalled.wait(IO_TIMEOUT)
        wait_until(lambda: len(upstream.received) >= 40_000 + 4 + 10)
        assert_no_reply_yet(client)
        assert upstream.received == payload[: 40_000 + 4 + 10]

        proxy.release()
        sender.join(timeout=IO_TIMEOUT)
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(client) == b"%d\n" % len(payload)
