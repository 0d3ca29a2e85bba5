"""``make bench`` measures every row; ``python -m scripts.bench 4 8`` only the rows named
(``python scripts/bench 4 8`` does the same from anywhere). With ``BENCH_PROFILE=<folder>``
(``make profile ROW=<n>``) the servers run under py-spy (``scripts/bench/profile.py``)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if not __package__:
    # Run as ``python scripts/bench``: the repository goes on the path, instead of this folder
    # (whose module names would hide any library's of the same name).
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from scripts.bench import (
    row_01_02_batches,
    row_03_05_local,
    row_04_s3,
    row_06_memory,
    row_07_reads,
    row_08_classloader,
    row_09_classloader_memory,
    row_10_latest,
    row_11_webhooks,
    row_12_update_rate,
    row_13_classloader_tail,
    row_14_first_s3,
)
from scripts.bench.base import BIG, RELEASES_PER_PRODUCT, SMALL, SetupError
from scripts.bench.harness import Bench
from scripts.bench.results import table_markdown, table_text


def on_sigterm(signum: int, frame: Any) -> None:
    # Once: the cleanup that this starts must not be interrupted by a repeated SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> int:
    """Every row, or only those named on the command line."""
    only = {int(number) for number in sys.argv[1:]}
    signal.signal(signal.SIGTERM, on_sigterm)
    bench = Bench()
    try:
        print("Setting up: PostgreSQL database, Redis, moto S3 server, TCP proxy ...", flush=True)
        bench.setup()
        assert bench.world is not None
        print(
            f"  database {bench.database}, Redis: {bench.redis_url or 'none'}, "
            f"moto at {bench.moto_url}, proxy at {bench.proxy_url}",
            flush=True,
        )
        for note in bench.notes:
            print(f"  NOTE: {note}", flush=True)
        big = bench.content(BIG, "content-10mib.bin")
        small = bench.content(SMALL, "content-64kib.bin")
        world = bench.world
        measurements: list[tuple[set[int], Callable[[], None]]] = [
            (
                row_01_02_batches.ROWS,
                lambda: row_01_02_batches.measure(bench, world, big, rounds=5),
            ),
            (
                row_03_05_local.ROWS,
                lambda: row_03_05_local.measure(bench, world, big, small, rounds=9),
            ),
            (row_04_s3.ROWS, lambda: row_04_s3.measure(bench, world, big, rounds=9)),
            (row_06_memory.ROWS, lambda: row_06_memory.measure(bench, world, big, rounds=3)),
            (row_07_reads.ROWS, lambda: row_07_reads.measure(bench, world, rounds=5)),
            (
                row_08_classloader.ROWS,
                lambda: row_08_classloader.measure(bench, world, big, rounds=9),
            ),
            (
                row_09_classloader_memory.ROWS,
                lambda: row_09_classloader_memory.measure(bench, world, big, rounds=3),
            ),
            (row_10_latest.ROWS, lambda: row_10_latest.measure(bench, world, rounds=5)),
            (row_11_webhooks.ROWS, lambda: row_11_webhooks.measure(bench, world, rounds=9)),
            (row_12_update_rate.ROWS, lambda: row_12_update_rate.measure(bench, world, rounds=5)),
            (
                row_13_classloader_tail.ROWS,
                lambda: row_13_classloader_tail.measure(bench, world, small),
            ),
            (row_14_first_s3.ROWS, lambda: row_14_first_s3.measure(bench, world, small)),
        ]
        for numbers, measure in measurements:
            if not only or numbers & only:
                measure()
        report(bench, time.monotonic() - bench.started)
        return 0
    except SetupError as error:
        print(f"\nSETUP FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()


def report(bench: Bench, elapsed: float) -> None:
    rows = sorted(bench.rows, key=lambda row: row.number)
    load = os.getloadavg()
    context = [
        f"{os.cpu_count()} CPUs (load average {load[0]:.1f} at the end); PostgreSQL 127.0.0.1; "
        + (f"Redis {bench.redis_url}" if bench.redis_url else "no Redis")
        + "; gunicorn -c lukittu/gunicorn_conf.py (gthread), 2 workers x 4 threads, 1 x 1 for 6 "
        "and 9, 1 x 4 for 14; "
        f"S3 is moto_server. Ratio = A / B, each the median of several runs, A and B "
        f"interleaved. Run time {elapsed:.0f} s.",
        "1 and 2: S3 behind a TCP proxy throttled to 25 MB/s per connection and direction. "
        "3: the floor includes an fsync of the written file, as the service fsyncs the stored "
        "file (and its folder). 5: 10,000 releases in "
        f"{row_03_05_local.BIG_TEAM_RELEASES // RELEASES_PER_PRODUCT} products, each with a "
        "file row (the objects are not stored) and the team's stored bytes in step. 6: VmHWM "
        "after minus "
        "VmRSS before, peak reset with /proc/<pid>/clear_refs.",
        *bench.notes,
        *(f"Error in {row.number}: {row.error}" for row in rows if row.error),
    ]
    print("\n" + table_text(rows))
    print("\n".join(context))
    print("\nAs Markdown:\n")
    print(table_markdown(rows))
    print()
    print("\n\n".join(context))


if __name__ == "__main__":
    sys.exit(main())
