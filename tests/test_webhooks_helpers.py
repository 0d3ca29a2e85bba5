"""What the webhook tests share: a real HTTP receiver on 127.0.0.1 (``http.server`` in a
thread) that records every request and answers from a script, and small builders. No tests
here."""

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.utils import timezone

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


class Receiver:
    """Answers each POST with the next scripted ``Answer`` (then ``default``), after ``delay``
    seconds, and records it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[Answer] = deque()
        self.default = Answer()
        self.delay = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    answer = receiver.script.popleft() if receiver.script else receiver.default
                time.sleep(receiver.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
