"""The Client API against the real server: gunicorn with two worker processes, requests over
the network, the database and storage inspected afterwards.

- A Java-loader-style client (``tests/loader.py``) gets a several-MiB JAR back exactly, and the
  plain download gives the same bytes, on local files and on S3; so does a product whose name,
  stored before the rule, has U+2028 in it.
- Both rate limits (per client address, per license key) are one count across the workers
  (with Redis; skipped without it).
- A session key used on one worker is refused by the other.
- Many new devices racing for a license's last seat through the API get it exactly once.

PostgreSQL when DATABASE_URL points at it, SQLite otherwise (tests/live.py)."""

import hashlib
import os
import threading
import time
import uuid
from typing import Any

import pytest
import requests

from delivery.models import Download, Seat, SessionKeyUse
from releases.models import Release
from teams.keys import key_pair_for
from teams.models import License
from teams.services import license_create
from tests.conftest import World
from tests.helpers import attach_file, make_jar
from tests.live import ACCESS_LINE, PROJECT_ROOT, live_server
from tests.loader import Loader, classloader_url, download_url

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 2
TIMEOUT = 60
GUNICORN_CONF = PROJECT_ROOT / "lukittu" / "gunicorn_conf.py"
# Out of the way of every test below but the rate limits'.
GENEROUS = {"CLIENT_IP_RATE": "100000/minute", "CLIENT_LICENSE_RATE": "100000/minute"}
MIB = 1024 * 1024


def s3_env(s3: Any) -> dict[str, str]:
    return {
        "AWS_STORAGE_BUCKET_NAME": s3.bucket,
        "AWS_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_REGION_NAME": "us-east-1",
    }


class Customer:
    """A license for ``world.product`` and what a loader built for the team knows."""

    def __init__(self, world: World, **limits: Any) -> None:
        self.world = world
        self.license, self.key = license_create(team=world.team, products=[world.product], **limits)
        self.public_key_pem = key_pair_for(world.team).public_key_pem

    def params(self, hardware_identifier: str = "machine-0000000001", **extra: str) -> dict:
        return {
            "licenseKey": self.key,
            "productId": str(self.world.product.id),
            "hardwareIdentifier": hardware_identifier,
            **extra,
        }


def get(server: Any, url: str, params: dict, **kwargs: Any) -> requests.Response:
    """One GET on a fresh connection (no session), so requests spread over the workers."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    return requests.get(server.url + url, params=params, headers=headers, timeout=TIMEOUT, **kwargs)


def run_together(calls: list) -> list:
    """Every ``call()`` in its own thread, released together; their results in order."""
    barrier = threading.Barrier(len(calls), timeout=TIMEOUT)
    results: list = [None] * len(calls)
    failures: list = []

    def run(index: int, call: Any) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    assert not failures, failures
    return results


def code_of(response: requests.Response) -> str | None:
    return response.json()["result"].get("code") if response.status_code != 200 else None


# --- The bytes, end to end -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_loader_gets_a_several_mib_jar_back_exactly(request, world, tmp_path, backend):
    env = dict(GENEROUS)
    if backend == "s3":
        env.update(s3_env(request.getfixturevalue("s3")))
    content = make_jar(
        "Manifest-Version: 1.0\r\nMain-Class: com.example.Loaded\r\n\r\n",
        # Random, so the archive does not compress: about 6 MiB on the wire.
        extra={"assets.bin": os.urandom(6 * MIB + 12_345)},
    )
    release = world.other_release  # 0.9.0, PUBLISHED, latest, main line
    file = attach_file(release, "app-0.9.0.jar", content, main_class_name="com.example.Loaded")
    customer = Customer(world)
    loaders = [Loader(customer.public_key_pem) for _ in range(4)]

    with live_server(tmp_path, workers=WORKERS, config_file=GUNICORN_CONF, extra_env=env) as server:
        pids = server.worker_pids()
        # Four loaders at once (two workers of four threads each), then the plain download.
        responses = run_together(
            [
                lambda number=number, loader=loader: get(
                    server,
                    classloader_url(world.team.id),
                    customer.params(f"machine-{number:010d}", sessionKey=loader.session_key_hex()),
                )
                for number, loader in enumerate(loaders)
            ]
        )
        plain = get(server, download_url(world.team.id), customer.params())

    for response, loader in zip(responses, loaders, strict=True):
        assert response.status_code == 200, response.text[:300]
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["X-File-Size"] == str(len(content))
        assert response.headers["X-Version"] == "0.9.0"
        assert response.headers["X-Main-Class"] == "com.example.Loaded"
        assert loader.decrypt(response.content) == content
        # 64 KiB of plaintext a frame, 32 bytes of framing each: streamed as it was read.
        assert len(response.content) == len(content) + 32 * -(-len(content) // (64 * 1024))
    assert plain.status_code == 200, plain.text[:300]
    assert plain.content == content
    if backend == "s3":
        assert plain.history and plain.history[0].status_code == 302
    else:
        assert plain.headers["X-Checksum-SHA256"] == hashlib.sha256(content).hexdigest()
    records = Download.objects.filter(license=customer.license)
    assert sorted(records.values_list("endpoint", flat=True)) == ["CLASSLOADER"] * 4 + ["DOWNLOAD"]
    assert set(records.values_list("file_sha256", flat=True)) == {file.sha256}
    assert Seat.objects.filter(license=customer.license, kind=Seat.Kind.HWID).count() == 4
    assert "Traceback" not in server.log_text(), server.log_text()
    assert {pid for pid, _ in server.served_by()} <= set(pids)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_product_named_with_a_line_separator_is_delivered_through_gunicorn(
    request, world, tmp_path, backend
):
    """A name stored before unprintable characters were refused: gunicorn refuses a header
    with a line break in it, so the name goes out with a space for U+2028, and the one
    device the license allows gets its build (and keeps its seat for the next request)."""
    env = dict(GENEROUS)
    if backend == "s3":
        env.update(s3_env(request.getfixturevalue("s3")))
    content = make_jar(extra={"a.bin": os.urandom(100_000)})
    attach_file(world.other_release, "app.jar", content)
    type(world.product).objects.filter(pk=world.product.pk).update(name="Old\u2028name")
    customer = Customer(world, hwid_limit=1)
    loader = Loader(customer.public_key_pem)

    with live_server(tmp_path, config_file=GUNICORN_CONF, extra_env=env) as server:
        loaded = get(
            server,
            classloader_url(world.team.id),
            customer.params(sessionKey=loader.session_key_hex()),
        )
        plain = get(server, download_url(world.team.id), customer.params())

    assert loaded.status_code == 200, loaded.text[:300]
    assert loaded.headers["X-Product-Name"] == "Old name"
    assert loader.decrypt(loaded.content) == content
    assert plain.status_code == 200, plain.text[:300]
    assert plain.content == content
    assert Download.objects.filter(license=customer.license).count() == 2
    assert Seat.objects.filter(license=customer.license, kind=Seat.Kind.HWID).count() == 1
    assert "Traceback" not in server.log_text(), server.log_text()


# --- Rate limits: one count for every worker ---------------------------------------------------

LIMIT = 6
BURST = 10
MINUTE = 60


def unique_address() -> str:
    """An address of this test's own: the counters live in the shared Redis."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="needs Redis to share the counts between workers: set REDIS_URL",
)
def test_both_rate_limits_are_one_count_across_workers(world, tmp_path):
    # Big enough that serving one takes a worker a while: a burst cannot be drained by one
    # worker before the other wakes up.
    attach_file(world.other_release, "app.jar", make_jar(extra={"a.bin": os.urandom(3 * MIB)}))
    env = {
        "CLIENT_IP_RATE": f"{LIMIT}/minute",
        "CLIENT_LICENSE_RATE": f"{LIMIT}/minute",
        # The address comes from X-Forwarded-For, so each burst has addresses of its own.
        "NUM_PROXIES": "1",
    }

    def check(customer: Customer, address: str) -> requests.Response:
        session_key = Loader(customer.public_key_pem).session_key_hex()
        return get(
            server,
            classloader_url(world.team.id),
            customer.params(sessionKey=session_key),
            headers={"X-Forwarded-For": address},
        )

    # Sync workers serve one request at a time, so a parallel burst on fresh connections is
    # split between the two processes.
    with live_server(tmp_path, workers=WORKERS, extra_env=env) as server:
        pids = server.every_worker_serving()
        # Fixed one-minute windows: a burst that straddles a boundary is counted in two, so it
        # is repeated once with new identities (a burst takes well under a minute).
        for _ in range(2):
            window = int(time.time() // MINUTE)
            # One address, a license each: only the address's count can refuse.
            address = unique_address()
            customers = [Customer(world) for _ in range(BURST)]
            by_address = run_together([lambda c=c, a=address: check(c, a) for c in customers])
            other_address = check(Customer(world), unique_address())
            # One license, an address each: only the license's count can refuse.
            shared = Customer(world)
            by_license = run_together([lambda c=shared: check(c, unique_address())] * BURST)
            other_license = check(Customer(world), unique_address())
            if int(time.time() // MINUTE) == window:
                break

    for burst in (by_address, by_license):
        outcomes = sorted(code_of(response) or "OK" for response in burst)
        assert outcomes == ["OK"] * LIMIT + ["RATE_LIMIT"] * (BURST - LIMIT), outcomes
        for response in burst:
            if response.status_code != 200:
                assert response.status_code == 429
                assert response.json()["result"]["details"] == "Rate limited"
    # The other address and the other license had counts of their own.
    assert other_address.status_code == 200, other_address.text
    assert other_license.status_code == 200, other_license.text
    # Both workers served part of the bursts (the access log's lines: pid, status, path).
    lines = server.access_log.read_text().splitlines()
    bursts = {
        int(match[1])
        for line in lines
        if "/verification/classloader" in line and (match := ACCESS_LINE.match(line))
    }
    assert bursts == set(pids), lines


# --- Session keys: once, whichever worker ------------------------------------------------------


def test_a_session_key_used_on_one_worker_is_refused_by_the_other(world, tmp_path):
    # Big enough that a reader that stops reading leaves its worker blocked in send().
    content = make_jar(extra={"assets.bin": os.urandom(16 * MIB)})
    attach_file(world.other_release, "app.jar", content)
    customer = Customer(world)
    loader = Loader(customer.public_key_pem)
    params = customer.params(sessionKey=loader.session_key_hex())

    # Sync workers: one busy streaming to a client that does not read cannot take the next
    # connection, so the replay is served by the other one.
    with live_server(tmp_path, workers=WORKERS, extra_env=GENEROUS) as server:
        pids = server.worker_pids()
        first = requests.get(
            server.url + classloader_url(world.team.id),
            params=params,
            headers={"Connection": "close"},
            stream=True,
            timeout=TIMEOUT,
        )
        try:
            assert first.status_code == 200
            first.raw.read(1024)  # the stream has started; the rest waits in the worker
            replays = [get(server, classloader_url(world.team.id), params) for _ in range(3)]
        finally:
            first.close()
        # The first worker is free again: more replays, now on either worker.
        replays += [get(server, classloader_url(world.team.id), params) for _ in range(3)]
        new_key = get(
            server,
            classloader_url(world.team.id),
            customer.params(sessionKey=Loader(customer.public_key_pem).session_key_hex()),
        )

    for replay in replays:
        assert replay.status_code == 429, replay.text
        assert replay.json()["result"] == {
            **replay.json()["result"],
            "valid": False,
            "code": "RATE_LIMIT",
            "details": "Rate limited",
        }
    assert new_key.status_code == 200
    assert SessionKeyUse.objects.filter(team=world.team).count() == 2
    assert Download.objects.filter(license=customer.license).count() == 2
    served = server.served_by()
    # The replays sent while the first worker streamed were the other worker's (gunicorn logs
    # a request once it has ended, so they come first), and the first request was not.
    refusals = [pid for pid, status in served if status == 429]
    early = refusals[0]
    assert refusals[:3] == [early] * 3, served
    assert any(status == 200 and pid != early for pid, status in served), (served, pids)
    assert {pid for pid, _ in served} <= set(pids)


# --- Seats: the last one goes once ---------------------------------------------------------------

RACERS = 8
ROUNDS = 3


@pytest.mark.parametrize("endpoint", ["classloader", "download"])
def test_new_devices_racing_for_the_last_seat_get_it_once(world, tmp_path, endpoint):
    attach_file(world.other_release, "app.jar", make_jar(extra={"a.bin": os.urandom(200_000)}))
    # Two workers of four threads: all eight requests are in flight at once, each with its own
    # database connection.
    with live_server(
        tmp_path, workers=WORKERS, config_file=GUNICORN_CONF, extra_env=GENEROUS
    ) as server:
        pids = server.worker_pids()
        results = []
        for round_number in range(ROUNDS):
            # One seat left: a device already holds the other.
            customer = Customer(world, hwid_limit=2)
            assert get(server, download_url(world.team.id), customer.params()).status_code == 200

            def claim(
                number: int, customer: Customer = customer, round_number: int = round_number
            ) -> requests.Response:
                hardware = f"racer-{round_number}-{number:04d}"
                if endpoint == "download":
                    return get(server, download_url(world.team.id), customer.params(hardware))
                key = Loader(customer.public_key_pem).session_key_hex()
                url = classloader_url(world.team.id)
                return get(server, url, customer.params(hardware, sessionKey=key))

            responses = run_together([lambda n=n: claim(n) for n in range(RACERS)])
            results.append((customer, responses))

    for customer, responses in results:
        outcomes = sorted(code_of(response) or "OK" for response in responses)
        assert outcomes == ["HWID_LIMIT_REACHED"] * (RACERS - 1) + ["OK"], outcomes
        seats = Seat.objects.filter(license=customer.license, kind=Seat.Kind.HWID)
        assert seats.count() == 2
        assert Download.objects.filter(license=customer.license).count() == 2
        assert License.objects.get(pk=customer.license.pk).hwid_limit == 2
    assert Release.objects.filter(pk=world.other_release.pk, latest=True).exists()
    assert "Traceback" not in server.log_text(), server.log_text()
    assert {pid for pid, _ in server.served_by()} <= set(pids)
