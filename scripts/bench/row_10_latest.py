"""Row 10: the update check (``latest``) in a team of 1,000 releases and 1,000 licenses vs the
bare /api/ 404, in requests per second on one server, READ_CLIENTS keep-alive clients."""

from __future__ import annotations

from scripts.bench.harness import Bench
from scripts.bench.results import Row, median
from scripts.bench.shop import delivery_shop
from scripts.bench.wire import BARE, READ_CLIENTS, Probe, rates_compared
from scripts.bench.world import World

ROWS = {10}
DELIVERY_LICENSES = 1_000
DELIVERY_RELEASES = 1_000
LATEST_TARGET = 0.6


def measure(bench: Bench, world: World, rounds: int) -> None:
    small = bench.content(4096, "delivery-latest.bin")
    shop = delivery_shop(
        bench,
        "Bench latest",
        small,
        on_s3=False,
        releases=DELIVERY_RELEASES,
        licenses=DELIVERY_LICENSES,
    )
    latest: Probe = (shop.path("releases/latest"), {}, (200, b'"details":"Release found"'))
    with bench.server("latest", s3_endpoint=None, workers=2, threads=4) as server:

        def latest_vs_bare() -> tuple[str, str, float]:
            results, _ = rates_compared(
                server.url, {"latest": latest, "bare 404": BARE}, rounds, server.process.pid
            )
            a, b = median(results["latest"]), median(results["bare 404"])
            return f"{a:.0f} req/s", f"{b:.0f} req/s", a / b

        bench.run(
            Row(
                10,
                f"GET latest (team of {DELIVERY_RELEASES:,} releases and {DELIVERY_LICENSES:,} "
                f"licenses) (A) vs bare /api/ 404 (B), requests per second, {READ_CLIENTS} "
                "keep-alive clients",
                LATEST_TARGET,
                at_least=True,
            ),
            latest_vs_bare,
        )
    # One note for the three Client API rows, printed with the last of them.
    bench.notes.append(
        "8: each classloader request carries a new session key (RSA-OAEP), takes its seats and "
        "records the download; timed from the request to the last byte, the frames decrypted "
        "and compared afterwards. 9: the worker streams from moto's S3 or local files. 10: the "
        "license has seat limits with the device's seats taken, so the seat check runs."
    )
