"""A thread-based TCP proxy that injects network faults: throttling, stalls, held or dropped
replies.

Free of Django, so benchmark scripts can import it too. Every socket has a timeout and every
thread is a daemon, so a test that forgets to release a stall still finishes.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType

LISTEN_HOST = "127.0.0.1"
# Blocking calls wake up this often to notice stop(), so no thread outlives it by much.
POLL_INTERVAL = 0.2
CONNECT_TIMEOUT = 5.0
# How long a connection being dropped waits for the upstream to start replying; the reply is
# the proof that the upstream processed the message, but a silent upstream must not hang a test.
DROP_REPLY_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
MAX_CHUNK = 64 * 1024
# A throttled direction moves about this many chunks a second, so a slow rate does not turn
# into one long pause followed by a 64 KiB burst.
THROTTLE_CHUNKS_PER_SECOND = 20
THROTTLE_CATCH_UP = 1 / THROTTLE_CHUNKS_PER_SECOND


class _Matcher:
    """Finds a pattern in a stream that arrives in chunks, even across chunk boundaries."""

    def __init__(self, pattern: bytes) -> None:
        if not pattern:
            raise ValueError("the pattern must not be empty")
        self._pattern = pattern
        self._tail = b""

    def feed(self, data: bytes) -> int | None:
        """The index in ``data`` just past the first match, or None if there is none yet."""
        window = self._tail + data
        index = window.find(self._pattern)
        if index < 0:
            keep = len(self._pattern) - 1
            self._tail = window[-keep:] if keep else b""
            return None
        end = index + len(self._pattern) - len(self._tail)
        self._tail = b""
        return end


@dataclass(eq=False)
class _StallRule:
    after_bytes: int
    match: bytes | None


@dataclass(eq=False)
class _DropRule:
    pattern: bytes
    armed_by: bytes | None
    once: bool
    fired: bool = False


class _Pacer:
    """When one direction of one connection may send next, for throttling."""

    def __init__(self) -> None:
        self.free_at: float | None = None


class _Connection:
    """One accepted client and its upstream socket, relayed by two threads."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="tcp-proxy-conn")
        # Held around shutdown and close, so a socket is never shut down after its file
        # descriptor was closed (and possibly reused by another socket).
        self._socket_lock = threading.Lock()
        self._sockets_closed = False
        # Client bytes forwarded so far: the stream position that stall rules count from.
        self._position = 0
        self._stall_rule: _StallRule | None = None
        self._stall_matcher: _Matcher | None = None
        self._stall_at: int | None = None
        self._stall_scanned = 0
        self._drop_rule: _DropRule | None = None
        self._arm_matcher: _Matcher | None = None
        self._drop_matcher: _Matcher | None = None
        self._drop_pending = False
        self._hold_pattern: bytes | None = None
        self._hold_matcher: _Matcher | None = None
        self._holding = False

    def shutdown(self) -> None:
        """Wake both relaying threads and make them finish; the sockets close when they have."""
        self.closed.set()
        with self._socket_lock:
            if not self._sockets_closed:
                for sock in (self.client, self.upstream):
                    if sock is not None:
                        _quietly_shutdown(sock, socket.SHUT_RDWR)
        self.proxy._notify()

    def close_sockets(self) -> None:
        with self._socket_lock:
            self._sockets_closed = True
            for sock in (self.client, self.upstream):
                if sock is not None:
                    sock.close()

    def _run(self) -> None:
        try:
            try:
                upstream = socket.create_connection(self.proxy.upstream, timeout=CONNECT_TIMEOUT)
            except OSError:
                return
            _configure(upstream)
            with self._socket_lock:
                self.upstream = upstream
            if self.closed.is_set():
                return
            to_client = threading.Thread(
                target=self._pump_to_client, daemon=True, name="tcp-proxy-down"
            )
            to_client.start()
            self._pump_to_upstream()
            to_client.join()
        finally:
            self.closed.set()
            self.close_sockets()
            self.proxy._forget(self)

    def _pump_to_upstream(self) -> None:
        assert self.upstream is not None
        pacer = _Pacer()
        try:
            while True:
                data = self._recv(self.client)
                if data is None:
                    return
                if not data:
                    _quietly_shutdown(self.upstream, socket.SHUT_WR)
                    return
                if self._hold_fires(data):
                    # Set before forwarding: the upstream's reply to this is what is held.
                    self._holding = True
                drop = self._drop_fires(data)
                if drop:
                    # Set before forwarding: whatever the upstream sends from now on is its reply.
                    self._drop_pending = True
                if not self._forward_upstream(data, pacer):
                    return
                if drop:
                    self._drop()
                    return
        except OSError:
            # A peer reset its side: pass that on by closing the other side as well.
            self.shutdown()
        except BaseException:
            self.shutdown()
            raise

    def _pump_to_client(self) -> None:
        assert self.upstream is not None
        pacer = _Pacer()
        try:
            while True:
                data = self._recv(self.upstream)
                if data is None:
                    return
                if self._drop_pending:
                    # The upstream has answered, so it processed the message: lose the answer.
                    self.proxy.dropped.set()
                    self.shutdown()
                    return
                if not data:
                    _quietly_shutdown(self.client, socket.SHUT_WR)
                    return
                if self._holding and not self.proxy._wait_while_holding(self):
                    return
                if not self._relay(self.client, data, pacer, to_upstream=False):
                    return
        except OSError:
            # A peer reset its side: pass that on by closing the other side as well.
            self.shutdown()
        except BaseException:
            self.shutdown()
            raise

    def _recv(self, sock: socket.socket) -> bytes | None:
        """The next bytes (b"" at end of stream), or None once the connection is closed."""
        while not self.closed.is_set():
            try:
                return sock.recv(self.proxy._chunk_size())
            except TimeoutError:
                continue
            except OSError:
                if self.closed.is_set():
                    return None
                raise
        return None

    def _send(self, sock: socket.socket, data: bytes, *, to_upstream: bool) -> bool:
        # send(), not sendall(): after a timeout sendall() cannot say how much it sent.
        view = memoryview(data)
        while view:
            if self.closed.is_set():
                return False
            try:
                sent = sock.send(view)
            except TimeoutError:
                continue
            view = view[sent:]
            self.proxy._count(sent, to_upstream=to_upstream)
        return True

    def _relay(self, sock: socket.socket, data: bytes, pacer: _Pacer, *, to_upstream: bool) -> bool:
        """Send ``data`` at the current rate."""
        offset = 0
        while offset < len(data):
            # Re-read for every piece: a chunk read before throttle() was called can be far
            # larger than the new rate allows in one go.
            piece = data[offset : offset + self.proxy._chunk_size()]
            self.proxy._pace(pacer, len(piece), self.closed)
            if not self._send(sock, piece, to_upstream=to_upstream):
                return False
            offset += len(piece)
        return True

    def _forward_upstream(self, data: bytes, pacer: _Pacer) -> bool:
        assert self.upstream is not None
        offset = 0
        while offset < len(data):
            allowed = min(self._stall_allowance(data, offset), self.proxy._chunk_size())
            if allowed == 0:
                if not self.proxy._wait_while_stalled(self, self._stall_rule):
                    return False
                continue
            piece = data[offset : offset + allowed]
            self.proxy._pace(pacer, len(piece), self.closed)
            if not self._send(self.upstream, piece, to_upstream=True):
                return False
            offset += allowed
            self._position += allowed
        return True

    def _stall_allowance(self, data: bytes, offset: int) -> int:
        """How many of ``data[offset:]`` may go upstream before the stall point."""
        remaining = len(data) - offset
        rule = self.proxy._current_stall_rule()
        if rule is None:
            return remaining
        if rule is not self._stall_rule:
            # A rule counts from when this connection first sees it, so that existing
            # keep-alive connections stall after "further" bytes, not past ones.
            self._stall_rule = rule
            self._stall_matcher = _Matcher(rule.match) if rule.match else None
            self._stall_at = None if rule.match else self._position + rule.after_bytes
            self._stall_scanned = self._position
        if self._stall_at is None:
            assert self._stall_matcher is not None
            # A chunk is forwarded in pieces, so this runs once per piece: search each byte once.
            chunk_start = self._position - offset
            scan_from = max(offset, self._stall_scanned - chunk_start)
            end = self._stall_matcher.feed(data[scan_from:])
            self._stall_scanned = chunk_start + len(data)
            if end is None:
                return remaining
            self._stall_at = chunk_start + scan_from + end + rule.after_bytes
        return max(0, min(remaining, self._stall_at - self._position))

    def _hold_fires(self, data: bytes) -> bool:
        pattern = self.proxy._current_hold()
        if pattern is None or self._holding:
            return False
        if pattern is not self._hold_pattern:
            self._hold_pattern = pattern
            self._hold_matcher = _Matcher(pattern)
        assert self._hold_matcher is not None
        return self._hold_matcher.feed(data) is not None

    def _drop_fires(self, data: bytes) -> bool:
        rule = self.proxy._current_drop_rule()
        if rule is None:
            return False
        if rule is not self._drop_rule:
            self._drop_rule = rule
            self._arm_matcher = _Matcher(rule.armed_by) if rule.armed_by else None
            self._drop_matcher = _Matcher(rule.pattern)
        assert self._drop_matcher is not None
        rest = data
        if self._arm_matcher is not None:
            end = self._arm_matcher.feed(rest)
            if end is None:
                return False
            # Armed for good on this connection: only the pattern after it counts.
            self._arm_matcher = None
            rest = rest[end:]
        if self._drop_matcher.feed(rest) is None:
            return False
        return self.proxy._claim_drop(rule)

    def _drop(self) -> None:
        """Relay whatever else the client sends until the upstream replies, then hang up.

        The chunk with the pattern may end mid-message (a throttled connection reads small
        chunks), and the upstream answers only a whole message.
        """
        assert self.upstream is not None
        deadline = time.monotonic() + DROP_REPLY_TIMEOUT
        while not self.closed.is_set() and time.monotonic() < deadline:
            try:
                data = self.client.recv(MAX_CHUNK)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                # The client is gone, but the upstream may still answer what it was sent.
                self.closed.wait(max(0.0, deadline - time.monotonic()))
                break
            if not self._send(self.upstream, data, to_upstream=True):
                break
        # Set before the client can see the hang-up, so a test that caught the client's error
        # can rely on it.
        self.proxy.dropped.set()
        self.shutdown()


class TcpProxy:
    """Listens on 127.0.0.1 on a free port and relays each connection to ``upstream``.

    Faults apply to open connections and to those accepted later. ``stalled`` and ``dropped``
    are Events a test can wait on to know a fault actually happened.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.stalled = threading.Event()
        self.dropped = threading.Event()
        self.held = threading.Event()
        self._changed = threading.Condition()
        self._listener: socket.socket | None = None
        self._listener_open = False
        self._accept_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[_Connection] = set()
        self._rate: float | None = None
        self._stall: _StallRule | None = None
        self._drop: _DropRule | None = None
        self._hold: bytes | None = None
        self._bytes_to_upstream = 0
        self._bytes_to_client = 0
        self._connections_accepted = 0

    # --- Lifecycle ----------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        if self._listener is not None:
            raise RuntimeError("the proxy was already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LISTEN_HOST, 0))
        listener.listen(128)
        listener.settimeout(POLL_INTERVAL)
        self._listener = listener
        self._listener_open = True
        self._port: int = listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"tcp-proxy-{self.port}"
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection, and release stalls; waits a bounded time."""
        with self._changed:
            if self._accept_thread is None or self._stopping.is_set():
                return
            self._stopping.set()
            if self._listener_open:
                # Wakes accept() now rather than at its next timeout.
                _quietly_shutdown(self._listener, socket.SHUT_RDWR)
            self._stall = None
            self._drop = None
            connections = list(self._connections)
            self._changed.notify_all()
        for connection in connections:
            connection.shutdown()
        deadline = time.monotonic() + STOP_TIMEOUT
        self._accept_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for connection in connections:
            connection.thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if connection.thread.is_alive():
                connection.close_sockets()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the proxy has not been started")
        return self._port

    @property
    def address(self) -> str:
        return f"{LISTEN_HOST}:{self.port}"

    # --- Faults -------------------------------------------------------------------------------

    def throttle(self, bytes_per_second: float | None) -> None:
        """Limit each direction of each connection to this rate; None removes the limit."""
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive or None")
        with self._changed:
            self._rate = bytes_per_second
            self._changed.notify_all()

    def stall_upstream(self, after_bytes: int = 0, match: bytes | None = None) -> None:
        """Stop relaying client bytes upstream after ``after_bytes`` more, until release().

        With ``match``, only connections whose client bytes contain it stall, ``after_bytes``
        past the end of the match (the match itself is forwarded); the search runs over the
        live stream, so a request on a reused keep-alive connection is caught too.
        """
        if after_bytes < 0:
            raise ValueError("after_bytes must not be negative")
        if match is not None and not match:
            raise ValueError("match must not be empty")
        with self._changed:
            self.stalled.clear()
            self._stall = _StallRule(after_bytes, match)
            self._changed.notify_all()

    def release(self) -> None:
        """Let stalled connections, and held replies, carry on as if nothing happened."""
        with self._changed:
            self._stall = None
            self._hold = None
            self._changed.notify_all()

    def hold_replies(self, match: bytes) -> None:
        """Relay every client message, but hold the upstream's replies on connections whose
        client bytes contain ``match`` (from the reply to that message on) until release():
        the upstream has done the work, the client does not know yet."""
        if not match:
            raise ValueError("match must not be empty")
        with self._changed:
            self.held.clear()
            self._hold = match
            self._changed.notify_all()

    def drop_after(
        self, pattern: bytes, *, armed_by: bytes | None = None, once: bool = True
    ) -> None:
        """Lose the reply to the client message that contains ``pattern``.

        The pattern, and whatever the client sends after it, reaches the upstream; once the
        upstream starts replying (or after DROP_REPLY_TIMEOUT), both sockets are closed and the
        reply is never relayed, like a connection lost just after the server acted.
        With ``armed_by``, only a pattern seen after ``armed_by`` on the same connection counts.
        """
        if not pattern or (armed_by is not None and not armed_by):
            raise ValueError("pattern and armed_by must not be empty")
        with self._changed:
            self.dropped.clear()
            self._drop = _DropRule(pattern, armed_by, once)

    # --- Counters -----------------------------------------------------------------------------

    @property
    def bytes_to_upstream(self) -> int:
        with self._changed:
            return self._bytes_to_upstream

    @property
    def bytes_to_client(self) -> int:
        with self._changed:
            return self._bytes_to_client

    @property
    def connections_accepted(self) -> int:
        with self._changed:
            return self._connections_accepted

    @property
    def open_connections(self) -> int:
        with self._changed:
            return len(self._connections)

    # --- For connections ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        try:
            while not self._stopping.is_set():
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    # Out of file descriptors, say: back off rather than spin.
                    self._stopping.wait(POLL_INTERVAL)
                    continue
                _configure(client)
                connection = _Connection(self, client)
                with self._changed:
                    if self._stopping.is_set():
                        client.close()
                        return
                    self._connections.add(connection)
                    self._connections_accepted += 1
                    # Started under the lock, so stop() never finds a thread it cannot join.
                    connection.thread.start()
        finally:
            # Under the lock, so stop() never shuts down a descriptor that was closed and reused.
            with self._changed:
                self._listener_open = False
                self._listener.close()

    def _forget(self, connection: _Connection) -> None:
        with self._changed:
            self._connections.discard(connection)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _count(self, nbytes: int, *, to_upstream: bool) -> None:
        with self._changed:
            if to_upstream:
                self._bytes_to_upstream += nbytes
            else:
                self._bytes_to_client += nbytes

    def _chunk_size(self) -> int:
        rate = self._rate
        if rate is None:
            return MAX_CHUNK
        return max(1, min(MAX_CHUNK, int(rate / THROTTLE_CHUNKS_PER_SECOND)))

    def _pace(self, pacer: _Pacer, nbytes: int, closed: threading.Event) -> None:
        """Wait until ``nbytes`` more fit the current rate; a new rate or stop() cuts it short."""
        with self._changed:
            if self._rate is None:
                pacer.free_at = None
                return
            now = time.monotonic()
            if pacer.free_at is None:
                start = now
            else:
                # A little credit makes up for oversleeping, so the average rate holds; no
                # more, so a connection that was quiet does not get to burst.
                start = max(pacer.free_at, now - THROTTLE_CATCH_UP)
            free_at = pacer.free_at = start + nbytes / self._rate
            self._changed.wait_for(
                lambda: closed.is_set() or self._rate is None or time.monotonic() >= free_at,
                timeout=free_at - now,
            )

    def _current_stall_rule(self) -> _StallRule | None:
        with self._changed:
            return self._stall

    def _current_hold(self) -> bytes | None:
        with self._changed:
            return self._hold

    def _wait_while_holding(self, connection: _Connection) -> bool:
        """Block until the held replies are released; False if the connection closed."""
        self.held.set()
        with self._changed:
            while self._hold is not None and not connection.closed.is_set():
                self._changed.wait(POLL_INTERVAL)
            connection._holding = False
        return not connection.closed.is_set()

    def _current_drop_rule(self) -> _DropRule | None:
        with self._changed:
            return self._drop

    def _claim_drop(self, rule: _DropRule) -> bool:
        with self._changed:
            if rule is not self._drop or (rule.once and rule.fired):
                return False
            rule.fired = True
            return True

    def _wait_while_stalled(self, connection: _Connection, rule: _StallRule | None) -> bool:
        """Block until ``rule`` is released or replaced; False if the connection closed."""
        self.stalled.set()
        with self._changed:
            while self._stall is rule and not connection.closed.is_set():
                self._changed.wait(POLL_INTERVAL)
        return not connection.closed.is_set()


def _configure(sock: socket.socket) -> None:
    sock.settimeout(POLL_INTERVAL)
    # Small protocol messages (a PostgreSQL COMMIT) must not wait for Nagle's algorithm.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _quietly_shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        # Already disconnected: the peer went first, which is what shutting down wants anyway.
        pass
