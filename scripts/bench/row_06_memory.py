"""Row 6: a one-worker, one-thread server's peak memory growth while it takes a 10 MiB upload,
on local files and on S3, against the 6 MiB limit."""

from __future__ import annotations

from scripts.bench.harness import Bench, Measurement, memory_rows, peak_growth
from scripts.bench.wire import Content, upload_of
from scripts.bench.world import World

ROWS = {6}


def measure(bench: Bench, world: World, big: Content, rounds: int) -> None:
    def prepare(storage: str, endpoint: str | None) -> Measurement:
        [target] = world.team(f"Bench memory {storage}", 1)
        upload = upload_of(target, big, bench.bodies)
        return lambda server: peak_growth(server, lambda: upload.checked(server.url), rounds)

    memory_rows(bench, 6, "taking a 10 MiB upload", prepare)
