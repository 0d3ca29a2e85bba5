"""Row 4: a 10 MiB upload through the service to S3 (moto) vs boto3's put_object of the same
bytes to moto."""

from __future__ import annotations

import time
import uuid

from scripts.bench.base import MeasureError
from scripts.bench.harness import Bench
from scripts.bench.results import Row, compared, show
from scripts.bench.wire import Content, upload_of
from scripts.bench.world import World

ROWS = {4}


def put_direct(bench: Bench, content: Content) -> float:
    key = f"direct/{uuid.uuid4().hex}.bin"
    started = time.perf_counter()
    with content.path.open("rb") as body:
        answer = bench.s3.put_object(Bucket=bench.bucket, Key=key, Body=body)
    elapsed = time.perf_counter() - started
    if answer.get("ETag", "").strip('"') != content.md5:
        raise MeasureError(f"put_object stored something else (ETag {answer.get('ETag')})")
    bench.s3.delete_object(Bucket=bench.bucket, Key=key)
    return elapsed


def measure(bench: Bench, world: World, big: Content, rounds: int) -> None:
    """4: a 10 MiB upload through the service to moto vs boto3's put_object to moto."""
    [target] = world.team("Bench s3", 1)
    upload = upload_of(target, big, bench.bodies)
    with bench.server("s3", s3_endpoint=bench.moto_url, workers=2, threads=4) as server:

        def service_vs_boto3() -> tuple[str, str, float]:
            upload.checked(server.url)
            put_direct(bench, big)
            service: list[float] = []
            direct: list[float] = []
            for _ in range(rounds):
                service.append(upload.checked(server.url))
                direct.append(put_direct(bench, big))
            show("service", service)
            show("put_object", direct)
            return compared(service, direct)

        bench.run(
            Row(
                4,
                "10 MiB upload, S3 (moto, unthrottled), end to end (A) vs boto3 put_object "
                "of the same bytes to moto (B)",
                1.5,
            ),
            service_vs_boto3,
        )
