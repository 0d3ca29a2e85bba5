"""Idempotency-Key against gunicorn, with the answer lost on the way back: the create
committed, the client never heard, and it retries. With the key, the retry gets the stored
answer and nothing is made twice; without one, the retry is the confusing 409 the key is for.
"""

import json
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection

from releases.models import LedgerEntry, Release, ReleaseFile
from teams.models import IdempotencyKey
from tests.helpers import make_jar, releases_url, stored_objects
from tests.live import live_server
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 60
BUILD = make_jar(extra={"payload.bin": b"\x01" * 300_000})


def create(base_url, world, version, key=None):
    headers = {"Authorization": f"Bearer {world.key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    data = {"version": version, "productId": str(world.product.id), "status": "PUBLISHED"}
    return requests.post(
        base_url + releases_url(world.team.id),
        headers=headers,
        files={"data": (None, json.dumps(data)), "file": ("app.jar", BUILD)},
        timeout=TIMEOUT,
    )


def test_a_create_whose_answer_was_lost_is_replayed_not_repeated(world, tmp_path):
    key = f"ci-run-{uuid.uuid4()}"
    with live_server(tmp_path) as server:
        address = urlsplit(server.url)
        with TcpProxy(address.hostname, address.port) as proxy:
            proxy.drop_after(f"Idempotency-Key: {key}".encode())
            with pytest.raises(requests.ConnectionError):
                create(f"http://{proxy.address}", world, "5.0.0", key)
            assert proxy.dropped.is_set()

        retried = create(server.url, world, "5.0.0", key)

    assert retried.status_code == 201, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    release = Release.objects.get(product=world.product, version="5.0.0")
    assert retried.json()["data"]["id"] == str(release.id)
    assert ReleaseFile.objects.filter(release=release).count() == 1
    assert len(stored_objects()) == 1
    assert not LedgerEntry.objects.exists()
    assert IdempotencyKey.objects.get(key=key).status_code == 201


def test_without_a_key_the_same_retry_is_a_conflict(world, tmp_path):
    with live_server(tmp_path) as server:
        address = urlsplit(server.url)
        with TcpProxy(address.hostname, address.port) as proxy:
            proxy.drop_after(b'"version": "5.1.0"')
            with pytest.raises(requests.ConnectionError):
                create(f"http://{proxy.address}", world, "5.1.0")

        retried = create(server.url, world, "5.1.0")

    assert retried.status_code == 409
    assert Release.objects.filter(product=world.product, version="5.1.0").count() == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: the proxy speaks to a database server over TCP (set DATABASE_URL)",
)
def test_a_lost_commit_acknowledgement_with_a_key_answers_what_committed(world, tmp_path):
    """PostgreSQL carried out the COMMIT; the proxy cut the connection before its reply. The
    write cannot tell the outcome, but its answer was stored in that transaction: the service
    reads it back and answers 201 instead of 500, and a retry replays the same answer."""
    key = f"ci-run-{uuid.uuid4()}"
    settings = connection.settings_dict
    with TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)) as proxy:
        database = f"postgres://{settings['USER']}@127.0.0.1:{proxy.port}/{settings['NAME']}"
        with live_server(tmp_path, extra_env={"DATABASE_URL": database}) as server:
            proxy.drop_after(b"COMMIT", armed_by=b'UPDATE "teams_idempotencykey"')
            first = create(server.url, world, "6.0.0", key)
            assert proxy.dropped.is_set()
            retried = create(server.url, world, "6.0.0", key)

    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == first.json()
    release = Release.objects.get(product=world.product, version="6.0.0")
    assert first.json()["data"]["id"] == str(release.id)
    assert ReleaseFile.objects.filter(release=release).count() == 1
    assert len(stored_objects()) == 1


def test_a_failed_write_frees_its_key_at_once(world, tmp_path):
    """A write that failed without committing (here the storage is down: 503) leaves no
    claim: the committed state says it did not happen, so a retry runs at once."""
    key = f"ci-run-{uuid.uuid4()}"
    with live_server(tmp_path, extra_env={"MEDIA_ROOT": "/proc/no-such-place"}) as server:
        failed = create(server.url, world, "6.1.0", key)

    assert failed.status_code == 503, failed.text
    assert not IdempotencyKey.objects.filter(key=key).exists()
    assert not Release.objects.filter(product=world.product, version="6.1.0").exists()
