"""``python scripts/print_when_ready.py URL FILE``: once URL answers 200, print FILE.

``make run`` starts the server in the foreground and this beside it, so the demo team's summary
(ending with the export line) comes after the server's start-up lines, as the last thing on the
screen when the service starts serving. Standard library only: it starts in milliseconds."""

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

WAIT_SECONDS = 120


def main(url: str, file: str) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    sys.stdout.write("\n" + Path(file).read_text() + "\n")
                    sys.stdout.flush()
                    return 0
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    print(f"The server did not answer {url} within {WAIT_SECONDS} s.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
