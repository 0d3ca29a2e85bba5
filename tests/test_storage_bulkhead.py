"""A bulkhead around storage calls: a hung storage holds at most ``STORAGE_CONCURRENCY``
request threads of a process; further storage work is refused at once with a 503 and nothing
left behind, and requests that never touch storage go on being served. ``/readyz`` then
reports storage as degraded instead of taking the instance out of service."""

import threading

import pytest
import requests

from releases.models import LedgerEntry, ReleaseFile
from tests.helpers import (
    assert_error,
    attach_file,
    make_jar,
    put_release,
    read_object,
    release_url,
    storage_slot_held,
    stored_objects,
    team_state,
    update_data,
)
from tests.live import live_server
from tests.test_faults_live import NEW_BUILD, proxy_to, put_file, s3_env

BUILD = make_jar("Manifest-Version: 1.0\r\nMain-Class: com.example.Build\r\n\r\n")
BUSY = "Storage busy; retry the request"
CLIENT_TIMEOUT = 60


def test_no_free_storage_slot_is_a_503_that_leaves_nothing_behind(client, world, backend, settings):
    settings.STORAGE_CONCURRENCY = 1
    settings.STORAGE_BUSY_WAIT = 0.2
    attach_file(world.release, "old.jar", BUILD, main_class_name="com.example.Build")
    before = team_state(world.team)

    with storage_slot_held():
        response = put_release(
            client,
            world.team.id,
            world.release.id,
            key=world.key,
            data=update_data(world.release, keepExistingFile=False),
            file=("new.jar", NEW_BUILD),
        )

    assert_error(response, 503, BUSY, "INTERNAL_SERVER_ERROR")
    assert response["Retry-After"] == "5"
    assert team_state(world.team) == before
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_hung_storage_leaves_threads_for_requests_that_do_not_touch_it(
    world, outsider, s3, tmp_path
):
    """Four threads, at most two in storage calls. Four uploads meet a storage that answers
    nothing: two hang in it, two are refused at once; meanwhile another team's GET (no
    storage) is answered and /readyz says "degraded", not "unavailable"."""
    uploads = [world.release, world.other_release] + [
        world.release.__class__.objects.create(
            team=world.team, product=world.product, version=f"5.0.{n}"
        )
        for n in range(2)
    ]
    answers = {}
    with proxy_to(s3.endpoint) as proxy:
        env = s3_env(
            s3,
            f"http://{proxy.address}",
            AWS_S3_READ_TIMEOUT="60",
            STORAGE_CONCURRENCY="2",
            STORAGE_BUSY_WAIT="1",
            READINESS_TIMEOUT="1",
        )
        with live_server(tmp_path, threads=4, extra_env=env) as server:
            proxy.stall_upstream()

            def upload(release):
                answers[release.pk] = put_file(
                    server, world, update_data(release), ("build.jar", NEW_BUILD), release=release
                )

            threads = [threading.Thread(target=upload, args=(release,)) for release in uploads]
            for thread in threads:
                thread.start()
            try:
                assert proxy.stalled.wait(CLIENT_TIMEOUT), "no upload reached the storage"
                other_team = requests.get(
                    server.url + release_url(outsider.team.id, outsider.release.id),
                    headers={"Authorization": f"Bearer {outsider.key}"},
                    timeout=CLIENT_TIMEOUT,
                )
                readiness = requests.get(server.url + "/readyz", timeout=CLIENT_TIMEOUT)
                hanging = sum(thread.is_alive() for thread in threads)
            finally:
                proxy.release()
                for thread in threads:
                    thread.join(CLIENT_TIMEOUT)

    assert other_team.status_code == 200, other_team.text
    assert hanging == 2, "the GET waited for the hung uploads"
    assert readiness.status_code == 200, readiness.text
    assert readiness.json()["status"] == "degraded"
    assert readiness.json()["degraded"] == ["storage"]
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200, 200, 503, 503], [answer.text for answer in answers.values()]
    refused = {a.json()["result"]["details"] for a in answers.values() if a.status_code == 503}
    assert refused == {BUSY}
    rows = list(ReleaseFile.objects.filter(team=world.team).values_list("key", flat=True))
    assert len(rows) == 2 and all(read_object(key) == NEW_BUILD for key in rows)
    assert stored_objects() == sorted(rows)
    assert not LedgerEntry.objects.exists()
