"""A one-line progress bar on standard error, drawn only when it is a terminal.

CI logs get nothing: a bar redrawn with carriage returns is noise in a file."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TextIO

BAR_WIDTH = 28
REDRAW_INTERVAL = 0.1  # seconds between redraws
MIB = 1024 * 1024


class Progress(Protocol):
    def start(self, total: int | None) -> None: ...

    def advance(self, count: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """For a standard error that is not a terminal, or ``--no-progress``."""

    def start(self, total: int | None) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def finish(self) -> None:
        pass


def format_size(count: float) -> str:
    if count < 1024:
        return f"{int(count)} B"
    if count < MIB:
        return f"{count / 1024:.1f} KiB"
    return f"{count / MIB:.1f} MiB"


def render_line(label: str, done: int, total: int | None, elapsed: float) -> str:
    """``label [#####.....]  42% 4.2 MiB/10.0 MiB 3.1 MiB/s`` (no bar when the size is
    unknown)."""
    speed = f"{format_size(done / elapsed)}/s" if elapsed > 0 else ""
    if not total:
        return f"{label} {format_size(done)} {speed}".rstrip()
    fraction = min(1.0, done / total)
    filled = int(fraction * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    sizes = f"{format_size(done)}/{format_size(total)}"
    return f"{label} [{bar}] {fraction:4.0%} {sizes} {speed}".rstrip()


class Bar:
    """Redraws at most every REDRAW_INTERVAL seconds; ``start`` again (a retry) restarts it."""

    def __init__(
        self, stream: TextIO, label: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.label = label
        self.clock = clock
        self.total: int | None = None
        self.done = 0
        self.started = 0.0
        self.drawn_at = 0.0
        self.width = 0

    def start(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.started = self.drawn_at = self.clock()
        self.draw()

    def advance(self, count: int) -> None:
        self.done += count
        now = self.clock()
        if now - self.drawn_at >= REDRAW_INTERVAL:
            self.drawn_at = now
            self.draw()

    def finish(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()

    def draw(self) -> None:
        line = render_line(self.label, self.done, self.total, self.clock() - self.started)
        # Pad over a longer previous line.
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_for(stream: TextIO, label: str, *, enabled: bool = True) -> Progress:
    """A bar on ``stream`` if it is a terminal and bars are not turned off, else nothing."""
    if enabled and is_terminal(stream):
        return Bar(stream, label)
    return NoProgress()
