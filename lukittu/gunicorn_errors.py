"""Gunicorn's own refusals in the service's envelope.

Some requests never reach Django: a request line or headers over gunicorn's limits
(``lukittu/gunicorn_conf.py``), a malformed request line or header, a body framing gunicorn
cannot read. Gunicorn answers those itself, by default with an HTML page. Clients of this
service parse JSON, so ``install`` makes those answers the envelope every other error has,
with gunicorn's own explanation in ``details`` (what was over which limit). Standard library
only: this runs in gunicorn's master, before Django is loaded."""

import json
from datetime import UTC, datetime
from typing import Any

from gunicorn import util

# The seed's error codes for the statuses gunicorn sends; anything else it refuses is the
# request's fault.
CODES = {403: "FORBIDDEN", 500: "INTERNAL_SERVER_ERROR"}
HINTS = {
    414: "Shorten the query string: long values belong in the body.",
    431: "Send fewer or shorter headers.",
}


def envelope_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response: ``status`` with gunicorn's ``reason`` and its ``message``
    (empty for a 500, whose cause is in the log) as the envelope's ``details``."""
    details = f"{reason}: {message}" if message else reason
    if status in HINTS:
        details = f"{details}. {HINTS[status]}"
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    body = json.dumps(
        {
            "data": None,
            "result": {
                "timestamp": timestamp,
                "valid": False,
                "details": details,
                "code": CODES.get(status, "BAD_REQUEST"),
            },
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, envelope_response(status_int, reason, mesg))


def install() -> None:
    """Answer gunicorn's refusals with ``envelope_response``: its workers send them through
    ``gunicorn.util.write_error``, which this replaces (in the master, so every worker forked
    from it has it)."""
    util.write_error = _write_error
