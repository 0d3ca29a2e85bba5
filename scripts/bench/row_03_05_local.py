"""Rows 3 and 5, on one server with local files: a 10 MiB upload end to end vs the in-process
floor (3), and a full update in a team of 10,000 releases vs a team of 10 (5)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

from scripts.bench.harness import Bench
from scripts.bench.results import Row, compared, show
from scripts.bench.wire import Content, upload_of
from scripts.bench.world import LICENSES, World

ROWS = {3, 5}
BIG_TEAM_RELEASES = 10_000
SMALL_TEAM_RELEASES = 10
METADATA_ITEMS = 20


def write_floor(content: Content, folder: Path) -> float:
    """What storing 10 MiB costs at the least: both digests and one durable write."""
    path = folder / f"floor-{uuid.uuid4().hex}.bin"
    started = time.perf_counter()
    hashlib.md5(content.data, usedforsecurity=False).hexdigest()
    hashlib.sha256(content.data).hexdigest()
    with path.open("xb") as handle:
        handle.write(content.data)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed


def measure(bench: Bench, world: World, big: Content, small: Content, rounds: int) -> None:
    """3: a 10 MiB upload on local files vs the floor. 5: a full update with a small file, in
    a team of 10,000 releases vs a team of 10."""
    [target] = world.team("Bench local", 1)
    upload = upload_of(target, big, bench.bodies)
    started = time.monotonic()
    big_team = world.populated_team("Bench big", BIG_TEAM_RELEASES)
    small_team = world.populated_team("Bench small", SMALL_TEAM_RELEASES)
    print(
        f"  made teams of {world.release_count(big_team):,} and "
        f"{world.release_count(small_team)} releases with files in "
        f"{time.monotonic() - started:.1f} s",
        flush=True,
    )
    metadata = [{"key": f"key-{n}", "value": f"value {n}"} for n in range(METADATA_ITEMS)]
    full = {
        name: upload_of(team, small, bench.bodies, metadata=metadata, licenseIds=team.license_ids)
        for name, team in (("big", big_team), ("small", small_team))
    }
    with bench.server("local", s3_endpoint=None, workers=2, threads=4) as server:

        def upload_vs_floor() -> tuple[str, str, float]:
            upload.checked(server.url)
            write_floor(big, bench.folder)
            service: list[float] = []
            floor: list[float] = []
            for _ in range(rounds):
                service.append(upload.checked(server.url))
                floor.append(write_floor(big, bench.folder))
            show("service", service)
            show("floor", floor)
            return compared(service, floor)

        def team_size() -> tuple[str, str, float]:
            for each in full.values():
                each.checked(server.url)
            times: dict[str, list[float]] = {"big": [], "small": []}
            for number in range(rounds * 6):
                for name in ("big", "small") if number % 2 == 0 else ("small", "big"):
                    times[name].append(full[name].checked(server.url))
            show(f"{BIG_TEAM_RELEASES:,} releases", times["big"])
            show(f"{SMALL_TEAM_RELEASES} releases", times["small"])
            return compared(times["big"], times["small"])

        bench.run(
            Row(
                3,
                "10 MiB upload, local files, end to end (A) vs in-process floor: MD5 + "
                "SHA-256 + write + fsync (B)",
                2.0,
            ),
            upload_vs_floor,
        )
        bench.run(
            Row(
                5,
                f"full update, 64 KiB file + {METADATA_ITEMS} metadata + {LICENSES} "
                f"licenses, local files: team of {BIG_TEAM_RELEASES:,} releases (A) vs "
                f"{SMALL_TEAM_RELEASES} (B)",
                1.1,
            ),
            team_size,
        )
