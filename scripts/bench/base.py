"""What every part of the benchmark shares: sizes, limits, the two ways it can fail."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
MIB = 1024 * 1024
BIG = 10 * MIB
SMALL = 64 * 1024
GROWTH_LIMIT = 6 * MIB
RELEASES_PER_PRODUCT = 100
FAKE_FILE_SIZE = MIB
PARALLEL = 8

# Every wait is bounded.
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 120.0
MIGRATE_TIMEOUT = 300.0
CLIENT_BLOCK = 256 * 1024


class SetupError(Exception):
    """The benchmark could not set itself up: the only reason for a non-zero exit."""


class MeasureError(Exception):
    """A request of a measurement failed; its row reports this instead of a figure."""
