"""``make profile ROW=<n>``: the row's servers run under py-spy, which samples whichever thread
of each worker holds the GIL, and the functions where the CPU went are printed when each
server stops (the samples stay in the folder, one collapsed-stack file a server, for a flame
graph: ``flamegraph.pl``, speedscope or inferno read them)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scripts.bench.harness import Server

RATE = 250  # samples a second
TOP = 25


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: make install (it is in the test extras)")
    return found


@contextmanager
def profiled(server: Server, folder: Path | None) -> Iterator[None]:
    """Samples every worker of ``server`` while the block runs (nothing without a folder)."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{server.name.replace(' ', '-')}.txt"
    # The master and, with --subprocesses, every worker it forks (a recycled worker's
    # replacement too). --gil: only the thread running Python is sampled, so waits (on the
    # database, a lock, the poller) are left out and the samples say where the CPU went.
    command = [py_spy(), "record", "--pid", str(server.process.pid), "--subprocesses", "--gil"]
    command += ["--rate", str(RATE), "--format", "raw", "--nolineno", "--output", str(output)]
    recorders = [
        (
            output,
            subprocess.Popen(  # noqa: S603  (our own tool, no shell)
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            ),
        )
    ]
    try:
        yield
    finally:
        for _, recorder in recorders:
            with suppress(ProcessLookupError):
                recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for _, recorder in recorders:
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()
        outputs = [output for output, _ in recorders if output.exists()]
        print(summary(server.name, outputs), flush=True)


def stacks(paths: list[Path]) -> Iterator[tuple[list[str], int]]:
    """Each sampled stack (outermost frame first, the thread's name left out) and its count."""
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                yield frames.split(";")[1:], int(count)


# Where the service's own code lives: the "total" list shows only these functions.
OWN_CODE = ("(lukittu/", "(releases/", "(teams/", "(delivery/", "(webhooks/")


def summary(name: str, paths: list[Path], top: int = TOP) -> str:
    """The service's functions that were on the stack in most samples (total), and the
    functions of any code that were running themselves (self), each as a share of every
    sample taken."""
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks(paths):
        samples += count
        for frame in set(frames):
            if any(package in frame for package in OWN_CODE):
                total[frame] += count
        if frames:
            own[frames[-1]] += count
    if not samples:
        return f"\n## Profile of {name}: no samples ({', '.join(map(str, paths)) or 'no file'})"
    lines = [f"\n## Profile of {name}: {samples} samples at {RATE}/s, files in {paths[0].parent}"]
    for title, counter in (("total (the service's code)", total), ("self (any code)", own)):
        lines.append(f"  top {top} by {title}:")
        lines += [
            f"  {100 * count / samples:5.1f}%  {frame}" for frame, count in counter.most_common(top)
        ]
    return "\n".join(lines)


def folder_from_environment() -> Path | None:
    value = os.environ.get("BENCH_PROFILE")
    return Path(value).resolve() if value else None
