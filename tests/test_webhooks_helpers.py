"""What the webhook tests share: a real HTTP receiver on 127.0.0.1 (``http.server`` in a
thread) that records every request and answers from a script, and small builders. No tests
here."""

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.utils import timezone

from releases.models import Release
from releases.services import ReleaseChanges
from teams.models import Team
from webhooks import services
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookDelivery, WebhookEndpoint


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that went away (a worker killed mid-request) is expected here; the rest is not.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    """Answers each POST with the next scripted ``Answer`` (then ``default``), after ``delay``
    seconds, and records it. While ``gate`` is clear, answers wait (up to a minute) for it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[Answer] = deque()
        self.default = Answer()
        self.delay = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    answer = receiver.script.popleft() if receiver.script else receiver.default
                receiver.gate.wait(timeout=60)
                time.sleep(receiver.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def ids(self) -> list[str]:
        return [request.headers["webhook-id"] for request in self.received]


def running_receiver() -> Iterator[Receiver]:
    """A started receiver, shut down afterwards: each test module's ``receiver`` fixture."""
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.server.shutdown()
        server.server.server_close()


def make_endpoint(
    team: Team, url: str, events: tuple[str, ...] = EVENT_TYPES
) -> tuple[WebhookEndpoint, str]:
    """An endpoint made by the service (the API refuses plain http outside DEBUG)."""
    return services.endpoint_create(team=team, url=url, events=list(events))


def make_due(*deliveries: WebhookDelivery) -> None:
    """Bring deliveries' next attempt to now, as time passing would."""
    for delivery in deliveries:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def wait_until(condition: Callable[[], object], timeout: float = 30) -> None:
    """Return once ``condition()`` is true; fail the test if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {condition}")
        time.sleep(0.05)


class Boom(Exception):
    """Raised inside a transaction to roll it back."""


def changes_of(release: Release, **overrides: object) -> ReleaseChanges:
    """Release Update's input that keeps ``release`` as it is, but for ``overrides``."""
    fields = {
        "version": release.version,
        "product_id": release.product_id,
        "status": release.status,
        "set_as_latest": False,
        "keep_existing_file": True,
        "branch_id": release.branch_id,
        "metadata": [],
        "license_ids": [],
    }
    fields.update(overrides)
    return ReleaseChanges(**fields)
