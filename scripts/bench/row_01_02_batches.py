"""Rows 1 and 2, on one server with S3 throttled to 25 MB/s: eight parallel 10 MiB uploads of
one team vs eight teams (1), and a metadata-only update during such a batch vs idle (2)."""

from __future__ import annotations

import threading
import time

from scripts.bench.base import BIG, PARALLEL, REQUEST_TIMEOUT, MeasureError
from scripts.bench.harness import Bench
from scripts.bench.results import Row, compared, show
from scripts.bench.wire import Content, Target, Upload, metadata_update, parallel, upload_of
from scripts.bench.world import World

ROWS = {1, 2}
THROTTLE = 25_000_000  # bytes per second, each direction of each connection: "25 MB/s"


def probe_during_batch(
    base: str, uploads: list[Upload], target: Target, probe_round: int
) -> tuple[list[float], int]:
    """Metadata-only updates sent one after another while ``uploads`` run in parallel; each
    one sent before the batch ended counts, however long it then waited."""
    batch_done = threading.Event()
    latencies: list[float] = []
    failure: list[MeasureError] = []

    def probe() -> None:
        nonlocal probe_round
        time.sleep(0.1)  # the uploads are streaming by then
        while not batch_done.is_set():
            try:
                latencies.append(metadata_update(target, probe_round).checked(base))
            except MeasureError as error:
                failure.append(error)
                return
            probe_round += 1

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        parallel(uploads, base)
    finally:
        batch_done.set()
        prober.join(REQUEST_TIMEOUT)
    if failure:
        raise MeasureError(f"metadata update during the batch: {failure[0]}")
    return latencies, probe_round


def measure(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """1: one team vs eight teams on throttled S3. 2: a metadata-only update, busy vs idle."""
    one_team = world.team("Bench one team", PARALLEL + 1)
    probe_target = one_team.pop()
    eight_teams = [world.team(f"Bench team {number}", 1)[0] for number in range(PARALLEL)]
    one_team_uploads = [upload_of(target, big, bench.bodies) for target in one_team]
    eight_team_uploads = [upload_of(target, big, bench.bodies) for target in eight_teams]
    proxy = bench.proxy
    assert proxy is not None
    proxy.throttle(THROTTLE)
    with bench.server("s3-throttled", s3_endpoint=bench.proxy_url, workers=2, threads=4) as server:
        # Every measured release gets a file first, so each measured upload replaces one.
        for uploads in (one_team_uploads, eight_team_uploads):
            parallel([upload_of(u.target, bench.tiny, bench.bodies) for u in uploads], server.url)

        def batches() -> tuple[str, str, float]:
            one: list[float] = []
            eight: list[float] = []
            for number in range(rounds):
                order = [(one, one_team_uploads), (eight, eight_team_uploads)]
                for results, uploads in order if number % 2 == 0 else order[::-1]:
                    sent = proxy.bytes_to_upstream
                    results.append(parallel(uploads, server.url))
                    if proxy.bytes_to_upstream - sent < PARALLEL * BIG:
                        raise MeasureError("the uploads did not all go through the throttled proxy")
            show("one team", one)
            show(f"{PARALLEL} teams", eight)
            return compared(one, eight)

        def latency() -> tuple[str, str, float]:
            idle: list[float] = []
            busy: list[float] = []
            probe_round = 1
            for _ in range(rounds):
                for _ in range(8):
                    idle.append(metadata_update(probe_target, probe_round).checked(server.url))
                    probe_round += 1
                during, probe_round = probe_during_batch(
                    server.url, one_team_uploads, probe_target, probe_round
                )
                busy += during
            if not busy:
                raise MeasureError("no metadata update was sent while the batch ran")
            show("during the batch", busy)
            show("idle", idle)
            return compared(busy, idle)

        bench.run(
            Row(
                1,
                f"{PARALLEL} parallel 10 MiB uploads, S3 at 25 MB/s, batch wall time: "
                f"one team (A) vs {PARALLEL} teams (B)",
                1.3,
            ),
            batches,
        )
        bench.run(
            Row(2, "same-team metadata-only update latency: during batch 1 (A) vs idle (B)", 2.0),
            latency,
        )
    proxy.throttle(None)
