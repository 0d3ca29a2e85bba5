"""Row 11: team A's webhook latency (write to receiver) through one ``db_worker`` while team B
has endpoints that never answer and a backlog queued for them, vs the same with team B idle."""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
from contextlib import suppress
from typing import Any

from scripts.bench.base import HOST, MeasureError
from scripts.bench.harness import Bench, spawn, stop, tail
from scripts.bench.results import Row, compared, show
from scripts.bench.world import World

ROWS = {11}
FLOOD_ENDPOINTS = 20  # the other team's receivers, none of which ever answers
FLOOD_EVENTS = 50  # queued for each of them: 1,000 deliveries
FAIRNESS_TARGET = 2.0
WEBHOOK_WAIT = 60.0  # for one event to arrive, before the row is an error


class ArrivalLog:
    """A webhook receiver on 127.0.0.1 that answers 204 and notes when each webhook-id came."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()
        log = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with log.changed:
                    log.arrived[self.headers.get("webhook-id", "")] = time.monotonic()
                    log.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, message_id: str) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: message_id in self.arrived, WEBHOOK_WAIT):
                raise MeasureError(f"webhook {message_id} did not arrive in {WEBHOOK_WAIT:g} s")
            return self.arrived[message_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts every connection and never answers: each attempt to it runs to its deadline."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0), backlog=128)
        self.url = f"http://{HOST}:{self.listener.getsockname()[1]}/hooks"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                self.held.append(self.listener.accept()[0])

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


def webhook_team(name: str, url: str, endpoints: int) -> Any:
    from webhooks.services import endpoint_create

    team = World.team_only(name)
    for _ in range(endpoints):
        endpoint_create(team=team, url=url, events=["release.updated"])
    return team


def write_event(team: Any, number: int) -> str:
    """A committed write's event (as a write service emits it); its webhook-id."""
    from django.db import transaction

    from webhooks.events import emit

    with transaction.atomic():
        deliveries = emit(team, "release.updated", {"bench": number})
    return deliveries[0].event.message_id


def event_latencies(team: Any, arrivals: ArrivalLog, rounds: int) -> list[float]:
    """Write to receiver, one event at a time, a random pause before each so that the worker's
    polling phase is sampled rather than fixed."""
    latencies = []
    for number in range(rounds):
        time.sleep(random.uniform(0.2, 1.2))  # noqa: S311 - not for secrets
        written = time.monotonic()
        latencies.append(arrivals.wait_for(write_event(team, number)) - written)
    return latencies


def measure(bench: Bench, world: World, rounds: int) -> None:
    """11: team A's event latency (write to receiver) through one ``db_worker`` while team B
    has FLOOD_ENDPOINTS receivers that never answer and FLOOD_EVENTS events queued for each,
    vs the same with team B silent."""
    arrivals, silent = ArrivalLog(), Silent()
    bench.cleanups += [arrivals.close, silent.close]
    team_a = webhook_team("Bench webhooks A", arrivals.url, 1)
    team_b = webhook_team("Bench webhooks B", silent.url, FLOOD_ENDPOINTS)
    env = {**bench.base_env(), **bench.django_env(), "WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS": "true"}
    log = bench.folder / "db-worker.log"
    worker = spawn(
        [sys.executable, "manage.py", "db_worker", "--no-startup-delay"], env=env, log=log
    )
    bench.cleanups.append(lambda: stop(worker))

    def busy_vs_idle() -> tuple[str, str, float]:
        arrivals.wait_for(write_event(team_a, -1))  # the worker is up
        idle = event_latencies(team_a, arrivals, rounds)
        show("idle", idle)
        for number in range(FLOOD_EVENTS):
            write_event(team_b, number)
        deadline = time.monotonic() + WEBHOOK_WAIT
        while len(silent.held) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        if not silent.held:
            raise MeasureError(f"team B's attempts never started:\n{tail(log)}")
        busy = event_latencies(team_a, arrivals, rounds)
        show(f"team B busy ({len(silent.held)} of its attempts left hanging by then)", busy)
        return compared(busy, idle)

    bench.run(
        Row(
            11,
            f"webhook latency of team A while team B has {FLOOD_ENDPOINTS} never-answering "
            f"endpoints and {FLOOD_EVENTS} events queued (A) vs idle (B), one worker",
            FAIRNESS_TARGET,
        ),
        busy_vs_idle,
    )
    stop(worker)
    bench.notes.append(
        "11: each event is written in its own transaction in the benchmark's process (as a "
        "write service emits it) and timed until the receiver has it; one `db_worker` with its "
        "defaults (16 attempts in flight, 4 a team, polling its task queue every second); idle "
        "first, then busy (team B's backlog cannot be undone between rounds). Busy can be "
        "faster: a sweep with attempts in flight looks for due deliveries every 0.25 s."
    )
