"""Concurrency against the real server: gunicorn with two worker processes (Redis shared between
them when REDIS_URL is set), requests sent over the network from many threads at once.

- Parallel uploads to one release: every request succeeds, and afterwards the release has
  exactly one file whose object holds exactly the winner's bytes; every replaced object is gone.
- The rate limit is one count across both workers (with Redis; skipped without it).

Both run on PostgreSQL and on SQLite (file-backed test database, WAL, BEGIN IMMEDIATE)."""

import hashlib
import json
import os
import threading
import time

import pytest
import requests

from releases.models import LedgerEntry, Release, ReleaseFile
from releases.serializers import release_payload
from teams.models import AuditLog
from teams.services import api_key_create
from tests.helpers import make_jar, release_url, result_of, update_data
from tests.live import live_server

WORKERS = 2
ROUNDS = 5
PARALLEL = 8
REQUEST_TIMEOUT = 60


def run_together(calls):
    """Run every ``call()`` in its own thread, released together by a barrier; their results
    in the same order."""
    barrier = threading.Barrier(len(calls), timeout=REQUEST_TIMEOUT)
    results = [None] * len(calls)
    failures = []

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    assert not failures, failures
    return results


def put(server, world, key, data, file=None):
    """One multipart PUT on a fresh connection (no session), so requests spread over the
    workers."""
    fields = {"data": (None, json.dumps(data))}
    if file is not None:
        fields["file"] = file
    return requests.put(
        server.url + release_url(world.team.id, world.release.id),
        files=fields,
        headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        timeout=REQUEST_TIMEOUT,
    )


def payload(round_number, index):
    """A small JAR, different in every request: its bytes and its main class."""
    main_class = f"com.example.Round{round_number}Request{index}"
    jar = make_jar(
        manifest=f"Manifest-Version: 1.0\r\nMain-Class: {main_class}\r\n\r\n",
        extra={"build.txt": f"round {round_number}, request {index}"},
    )
    return f"build-{round_number}-{index}.jar", jar, main_class


def settled(condition, seconds=REQUEST_TIMEOUT):
    """Waits (bounded) until ``condition()`` holds: work after a response is not instant."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the work after the responses never finished"
        time.sleep(0.05)


def stored_release(release):
    return (
        Release.objects.select_related("product", "branch", "file")
        .prefetch_related("metadata", "license_links")
        .get(pk=release.pk)
    )


def test_parallel_uploads_to_one_release_leave_one_file_and_one_object(
    transactional_db, world, s3, tmp_path
):
    s3_env = {
        "AWS_STORAGE_BUCKET_NAME": s3.bucket,
        "AWS_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_REGION_NAME": "us-east-1",
    }
    prefix = f"releases/{world.team.id}/{world.release.id}/"
    data = update_data(world.release)
    # Threads in each worker, so all eight requests are in flight at once, each with its own
    # database connection: they really contend (on PostgreSQL for the team row lock the update
    # takes, on SQLite for the write lock).
    threads = PARALLEL // WORKERS

    with live_server(tmp_path, workers=WORKERS, threads=threads, extra_env=s3_env) as server:
        for round_number in range(ROUNDS):
            files = [payload(round_number, index) for index in range(PARALLEL)]
            responses = run_together(
                [
                    lambda name=name, jar=jar: put(
                        server, world, world.key, data, (name, jar, "application/java-archive")
                    )
                    for name, jar, _ in files
                ]
            )

            for response, (name, jar, main_class) in zip(responses, files, strict=True):
                assert response.status_code == 200, response.text
                assert result_of(response) == {"valid": True, "details": "Release updated"}
                sent = response.json()["data"]["file"]
                assert {k: v for k, v in sent.items() if k not in ("id", "key", "createdAt")} == {
                    "size": len(jar),
                    "name": name,
                    "checksum": hashlib.md5(jar).hexdigest(),
                    "sha256": hashlib.sha256(jar).hexdigest(),
                    "mainClassName": main_class,
                }
                assert sent["key"] == f"{prefix}{sent['id']}.jar"
            assert len({response.json()["data"]["file"]["key"] for response in responses}) == (
                PARALLEL
            )

            # Exactly one file row, for this release, and exactly its object in the bucket, once
            # the replaced objects' deletes (which run after each response is sent) are done.
            row = ReleaseFile.objects.get(team=world.team)
            assert row.release_id == world.release.pk
            settled(lambda: not LedgerEntry.objects.exists())
            listed = s3.client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
            assert [item["Key"] for item in listed.get("Contents", [])] == [row.key]
            listed = s3.client.list_objects_v2(Bucket=s3.bucket)
            assert [item["Key"] for item in listed["Contents"]] == [row.key]
            stored = s3.client.get_object(Bucket=s3.bucket, Key=row.key)["Body"].read()
            assert (hashlib.md5(stored).hexdigest(), hashlib.sha256(stored).hexdigest()) == (
                row.checksum,
                row.sha256,
            )
            assert len(stored) == row.size

            # The winner is one of this round's requests, the last to commit, and its response
            # is exactly the release as it now stands.
            winners = [i for i, (_, jar, _) in enumerate(files) if jar == stored]
            assert len(winners) == 1, "the stored bytes are not one of this round's uploads"
            winner = responses[winners[0]].json()["data"]
            assert winner == release_payload(stored_release(world.release))
            assert winner["updatedAt"] == max(r.json()["data"]["updatedAt"] for r in responses)

    assert ReleaseFile.objects.count() == 1
    assert not LedgerEntry.objects.exists(), list(LedgerEntry.objects.values())
    assert (
        AuditLog.objects.filter(team=world.team, action="release.update").count()
        == ROUNDS * PARALLEL
    )
    assert "Traceback" not in server.log_text(), server.log_text()
    assert sorted({status for _, status in server.served_by()}) == [200]


RATE = 10
SENT = 15
MINUTE = 60


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="needs Redis to share the count between workers: set REDIS_URL",
)
def test_the_rate_limit_is_one_count_across_workers(transactional_db, world, tmp_path):
    data = update_data(world.release)
    before = Release.objects.values().get(pk=world.release.pk)

    # Sync workers serve one request at a time, so a burst of parallel requests on fresh
    # connections is split between the two processes.
    rate_env = {"DEV_API_RATE": f"{RATE}/minute"}
    with live_server(tmp_path, workers=WORKERS, extra_env=rate_env) as server:
        pids = server.every_worker_serving()
        # The count lives in fixed one-minute windows. A burst that straddles a window boundary
        # is counted in two windows, so it is repeated (with a new key, a new count); a burst
        # takes well under a minute, so the second one cannot straddle.
        for _ in range(2):
            api_key, key = api_key_create(team=world.team, name="burst")
            window = int(time.time() // MINUTE)
            responses = run_together([lambda key=key: put(server, world, key, data)] * SENT)
            if int(time.time() // MINUTE) == window:
                break

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * RATE + [429] * (SENT - RATE), [r.text for r in responses]
    passed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    # Each accepted request saw its own count: 1 to 10 of one shared counter.
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in passed) == list(range(RATE))
    for response in responses:
        assert response.headers["X-RateLimit-Limit"] == str(RATE)
        assert 1 <= int(response.headers["X-RateLimit-Reset"]) <= MINUTE
    for response in refused:
        assert response.json()["data"] is None
        assert result_of(response) == {
            "valid": False,
            "details": "Too many requests",
            "code": "RATE_LIMIT",
        }
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["Retry-After"] == response.headers["X-RateLimit-Reset"]
    for response in passed:
        assert result_of(response) == {"valid": True, "details": "Release updated"}

    # Only the accepted requests changed anything.
    assert AuditLog.objects.filter(api_key=api_key).count() == RATE
    after = Release.objects.values().get(pk=world.release.pk)
    assert {**after, "updated_at": None} == {**before, "updated_at": None}

    # Both workers served part of the burst (the writes: the probes before it were reads).
    served = server.served_by("PUT")[-SENT:]
    assert {pid for pid, _ in served} == set(pids), (served, pids)
