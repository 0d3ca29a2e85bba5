"""Row 12: the metadata-only Update Release vs the bare /api/ 404, in requests per second on one
server, READ_CLIENTS keep-alive clients, each updating a release of its own team."""

from __future__ import annotations

from scripts.bench.harness import Bench
from scripts.bench.results import Row, median
from scripts.bench.wire import BARE, READ_CLIENTS, Ask, metadata_update, rates_compared
from scripts.bench.world import World

ROWS = {12}
# Twice the ratio measured on the same machine before this row's work (three runs on a busy
# 2-core machine: 0.17x, 0.14x, 0.08x; their median 0.14x). The 404 it is measured against got
# three times cheaper meanwhile (the API skips the site's middleware): see README, "Benchmark".
UPDATE_TARGET = 0.28
UPDATE_REQUESTS = 600  # per path and round: an update takes several times a 404's time


def update_asks(world: World) -> list[Ask]:
    """One metadata-only update per client, each on a release of its own team: the clients
    measure the server's work per update, not one team's lock taken in turn."""
    asks = []
    for number in range(READ_CLIENTS):
        [target] = world.team(f"Bench update rate {number}", 1)
        update = metadata_update(target, 1)
        assert isinstance(update.body, bytes)
        headers = {"Authorization": f"Bearer {target.key}", "Content-Type": update.content_type}
        asks.append(
            Ask("PUT", target.path, headers, (200, target.release_id.encode()), update.body)
        )
    return asks


def measure(bench: Bench, world: World, rounds: int) -> None:
    asks = update_asks(world)
    with bench.server("update-rate", s3_endpoint=None, workers=2, threads=4) as server:

        def update_vs_bare() -> tuple[str, str, float]:
            results, _ = rates_compared(
                server.url,
                {"update": asks, "bare 404": BARE},
                rounds,
                server.process.pid,
                requests=UPDATE_REQUESTS,
            )
            a, b = median(results["update"]), median(results["bare 404"])
            return f"{a:.0f} req/s", f"{b:.0f} req/s", a / b

        bench.run(
            Row(
                12,
                "metadata-only Update Release (3 metadata, file kept) (A) vs bare /api/ 404 (B), "
                f"requests per second, {READ_CLIENTS} keep-alive clients, a team each",
                UPDATE_TARGET,
                at_least=True,
            ),
            update_vs_bare,
        )
    bench.notes.append(
        f"12: {UPDATE_REQUESTS} requests per path and round; each client sends the same "
        "update again and again (the service still takes the team lock and writes the "
        "release, its metadata, the audit entry and the webhook event each time)."
    )
