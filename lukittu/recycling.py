"""Worker recycling, one worker at a time (``lukittu/gunicorn_conf.py`` wires it in).

Gunicorn's own ``max_requests`` lets every worker restart whenever its count runs out, so two
can be away at once (each restart stalls the requests queued on it while the new worker
boots). Here a worker past its count recycles only when no other worker is recycling or
booting: a record shared by the master and its workers (the ``Baton``) names the worker that
is recycling and every worker that has not finished its warm-up (``lukittu.warm``). A worker
that finds either goes on serving and asks again a second later. An entry older than
``STALE_SECONDS`` (a worker that never came up) no longer holds anyone back."""

from __future__ import annotations

import fcntl
import os
import secrets
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

FREE = 0
# The recycled worker has exited and its replacement is not forked yet: the next worker the
# master forks takes over (``booting``), so no other worker recycles in between.
HANDOVER = -1
# Longer than a recycled worker may take to finish its requests (gunicorn's graceful_timeout,
# 30 s) plus a replacement's boot.
STALE_SECONDS = 120.0
RETRY_SECONDS = 1.0
SLOTS = 64  # booting workers the record can name; more at once count as "someone is booting"
_ENTRY = struct.Struct("=qd")  # a pid (or FREE, HANDOVER) and since when (CLOCK_MONOTONIC)


@dataclass
class Record:
    holder: int
    since: float
    booting: dict[int, float]  # pid: since when

    def fresh_booting(self, now: float) -> dict[int, float]:
        return {pid: since for pid, since in self.booting.items() if now - since <= STALE_SECONDS}


class Baton:
    """The record, in an unlinked temporary file made by the master and inherited by every
    worker it forks. Each change happens under a POSIX record lock (``lockf``), which belongs
    to the process that took it, so processes sharing the descriptor still exclude each other,
    and which the kernel drops if its holder dies."""

    def __init__(self) -> None:
        # Open for the master's lifetime; its workers inherit the descriptor.
        self._file = tempfile.TemporaryFile()
        self._write(Record(FREE, 0.0, {}))

    def _write(self, record: Record) -> None:
        entries = [(record.holder, record.since), *record.booting.items()][: SLOTS + 1]
        entries += [(FREE, 0.0)] * (SLOTS + 1 - len(entries))
        data = b"".join(_ENTRY.pack(pid, since) for pid, since in entries)
        os.pwrite(self._file.fileno(), data, 0)

    def _read(self) -> Record:
        data = os.pread(self._file.fileno(), _ENTRY.size * (SLOTS + 1), 0)
        entries = [_ENTRY.unpack_from(data, offset) for offset in range(0, len(data), _ENTRY.size)]
        (holder, since), booting = entries[0], entries[1:]
        return Record(holder, since, {pid: at for pid, at in booting if pid != FREE})

    @contextmanager
    def _record(self) -> Iterator[Record]:
        descriptor = self._file.fileno()
        fcntl.lockf(descriptor, fcntl.LOCK_EX)
        try:
            record = self._read()
            yield record
            self._write(record)
        finally:
            fcntl.lockf(descriptor, fcntl.LOCK_UN)

    def take(self, pid: int) -> bool:
        """Whether worker ``pid`` may recycle now (it is named as recycling from then on)."""
        now = time.monotonic()
        with self._record() as record:
            holder_free = record.holder in (FREE, pid) or now - record.since > STALE_SECONDS
            if not holder_free or record.fresh_booting(now).keys() - {pid}:
                return False
            record.holder, record.since = pid, now
            return True

    def booting(self, pid: int) -> None:
        """In a new worker, forked: it is booting (and takes over a recycled worker's hand)."""
        now = time.monotonic()
        with self._record() as record:
            if record.holder == HANDOVER:
                record.holder, record.since = FREE, 0.0
            record.booting = {**record.fresh_booting(now), pid: now}

    def ready(self, pid: int) -> None:
        """In a worker, warmed up: it no longer holds the others back."""
        with self._record() as record:
            record.booting.pop(pid, None)

    def exited(self, pid: int) -> None:
        """In the master, when worker ``pid`` has exited: if it was recycling, its replacement
        (the next worker forked) holds the others back until it is warm."""
        with self._record() as record:
            record.booting.pop(pid, None)
            if record.holder == pid:
                record.holder, record.since = HANDOVER, time.monotonic()

    def state(self) -> Record:
        with self._record() as record:
            return record


@dataclass
class Recycling:
    """``GUNICORN_MAX_REQUESTS`` (0: never) plus a random share of ``jitter``, one worker at a
    time. The hooks are gunicorn's, called by ``lukittu/gunicorn_conf.py``."""

    max_requests: int
    jitter: int
    baton: Baton | None = None

    def __post_init__(self) -> None:
        if self.max_requests and self.baton is None:
            self.baton = Baton()

    def pre_fork(self, worker: Any) -> None:
        """Master, before forking ``worker``: its own count."""
        worker.recycle_after = (
            self.max_requests + secrets.randbelow(self.jitter + 1) if self.max_requests else 0
        )
        worker.recycle_retry_at = 0.0

    def post_fork(self, worker: Any) -> None:
        if self.baton is not None:
            self.baton.booting(worker.pid)

    def child_exit(self, worker: Any) -> None:
        if self.baton is not None:
            self.baton.exited(worker.pid)

    def ready(self, worker: Any) -> None:
        """Worker, once warm and before it accepts a connection."""
        if self.baton is not None:
            self.baton.ready(worker.pid)

    def pre_request(self, worker: Any) -> None:
        """Worker, before each request: past its count and holding the baton, it stops
        accepting, answers this request with ``Connection: close``, finishes the requests in
        flight and exits; the master forks its replacement."""
        limit = getattr(worker, "recycle_after", 0)
        if not limit or worker.nr + 1 < limit or not worker.alive or self.baton is None:
            return
        now = time.monotonic()
        if now < worker.recycle_retry_at:
            return
        if not self.baton.take(worker.pid):
            worker.recycle_retry_at = now + RETRY_SECONDS
            return
        worker.log.info("Recycling worker %s after %s requests", worker.pid, worker.nr + 1)
        worker.alive = False
