"""Faults a production deployment meets, injected for real against gunicorn, then the rows and
the stored objects inspected:

- a client that sends half the file and half-closes its socket, or resets it mid-body;
- a gunicorn timeout (``SystemExit`` in the worker) while the replaced object's delete hangs;
- a COMMIT that PostgreSQL carried out but whose answer was lost (a proxy drops it);
- a storage PUT that stalls while another write of the same team goes on;
- parallel uploads racing for the last of the team's storage;
- a storage PUT answered, or a locked write reached, only after the reconciler ran;
- a worker killed mid-upload, whose reservation must not hold the team's quota for long.

In every case nothing is lost: the committed rows say what each object is, and
``reconcile_storage`` finishes what the request could not."""

import hashlib
import io
import json
import os
import signal
import socket
import struct
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from releases.models import LedgerEntry, Release, ReleaseFile
from teams.models import Team
from tests.helpers import (
    attach_file,
    make_jar,
    put_release,
    read_object,
    release_url,
    stored_objects,
    team_state,
    update_data,
)
from tests.live import live_server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 60
OLD_BUILD = make_jar("Manifest-Version: 1.0\r\nMain-Class: com.example.Old\r\n\r\n")
NEW_BUILD = make_jar(
    "Manifest-Version: 1.0\r\nMain-Class: com.example.New\r\n\r\n",
    extra={"payload.bin": hashlib.sha256(b"seed").digest() * 40_000},  # ~1.3 MB
)


def multipart(data, file):
    boundary = uuid.uuid4().hex
    name, content = file
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n'.encode()
        + json.dumps(data).encode()
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{name}"\r\nContent-Type: application/java-archive\r\n\r\n'.encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def raw_request(world, body, content_type, *, release=None):
    """The request line and headers of a PUT announcing all of ``body``."""
    release = release or world.release
    path = release_url(world.team.id, release.id)
    return (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {world.key}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()


def open_socket(server):
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=TIMEOUT)


def read_response(sock):
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def wait_until_served(server, world):
    """A request after the faulty one: a single sync worker serves it only once it has
    finished with the faulty one."""
    response = requests.get(
        server.url + release_url(world.team.id, world.release.id),
        headers={"Authorization": f"Bearer {world.key}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def prepared(world):
    """The owner's release is PUBLISHED and latest, with a stored build."""
    Release.objects.filter(pk=world.other_release.pk).update(latest=False)
    Release.objects.filter(pk=world.release.pk).update(status="PUBLISHED", latest=True)
    world.release.refresh_from_db()
    world.old_file = attach_file(world.release, "old.jar", OLD_BUILD, "com.example.Old")
    return world


def destructive(world):
    """Applied without its file, this would delete the build and move latest."""
    return update_data(world.release, version="9.9.9", keepExistingFile=False, setAsLatest=True)


def assert_old_build_intact(world, before):
    assert team_state(world.team) == before
    row = ReleaseFile.objects.get(release=world.release)
    assert row.key == world.old_file.key
    assert read_object(row.key) == OLD_BUILD
    assert not LedgerEntry.objects.exists()


# --- Clients that vanish mid-body --------------------------------------------------------


def test_half_the_file_then_a_half_close_is_400_and_changes_nothing(prepared, tmp_path):
    body, content_type = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    before = team_state(prepared.team)
    with live_server(tmp_path) as server, open_socket(server) as sock:
        sock.sendall(raw_request(prepared, body, content_type) + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)  # the client is done sending, and still listening
        status, answer = read_response(sock)
    assert status == 400
    assert answer["result"]["details"] == "Incomplete request body"
    assert answer["result"]["code"] == "BAD_REQUEST"
    assert_old_build_intact(prepared, before)


def test_a_reset_mid_body_changes_nothing(prepared, tmp_path):
    body, content_type = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    before = team_state(prepared.team)
    with live_server(tmp_path) as server:
        sock = open_socket(server)
        sock.sendall(raw_request(prepared, body, content_type) + body[: len(body) // 2])
        # Close with an RST instead of a FIN: what a killed client or a dropped network does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_until_served(server, prepared)
    assert_old_build_intact(prepared, before)
    assert not list((tmp_path / "uploads").iterdir())  # no temporary file left behind


def test_a_content_length_shorter_than_the_body_changes_nothing(prepared, tmp_path):
    body, content_type = multipart(destructive(prepared), ("new.jar", NEW_BUILD))
    before = team_state(prepared.team)
    head = raw_request(prepared, body[:-500], content_type)
    with live_server(tmp_path) as server, open_socket(server) as sock:
        sock.sendall(head + body)
        status, answer = read_response(sock)
    assert status == 400
    assert answer["result"]["details"] == "Incomplete request body"
    assert_old_build_intact(prepared, before)


def test_a_create_cut_mid_file_creates_nothing_and_latest_stays(prepared, tmp_path):
    data = {
        "version": "5.0.0",
        "productId": str(prepared.product.id),
        "status": "PUBLISHED",
        "setAsLatest": True,
    }
    body, content_type = multipart(data, ("new.jar", NEW_BUILD))
    head = raw_request(prepared, body, content_type).replace(
        f"PUT {release_url(prepared.team.id, prepared.release.id)}".encode(),
        f"POST /api/v1/dev/teams/{prepared.team.id}/releases".encode(),
    )
    before = team_state(prepared.team)
    with live_server(tmp_path) as server, open_socket(server) as sock:
        sock.sendall(head + body[: len(body) - 4096])
        sock.shutdown(socket.SHUT_WR)
        status, answer = read_response(sock)
    assert (status, answer["result"]["details"]) == (400, "Incomplete request body")
    assert_old_build_intact(prepared, before)
    assert Release.objects.get(pk=prepared.release.pk).latest


# --- Faults after the commit ---------------------------------------------------------------


def s3_env(s3, endpoint, **extra):
    return {
        "AWS_STORAGE_BUCKET_NAME": s3.bucket,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_REGION_NAME": "us-east-1",
        **extra,
    }


@contextmanager
def proxy_to(url):
    address = urlsplit(url)
    with TcpProxy(address.hostname, address.port) as proxy:
        yield proxy


def put_file(server, world, data, file, *, release=None, timeout=TIMEOUT):
    body, content_type = multipart(data, file)
    release = release or world.release
    return requests.put(
        server.url + release_url(world.team.id, release.id),
        data=body,
        headers={"Authorization": f"Bearer {world.key}", "Content-Type": content_type},
        timeout=timeout,
    )


def reconcile():
    out, err = io.StringIO(), io.StringIO()
    call_command("reconcile_storage", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_worker_timeout_during_the_after_commit_delete_loses_nothing(s3, prepared, tmp_path):
    """The old object's DELETE (after the response) hangs; gunicorn's master times the sync
    worker out, which raises SystemExit in it. The update had committed: its new object must
    stay, and the old one is left to the reconciler by its committed deletion record."""
    with proxy_to(s3.endpoint) as proxy:
        env = s3_env(s3, f"http://{proxy.address}", AWS_S3_READ_TIMEOUT="60")
        with live_server(tmp_path, extra_env=env, extra_args=("--timeout", "3")) as server:
            proxy.stall_upstream(match=b"DELETE ")
            response = put_file(server, prepared, destructive(prepared), ("new.jar", NEW_BUILD))
            # The delete runs after the response: the client has its 200 before it hangs.
            assert response.status_code == 200, response.text
            deadline = time.monotonic() + TIMEOUT
            while "WORKER TIMEOUT" not in server.log_text():
                assert time.monotonic() < deadline, "gunicorn never timed the worker out"
                time.sleep(0.1)
            assert proxy.stalled.is_set()
            proxy.release()

    row = ReleaseFile.objects.get(release=prepared.release)
    assert row.key != prepared.old_file.key
    assert read_object(row.key) == NEW_BUILD
    # The held DELETE may or may not have reached the store once let go; either way the
    # committed record says the old object is due for deletion.
    assert list(LedgerEntry.objects.values_list("key", "state")) == [
        (prepared.old_file.key, "DELETING")
    ]
    assert Release.objects.get(pk=prepared.release.pk).version == "9.9.9"

    reconcile()
    assert stored_objects() == [row.key]
    assert not LedgerEntry.objects.exists()
    assert Team.objects.get(pk=prepared.team.pk).storage_used_bytes == len(NEW_BUILD)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: the proxy speaks to a database server over TCP (set DATABASE_URL)",
)
def test_a_lost_commit_acknowledgement_deletes_nothing_the_database_references(prepared, tmp_path):
    """PostgreSQL carried out the COMMIT; the proxy cut the connection before its answer (as a
    failover does). The service cannot know the outcome, so it deletes nothing; the committed
    rows keep the new object and record the old one for deletion."""
    settings = connection.settings_dict
    with TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)) as proxy:
        database = f"postgres://{settings['USER']}@127.0.0.1:{proxy.port}/{settings['NAME']}"
        with live_server(tmp_path, extra_env={"DATABASE_URL": database}) as server:
            proxy.drop_after(b"COMMIT", armed_by=b'INSERT INTO "teams_auditlog"')
            response = put_file(server, prepared, destructive(prepared), ("new.jar", NEW_BUILD))
            assert proxy.dropped.is_set()
            media = server.media

    # The connection was lost, so the outcome is unknown to the service: a 503 asks for a
    # retry (an update is idempotent; Idempotency-Key makes a create so too).
    assert response.status_code == 503, response.text
    assert response.json()["result"]["code"] == "INTERNAL_SERVER_ERROR"
    row = ReleaseFile.objects.get(release=prepared.release)  # committed after all
    assert row.key != prepared.old_file.key
    assert (media / row.key).read_bytes() == NEW_BUILD
    assert (media / prepared.old_file.key).read_bytes() == OLD_BUILD
    assert list(LedgerEntry.objects.values_list("key", "state")) == [
        (prepared.old_file.key, "DELETING")
    ]


def test_a_stalled_storage_put_holds_no_lock(s3, prepared, tmp_path):
    """One upload's PUT hangs in the storage; a metadata update of another release of the
    same team completes while it hangs. The hanging upload holds a reservation, not a lock."""
    outcome = {}
    with proxy_to(s3.endpoint) as proxy:
        env = s3_env(s3, f"http://{proxy.address}", AWS_S3_READ_TIMEOUT="60")
        with live_server(tmp_path, threads=4, extra_env=env) as server:
            proxy.stall_upstream(after_bytes=1000, match=b"PUT ")

            def upload():
                outcome["upload"] = put_file(
                    server, prepared, update_data(prepared.release), ("new.jar", NEW_BUILD)
                )

            uploader = threading.Thread(target=upload)
            uploader.start()
            assert proxy.stalled.wait(TIMEOUT), "the upload never reached the storage"
            reserved = LedgerEntry.objects.get(state="UPLOADING")
            assert reserved.size == len(NEW_BUILD)

            other = prepared.other_release
            metadata_update = requests.put(
                server.url + release_url(prepared.team.id, other.id),
                files={"data": (None, json.dumps(update_data(other, version="0.9.1")))},
                headers={"Authorization": f"Bearer {prepared.key}"},
                timeout=TIMEOUT,
            )
            still_uploading = uploader.is_alive()
            proxy.release()
            uploader.join(TIMEOUT)

    assert metadata_update.status_code == 200, metadata_update.text
    assert still_uploading, "the metadata update waited for the stalled upload"
    assert outcome["upload"].status_code == 200, outcome["upload"].text
    assert Release.objects.get(pk=prepared.other_release.pk).version == "0.9.1"
    row = ReleaseFile.objects.get(release=prepared.release)
    assert read_object(row.key) == NEW_BUILD
    assert not LedgerEntry.objects.filter(state="UPLOADING").exists()


def test_parallel_uploads_racing_for_the_quota_never_pass_it_together(world, s3, tmp_path):
    """Eight uploads at once, to eight releases of a team with room for three: exactly three
    pass, the others are refused, and the stored bytes, rows and objects agree."""
    size = len(NEW_BUILD)
    Team.objects.filter(pk=world.team.pk).update(storage_limit_bytes=3 * size + size // 2)
    releases = [
        Release.objects.create(team=world.team, product=world.product, version=f"7.0.{n}")
        for n in range(8)
    ]
    with proxy_to(s3.endpoint) as proxy:
        proxy.throttle(20 * 1024 * 1024)  # slow enough that all eight overlap
        env = s3_env(s3, f"http://{proxy.address}")
        with live_server(tmp_path, workers=2, threads=4, extra_env=env) as server:
            barrier = threading.Barrier(len(releases))
            responses = [None] * len(releases)

            def upload(index, release):
                barrier.wait(TIMEOUT)
                responses[index] = put_file(
                    server, world, update_data(release), ("build.jar", NEW_BUILD), release=release
                )

            threads = [threading.Thread(target=upload, args=item) for item in enumerate(releases)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(TIMEOUT * 2)

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 3 + [400] * 5, [r.text for r in responses]
    refused = [r.json()["result"]["details"] for r in responses if r.status_code == 400]
    assert set(refused) == {"Storage limit reached"}
    rows = list(ReleaseFile.objects.filter(team=world.team).values_list("key", flat=True))
    assert len(rows) == 3
    assert stored_objects() == sorted(rows)
    assert Team.objects.get(pk=world.team.pk).storage_used_bytes == 3 * size
    assert not LedgerEntry.objects.exists()


# --- The reconciler and leases against writes in flight ------------------------------------


def reconcile_with_a_one_minute_grace():
    """``reconcile_storage --older-than 1``, with every ledger entry made five minutes ago."""
    LedgerEntry.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    out, err = io.StringIO(), io.StringIO()
    call_command("reconcile_storage", "--older-than", "1", stdout=out, stderr=err)


def assert_nothing_lost(world, response):
    """A 200 references an object that exists; anything else references nothing new."""
    row = ReleaseFile.objects.get(release=world.release)
    if response.status_code == 200:
        assert response.json()["data"]["file"]["key"] == row.key
        assert read_object(row.key) == NEW_BUILD
    else:
        assert response.status_code == 503, response.text
        assert row.key == world.old_file.key
    assert not LedgerEntry.objects.filter(state="UPLOADING").exists()


@contextmanager
def upload_held(proxy, match, server, world):
    """A destructive upload in a thread, whose storage answers the proxy holds (from the one
    to the bytes ``match`` on) for the length of the block; then they are let through and the
    upload is awaited. Yields the thread, and a dict that gets its response as "response"."""
    outcome = {}
    proxy.hold_replies(match)

    def upload():
        outcome["response"] = put_file(server, world, destructive(world), ("new.jar", NEW_BUILD))

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        assert proxy.held.wait(TIMEOUT), "the upload never reached the storage"
        yield uploader, outcome
    finally:
        proxy.release()
        uploader.join(TIMEOUT)


def test_a_put_answered_after_the_reconciler_ran_loses_nothing(s3, prepared, tmp_path):
    """The store wrote the object but its answer is late (past the reconciler's grace): the
    upload's lease still holds, so the reconciler leaves it, and the write references it."""
    with proxy_to(s3.endpoint) as proxy:
        env = s3_env(s3, f"http://{proxy.address}", AWS_S3_READ_TIMEOUT="60")
        with live_server(tmp_path, extra_env=env) as server:
            # The answer to the whole body (not the "100 Continue" before it): the store has
            # written the object when the answer is held.
            with upload_held(proxy, NEW_BUILD[-64:], server, prepared) as (_, outcome):
                reconcile_with_a_one_minute_grace()

    assert outcome["response"].status_code == 200, outcome["response"].text
    assert_nothing_lost(prepared, outcome["response"])


def test_an_update_waiting_for_the_team_lock_while_the_reconciler_runs_loses_nothing(
    s3, prepared, tmp_path
):
    """The upload is stored, then its locked write waits for the team's lock, held here while
    the reconciler runs with a one-minute grace over a reservation made long ago."""
    with proxy_to(s3.endpoint) as proxy:
        env = s3_env(s3, f"http://{proxy.address}", AWS_S3_READ_TIMEOUT="60")
        with live_server(tmp_path, extra_env=env) as server:
            with upload_held(proxy, b"PUT ", server, prepared) as (uploader, outcome):
                with transaction.atomic():
                    Team.objects.select_for_update().get(pk=prepared.team.pk)
                    proxy.release()
                    # Sequencing, not timing: the write gets its answer and queues.
                    time.sleep(1)
                    assert uploader.is_alive()
                    reconcile_with_a_one_minute_grace()

    assert outcome["response"].status_code == 200, outcome["response"].text
    assert_nothing_lost(prepared, outcome["response"])


def test_a_killed_workers_reservation_lapses_and_frees_the_quota(client, s3, prepared, tmp_path):
    """kill -9 while the upload's PUT is in flight: its reservation stops being renewed and
    lapses within the lease, after which an upload at the edge of the quota succeeds; the
    reconciler then removes what the dead upload left, and nothing else."""
    target = prepared.other_release
    old_size = prepared.old_file.size
    Team.objects.filter(pk=prepared.team.pk).update(
        storage_limit_bytes=old_size + len(NEW_BUILD) + 100
    )
    with proxy_to(s3.endpoint) as proxy:
        env = s3_env(s3, f"http://{proxy.address}", STORAGE_LEASE_SECONDS="3")
        with live_server(tmp_path, extra_env=env) as server:
            proxy.stall_upstream(after_bytes=1000, match=b"PUT ")
            uploader = threading.Thread(target=upload_ignoring_errors, args=(server, prepared))
            uploader.start()
            assert proxy.stalled.wait(TIMEOUT), "the upload never reached the storage"
            dead = LedgerEntry.objects.get(state="UPLOADING")
            for pid in server.worker_pids():
                os.kill(pid, signal.SIGKILL)
            uploader.join(TIMEOUT)
            proxy.release()

    assert LedgerEntry.objects.get(pk=dead.pk).state == "UPLOADING"
    deadline = time.monotonic() + TIMEOUT
    while (
        lease := LedgerEntry.objects.get(pk=dead.pk).lease_expires_at
    ) and lease >= timezone.now():
        assert time.monotonic() < deadline, "the dead upload's lease never lapsed"
        time.sleep(0.2)
    retry = put_release(
        client,
        prepared.team.id,
        target.id,
        key=prepared.key,
        data=update_data(target),
        file=("new.jar", NEW_BUILD),
    )

    assert retry.status_code == 200, retry.content
    reconcile()
    rows = sorted(ReleaseFile.objects.filter(team=prepared.team).values_list("key", flat=True))
    assert len(rows) == 2 and stored_objects() == rows
    assert read_object(prepared.old_file.key) == OLD_BUILD
    assert read_object(ReleaseFile.objects.get(release=target).key) == NEW_BUILD
    assert not LedgerEntry.objects.exists()
    team = Team.objects.get(pk=prepared.team.pk)
    assert team.storage_used_bytes == old_size + len(NEW_BUILD) <= team.storage_limit_bytes


def upload_ignoring_errors(server, world):
    """The upload the test kills the worker under: its client sees the connection die."""
    release = world.other_release
    try:
        put_file(server, world, update_data(release), ("new.jar", NEW_BUILD), release=release)
    except requests.RequestException:
        pass
