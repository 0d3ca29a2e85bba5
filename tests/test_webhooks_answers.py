"""Whatever a receiver answers ends as a recorded attempt: bodies are never decoded (a
compression bomb costs nothing), NUL bytes, undecodable bytes, absurd ``Retry-After`` values,
huge headers and invalid status lines are stored or recorded as errors, a 2xx is delivered,
and one bad answer never costs the rest of a sweep. Runs on SQLite and, with DATABASE_URL, on
PostgreSQL (whose text columns refuse NUL)."""

import socket
import threading
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_webhooks_helpers import Answer, make_endpoint, running_receiver
from webhooks import sender
from webhooks.events import emit
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint


@pytest.fixture
def receiver():
    yield from running_receiver()


@pytest.fixture(autouse=True)
def _private_destinations_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = True


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzipped twice (``Content-Encoding: gzip, gzip``): a few KiB."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    once = b"".join(inner.compress(zeros) for _ in range(size >> 20)) + inner.flush()
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return outer.compress(once) + outer.flush()


def test_a_compression_bomb_is_never_decoded(world, receiver):
    bomb = gzip_bomb(256 << 20)
    assert len(bomb) < 4096
    receiver.answer(Answer(200, {"Content-Encoding": "gzip, gzip"}, bomb))
    make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "a"})

    tracemalloc.start()
    try:
        assert sender.sweep() == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 16 << 20, f"peak {peak >> 20} MiB"
    assert receiver.received[0].headers["Accept-Encoding"] == "identity"
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code == 200
    assert attempt.duration_ms < sender.TIMEOUT * 1000
    # The first KiB as sent: the compressed bytes, undecoded.
    kept = bomb[:1024].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    assert attempt.response_body == kept
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


class RawReceiver:
    """Answers each request with the next raw bytes it is given, then closes."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.answers: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        request = b""
        try:
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += connection.recv(65536)
            connection.sendall(self.answers.pop(0) if self.answers else b"")
        except (OSError, IndexError, ValueError):
            pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def raw_receiver():
    receiver = RawReceiver()
    yield receiver
    receiver.close()


def answer_bytes(status: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [b"HTTP/1.1 " + status, *(name + b": " + value for name, value in headers)]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def attempt_once(team, receiver: RawReceiver, answer: bytes) -> WebhookDelivery:
    """One event to ``receiver``, which answers ``answer``; the delivery afterwards."""
    receiver.answers.append(answer)
    (delivery,) = emit(team, "release.updated", {"id": "a"})
    sender.sweep()
    delivery.refresh_from_db()
    return delivery


@pytest.mark.parametrize(
    "answer",
    [
        answer_bytes(b"200 OK", [], b"nul \x00 byte"),
        answer_bytes(b"500 Oops", [], b"\xff\xfe not utf-8 \x00"),
        answer_bytes(b"503 Busy", [(b"Retry-After", b"9" * 20)], b""),
        answer_bytes(b"429 Slow", [(b"Retry-After", b"Fri, 31 Dec 99999 23:59:59 GMT")], b""),
        answer_bytes(b"200 OK", [(b"X-Big", b"y" * 60_000)], b"ok"),
        # Beyond httpcore's 100 KiB for the head: not understood, so recorded as an error.
        answer_bytes(b"201 Created", [(b"X-Big", b"y" * 200_000)], b"ok"),
        answer_bytes(b"2000 Nope", [], b""),
        answer_bytes(b"20", [], b""),
        answer_bytes(b"302 Found", [(b"Location", b"\xff\x00\x01")], b""),
        b"not http at all\r\n\r\n",
        b"",
    ],
)
def test_a_malformed_answer_is_recorded(world, raw_receiver, answer):
    make_endpoint(world.team, raw_receiver.url)

    delivery = attempt_once(world.team, raw_receiver, answer)

    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert delivery.claim_token is None
    if answer.startswith(b"HTTP/1.1 200 "):
        assert delivery.state == DeliveryState.DELIVERED
        assert attempt.status_code == 200
    else:
        assert delivery.state == DeliveryState.PENDING
        assert attempt.status_code is not None or attempt.error
    assert "\x00" not in attempt.response_body + attempt.error


def test_one_bad_answer_does_not_cost_the_rest_of_the_sweep(world, raw_receiver, receiver):
    """A NUL byte (refused by PostgreSQL before the fix) among good answers: every delivery
    of the sweep gets its attempt."""
    make_endpoint(world.team, raw_receiver.url)
    make_endpoint(world.team, receiver.url)
    raw_receiver.answers += [answer_bytes(b"200 OK", [], b"\x00" * 10)] * 3
    for _ in range(3):
        emit(world.team, "release.updated", {"id": "a"})

    assert sender.sweep() == 6

    assert WebhookAttempt.objects.count() == 6
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}


TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
# Any bytes a header value may hold (no control characters but tab), non-UTF-8 included.
HEADER_VALUE = st.binary(max_size=200).map(
    lambda value: bytes(b for b in value if b == 9 or 32 <= b != 127).strip()
)
HEADERS = st.lists(
    st.one_of(
        st.tuples(TOKEN, HEADER_VALUE),
        st.tuples(st.just(b"Retry-After"), st.from_regex(rb"\A[0-9]{1,40}\Z")),
        st.tuples(st.just(b"Content-Encoding"), st.sampled_from([b"gzip", b"br", b"x, gzip"])),
    ),
    max_size=6,
)
WELL_FORMED = st.builds(
    lambda code, headers, body: (code, answer_bytes(b"%d X" % code, headers, body)),
    st.one_of(st.sampled_from([200, 204, 302, 410, 429, 503]), st.integers(102, 999)),
    HEADERS,
    st.binary(max_size=3000),
)
MALFORMED = st.builds(lambda raw: (None, raw), st.binary(max_size=500))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answer=st.one_of(WELL_FORMED, MALFORMED))
def test_every_answer_ends_as_a_recorded_attempt(world, raw_receiver, answer):
    code, raw = answer
    WebhookEndpoint.objects.filter(team=world.team).delete()  # examples share the test's data
    make_endpoint(world.team, raw_receiver.url)

    delivery = attempt_once(world.team, raw_receiver, raw)

    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 1
    assert delivery.claim_token is None
    if code is not None:
        assert (delivery.state == DeliveryState.DELIVERED) == (200 <= code < 300)
