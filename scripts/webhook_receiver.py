"""A webhook receiver for trying the service's webhooks on one machine (docs, "Webhooks").

``serve`` listens on 127.0.0.1, answers every POST with 204 and appends it (headers and body) as
one JSON line to a log; ``--background`` prints its URL once it listens and goes on in the
background. ``verify`` waits for deliveries in that log and checks each signature both ways the
service signs: Standard Webhooks (``webhook-signature``) and Lukittu's (``X-Lukittu-Signature``).

    URL=$(python scripts/webhook_receiver.py serve --background --log var/received.jsonl \
          --pid-file var/receiver.pid)
    python scripts/webhook_receiver.py verify --secret whsec_... var/received.jsonl
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def _handler(log: Path) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            entry = {"path": self.path, "headers": dict(self.headers), "body": body.decode()}
            with log.open("a") as out:
                out.write(json.dumps(entry) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Receiver


def serve(args: argparse.Namespace) -> int:
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(log))
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    if args.background and os.fork():
        print(url, flush=True)
        return 0
    if args.background:
        # The child keeps no end of the caller's pipes, so $(...) returns at once.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    else:
        print(f"Receiving webhooks at {url}, logged to {log}", flush=True)
    if args.pid_file:
        Path(args.pid_file).write_text(f"{os.getpid()}\n")
    server.serve_forever()
    return 0


def _deliveries(log: Path, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.2)


def _lukittu_signature_valid(secret: str, headers: dict[str, str], body: str) -> bool:
    signed = f"{headers['X-Lukittu-Timestamp']}.{body}".encode()
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Lukittu-Signature"])


def verify(args: argparse.Namespace) -> int:
    deliveries = _deliveries(Path(args.log), args.count, args.timeout)
    if len(deliveries) < args.count:
        print(f"{len(deliveries)} deliveries within {args.timeout:g} s", file=sys.stderr)
        return 1
    failed = 0
    for delivery in deliveries:
        headers, body = delivery["headers"], delivery["body"]
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            Webhook(args.secret).verify(body, lowered)
            valid = _lukittu_signature_valid(args.secret, headers, body)
        except (WebhookVerificationError, KeyError):
            valid = False
        failed += not valid
        print(
            f"{lowered.get('webhook-id')} {json.loads(body)['type']}: "
            f"{'signatures valid' if valid else 'SIGNATURE INVALID'}"
        )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_args = commands.add_parser("serve", help="receive webhooks")
    serve_args.add_argument("--port", type=int, default=0, help="default: any free port")
    serve_args.add_argument("--log", default="var/received.jsonl")
    serve_args.add_argument("--background", action="store_true")
    serve_args.add_argument("--pid-file")
    verify_args = commands.add_parser("verify", help="check the signatures of what arrived")
    verify_args.add_argument("--secret", required=True, help="the webhook's whsec_... secret")
    verify_args.add_argument("--count", type=int, default=1, help="wait for this many")
    verify_args.add_argument("--timeout", type=float, default=30)
    verify_args.add_argument("log", nargs="?", default="var/received.jsonl")
    args = parser.parse_args(argv)
    return serve(args) if args.command == "serve" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
