"""Row 9: a one-worker, one-thread server's peak memory growth while it streams a 10 MiB
classloader download, on local files and on S3, against the 6 MiB limit."""

from __future__ import annotations

from functools import partial

from scripts.bench.harness import Bench, Measurement, Server, memory_rows, peak_growth
from scripts.bench.shop import WARM_UP_VERSION, ClientShop, delivery_shop, fetch_classloader
from scripts.bench.wire import Content
from scripts.bench.world import World

ROWS = {9}


def measure(bench: Bench, world: World, big: Content, rounds: int) -> None:
    small = bench.content(4096, "delivery-warm-up.bin")

    def prepare(storage: str, endpoint: str | None) -> Measurement:
        shop = delivery_shop(
            bench,
            f"Bench classloader memory {storage}",
            big,
            on_s3=endpoint is not None,
            warm_up=small,
        )
        return partial(delivery_memory_growth, shop=shop, rounds=rounds)

    memory_rows(bench, 9, "streaming a 10 MiB classloader download", prepare)


def delivery_memory_growth(server: Server, shop: ClientShop, rounds: int) -> tuple[str, str, float]:
    """After a warm-up download of a small build, so that what grows is the streaming alone."""
    fetch_classloader(server.url, shop, version=WARM_UP_VERSION)
    return peak_growth(server, partial(fetch_classloader, server.url, shop), rounds)
