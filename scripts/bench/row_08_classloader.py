"""Row 8: the classloader's encrypted download of 10 MiB from S3 (moto) vs boto3's get_object
of the same object from moto, in MB/s."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

from scripts.bench.base import MeasureError
from scripts.bench.harness import Bench
from scripts.bench.results import Row, median, show
from scripts.bench.shop import ClientShop, delivery_shop, fetch_classloader
from scripts.bench.wire import Content
from scripts.bench.world import World

ROWS = {8}
THROUGHPUT_TARGET = 0.5


def fetch_raw(bench: Bench, key: str, content: Content) -> float:
    """Seconds to read the stored object straight from S3 with boto3, to its last byte."""
    started = time.perf_counter()
    body = bench.s3.get_object(Bucket=bench.bucket, Key=key)["Body"].read()
    elapsed = time.perf_counter() - started
    if hashlib.sha256(body).hexdigest() != content.sha256:
        raise MeasureError("get_object returned other bytes")
    return elapsed


def delivered_key(shop: ClientShop) -> str:
    from releases.models import ReleaseFile

    return ReleaseFile.objects.get(
        release__product_id=shop.product_id, release__latest=True, release__branch=None
    ).key


def measure(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """8: the classloader's encrypted download of 10 MiB from S3 (moto) vs boto3's
    get_object of the same object from moto, in MB/s."""
    shop = delivery_shop(bench, "Bench classloader S3", big, on_s3=True)
    key = delivered_key(shop)
    with bench.server("delivery-s3", s3_endpoint=bench.moto_url, workers=2, threads=4) as server:

        def classloader_vs_raw() -> tuple[str, str, float]:
            # Concurrent warm-ups, so that each worker has its key loaded and S3 opened once.
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: fetch_classloader(server.url, shop), range(8)))
            fetch_raw(bench, key, big)
            service: list[float] = []
            headers_in: list[float] = []
            raw: list[float] = []
            for number in range(rounds):
                order = [
                    (service, lambda: fetch_classloader(server.url, shop, headers_in)),
                    (raw, lambda: fetch_raw(bench, key, big)),
                ]
                for results, fetch in order if number % 2 == 0 else order[::-1]:
                    results.append(fetch())
            show("classloader", service)
            show("  of which until the headers (the checks, seats, record, S3 open)", headers_in)
            show("get_object", raw)
            a, b = len(big.data) / median(service) / 1e6, len(big.data) / median(raw) / 1e6
            return f"{a:.0f} MB/s", f"{b:.0f} MB/s", a / b

        bench.run(
            Row(
                8,
                "10 MiB classloader download (RSA session key, AES-GCM frames), S3 (moto): "
                "throughput of the service (A) vs boto3 get_object of the stored object (B)",
                THROUGHPUT_TARGET,
                at_least=True,
            ),
            classloader_vs_raw,
        )
