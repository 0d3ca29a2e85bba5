"""Row 13: the tail of the 64 KiB classloader download from S3 (moto): CLIENTS clients, each
fetching on a new connection again and again for DURATION seconds; the 99th percentile vs the
median, and the slowest request vs one second."""

from __future__ import annotations

import statistics
import threading
import time

from scripts.bench.base import MeasureError
from scripts.bench.harness import Bench
from scripts.bench.results import Row, seconds
from scripts.bench.shop import delivery_shop, fetch_classloader
from scripts.bench.wire import Content
from scripts.bench.world import World

ROWS = {13}
CLIENTS = 8
DURATION = 60.0
TAIL_TARGET = 3.0
SLOWEST_LIMIT = 1.0


def latencies(base: str, shop: object, duration: float) -> list[float]:
    """Every request's seconds, CLIENTS threads fetching until ``duration`` has passed."""
    times: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client() -> None:
        while time.monotonic() < deadline and not failures:
            try:
                elapsed = fetch_classloader(base, shop)  # type: ignore[arg-type]
            except MeasureError as error:
                failures.append(str(error))
                return
            with lock:
                times.append(elapsed)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 120)
    if failures:
        raise MeasureError(failures[0])
    return times


def measure(bench: Bench, world: World, small: Content) -> None:
    shop = delivery_shop(bench, "Bench classloader tail", small, on_s3=True)
    with bench.server("tail", s3_endpoint=bench.moto_url, workers=2, threads=4) as server:
        measured: list[float] = []

        def p99_vs_p50() -> tuple[str, str, float]:
            # Each worker thread has loaded the team's key and opened S3 once.
            latencies(server.url, shop, 2.0)
            measured.extend(latencies(server.url, shop, DURATION))
            cuts = statistics.quantiles(measured, n=100)
            p50, p99 = statistics.median(measured), cuts[98]
            print(
                f"  {len(measured)} requests in {DURATION:.0f} s "
                f"({len(measured) / DURATION:.0f}/s): p50 {seconds(p50)}, p90 "
                f"{seconds(cuts[89])}, p99 {seconds(p99)}, slowest {seconds(max(measured))}"
            )
            return seconds(p99), seconds(p50), p99 / p50

        def slowest() -> tuple[str, str, float]:
            if not measured:
                raise MeasureError("the percentiles' run measured nothing")
            return seconds(max(measured)), seconds(SLOWEST_LIMIT), max(measured) / SLOWEST_LIMIT

        title = f"64 KiB classloader download, S3 (moto), {CLIENTS} clients for {DURATION:.0f} s"
        bench.run(Row(13, f"{title}: p99 (A) vs p50 (B)", TAIL_TARGET), p99_vs_p50)
        bench.run(Row(13, f"{title}: slowest request (A) vs 1 s (B)", 1.0), slowest)
