"""Row 7: Get Release (a file, 20 metadata, 3 licenses) vs the bare /api/ 404, in requests per
second on one server, each path driven by READ_CLIENTS keep-alive clients in turn."""

from __future__ import annotations

import hashlib
import uuid

from scripts.bench.base import FAKE_FILE_SIZE
from scripts.bench.harness import Bench
from scripts.bench.results import Row, median
from scripts.bench.wire import BARE, READ_CLIENTS, READ_REQUESTS, Probe, Target, rates_compared
from scripts.bench.world import World

ROWS = {7}
READ_METADATA = 20
READ_LICENSES = 3
READ_TARGET = 0.5


def measure(bench: Bench, world: World, rounds: int) -> None:
    target = release_to_read(world)
    read: Probe = (
        target.path,
        {"Authorization": f"Bearer {target.key}"},
        (200, target.release_id.encode()),
    )
    with bench.server("reads", s3_endpoint=None, workers=2, threads=4) as server:

        def release_vs_bare() -> tuple[str, str, float]:
            probes = {"one release": read, "bare 404": BARE}
            results, opened = rates_compared(server.url, probes, rounds, server.process.pid)
            # READ_CLIENTS per run, plus one each time a recycled worker (gunicorn's
            # max_requests) or the keep-alive timeout closed a connection.
            print(f"  connections opened: {opened} for {2 * rounds} runs of {READ_CLIENTS}")
            release, bare = median(results["one release"]), median(results["bare 404"])
            return f"{release:.0f} req/s", f"{bare:.0f} req/s", release / bare

        bench.run(
            Row(
                7,
                f"GET one release ({READ_METADATA} metadata, {READ_LICENSES} licenses, a file) "
                f"(A) vs bare /api/ 404 (B), requests per second, {READ_CLIENTS} keep-alive "
                "clients",
                READ_TARGET,
                at_least=True,
            ),
            release_vs_bare,
        )
    bench.notes.append(
        f"7: {READ_REQUESTS} requests per path and round from {READ_CLIENTS} keep-alive client "
        f"threads in this process, the two paths in turn on one server; a higher ratio is "
        f"better."
    )


def release_to_read(world: World) -> Target:
    """A published release with a file (a row: the object need not exist), READ_METADATA
    metadata items and READ_LICENSES licenses, as Get Release answers it in real use."""
    from django.db import transaction

    from releases.models import Release, ReleaseFile, ReleaseLicense, ReleaseMetadata
    from teams.services import license_create

    with transaction.atomic():
        [target] = world.team("Bench reads", 1)
        release = Release.objects.select_related("team").get(pk=target.release_id)
        team = release.team
        file_id = uuid.uuid4()
        ReleaseFile.objects.create(
            id=file_id,
            team=team,
            release=release,
            key=f"releases/{team.pk}/{release.pk}/{file_id}.jar",
            size=FAKE_FILE_SIZE,
            name="build.jar",
            checksum=hashlib.md5(b"not stored", usedforsecurity=False).hexdigest(),
            sha256=hashlib.sha256(b"not stored").hexdigest(),
            main_class_name="com.example.Main",
        )
        ReleaseMetadata.objects.bulk_create(
            ReleaseMetadata(release=release, position=n, key=f"key-{n}", value=f"value {n}")
            for n in range(READ_METADATA)
        )
        licenses = [license_create(team=team)[0] for _ in range(READ_LICENSES)]
        ReleaseLicense.objects.bulk_create(
            ReleaseLicense(release=release, license=license) for license in licenses
        )
    target.license_ids = [str(license.pk) for license in licenses]
    return target
