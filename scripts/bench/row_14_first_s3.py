"""Row 14: a freshly booted one-worker server's peak memory growth on its first S3 upload and
on its first S3 download (a classloader request), against the 6 MiB limit. The server gets no
warm-up: what the first storage call costs after a worker starts is what is measured."""

from __future__ import annotations

from functools import partial

from scripts.bench.base import GROWTH_LIMIT
from scripts.bench.harness import Bench, peak_growth
from scripts.bench.results import Row
from scripts.bench.shop import delivery_shop, fetch_classloader
from scripts.bench.wire import Content, upload_of
from scripts.bench.world import World

ROWS = {14}
THREADS = 4  # GUNICORN_THREADS' default: the first call may land on any of them


def measure(bench: Bench, world: World, small: Content) -> None:
    [target] = world.team("Bench first S3 upload", 1)
    upload = upload_of(target, small, bench.bodies)
    shop = delivery_shop(bench, "Bench first S3 download", small, on_s3=True)
    actions = (
        ("upload (64 KiB)", lambda url: upload.checked(url)),
        ("classloader download (64 KiB)", lambda url: fetch_classloader(url, shop)),
    )
    for name, action in actions:
        with bench.server(
            f"first-s3-{name.split()[0]}",
            s3_endpoint=bench.moto_url,
            workers=1,
            threads=THREADS,
            warm=False,
        ) as server:
            bench.run(
                Row(
                    14,
                    f"worker peak memory growth on its first S3 {name} after boot, 1 worker x "
                    f"{THREADS} threads (A) vs the {GROWTH_LIMIT >> 20} MiB limit (B)",
                    1.0,
                    strict=True,
                ),
                partial(peak_growth, server, partial(action, server.url), 1),
            )
