"""/metrics: Prometheus's text format for the allowed addresses only (and the token when one is
set); requests counted by method, route pattern and status; the service's own counters move
with what happened (files stored after commit, failed writes by reason, storage failures, the
reconciler's findings); with PROMETHEUS_MULTIPROC_DIR, one scrape adds up every worker."""

import io
import re
import time

import pytest
import requests
from botocore.exceptions import EndpointConnectionError
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import OperationalError
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from lukittu import metrics
from releases import ledger, services
from releases.models import ReleaseFile
from releases.storage import release_storage
from teams.models import Team
from tests.helpers import (
    break_storage_writes,
    make_jar,
    put_release,
    release_url,
    releases_url,
    storage_slot_held,
    update_data,
)
from tests.live import live_server

DETAIL_ROUTE = "api/v1/dev/teams/<str:teamId>/releases/<str:releaseId>"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much a sample moved while the ``with`` block ran."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels

    def __enter__(self) -> "Delta":
        self.before = value(self.name, **self.labels)
        return self

    def __exit__(self, *exc: object) -> None:
        self.moved = value(self.name, **self.labels) - self.before


def failures(reason: str) -> Delta:
    return Delta("lukittu_release_write_failures_total", reason=reason)


def upload(client, world, content: bytes, data=None):
    return put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=data or update_data(world.release),
        file=("app.jar", content),
    )


# --- Who may read /metrics --------------------------------------------------------------------


def test_metrics_are_served_to_loopback_in_prometheus_format():
    for address in ("127.0.0.1", "::1"):
        response = Client(REMOTE_ADDR=address).get("/metrics")
        assert response.status_code == 200, address
        assert response["Content-Type"].startswith("text/plain; version=")
        names = {
            family.name for family in text_string_to_metric_families(response.content.decode())
        }
        assert {"lukittu_http_requests", "lukittu_release_files_stored"} <= names


def test_another_address_gets_a_404():
    response = Client(REMOTE_ADDR="203.0.113.7").get("/metrics")

    assert response.status_code == 404
    assert b"lukittu_" not in response.content


def test_allowed_networks_come_from_the_setting(settings):
    import ipaddress

    settings.METRICS_ALLOWED_NETWORKS = (ipaddress.ip_network("10.1.0.0/16"),)

    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.2.0.1").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_a_proxied_request_is_judged_by_the_callers_address(settings):
    # Behind a proxy on the same host every request comes from 127.0.0.1. Without NUM_PROXIES
    # the caller is unknown, so a forwarded request is refused...
    proxy = Client(REMOTE_ADDR="127.0.0.1")
    assert proxy.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 404
    assert proxy.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 404
    # ...and with it, the caller is the address the proxy saw.
    settings.NUM_PROXIES = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert proxy.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 404
    assert proxy.get("/metrics", HTTP_X_FORWARDED_FOR="::1").status_code == 200
    assert proxy.get("/metrics").status_code == 200  # a scraper on the host itself


def test_a_token_when_set_is_required_too(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    client = Client()

    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    outsider = Client(REMOTE_ADDR="203.0.113.7")
    assert outsider.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 404


# --- Requests ---------------------------------------------------------------------------------


def test_requests_are_counted_by_route_pattern_not_path(client, world):
    labels = {"method": "GET", "route": DETAIL_ROUTE, "status": "200"}
    with (
        Delta("lukittu_http_requests_total", **labels) as counted,
        Delta(
            "lukittu_http_request_duration_seconds_count", method="GET", route=DETAIL_ROUTE
        ) as timed,
    ):
        for release in (world.release, world.other_release):
            response = client.get(
                release_url(world.team.id, release.id), HTTP_AUTHORIZATION=f"Bearer {world.key}"
            )
            assert response.status_code == 200

    assert (counted.moved, timed.moved) == (2, 2)
    exposed = Client().get("/metrics").content.decode()
    assert str(world.release.id) not in exposed


def test_unmatched_paths_and_odd_methods_add_no_series(client):
    with (
        Delta(
            "lukittu_http_requests_total", method="GET", route="<unmatched>", status="404"
        ) as unmatched,
        Delta("lukittu_http_requests_total", method="other", route="healthz", status="405") as odd,
    ):
        client.get("/no/such/page/1")
        client.get("/no/such/page/2")
        client.generic("BREW", "/healthz")

    assert (unmatched.moved, odd.moved) == (2, 1)


def test_static_files_are_one_route(client):
    # Answered before URL resolution (or not found): one series, whatever the file.
    statuses = [client.get(f"/static/{name}").status_code for name in ("a.css", "b/c.js")]
    exposed = Client().get("/metrics").content.decode()

    assert 'route="<static>"' in exposed
    assert "a.css" not in exposed and "c.js" not in exposed
    assert all(status in (200, 304, 404) for status in statuses)


# --- The service's counters -------------------------------------------------------------------


def test_a_committed_upload_counts_its_file_and_bytes(client, world):
    jar = make_jar()
    with (
        Delta("lukittu_release_files_stored_total") as files,
        Delta("lukittu_release_file_bytes_stored_total") as stored,
    ):
        assert upload(client, world, jar).status_code == 200
        # No file: nothing stored.
        response = put_release(
            client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
        )
        assert response.status_code == 200

    assert (files.moved, stored.moved) == (1, len(jar))
    assert ReleaseFile.objects.get(release=world.release).size == len(jar)


def test_an_upload_whose_transaction_fails_counts_nothing_stored(client, world):
    """The bytes reached the storage, then a rule refused the write: counted when the
    transaction completes, not when the storage has the bytes."""
    unknown_license = "00000000-0000-4000-8000-000000000000"
    with Delta("lukittu_release_files_stored_total") as files:
        response = upload(
            client, world, make_jar(), data=update_data(world.release, licenseIds=[unknown_license])
        )

    assert response.status_code == 404
    assert files.moved == 0


def test_a_refused_upload_counts_nothing_stored(client, world):
    Team.objects.filter(pk=world.team.pk).update(storage_limit_bytes=10)
    with (
        Delta("lukittu_release_files_stored_total") as files,
        failures("storage_limit") as limit,
    ):
        assert upload(client, world, make_jar()).status_code == 400

    assert (files.moved, limit.moved) == (0, 1)


def test_storage_down_counts_the_failed_write_and_the_reason(client, world, monkeypatch):
    break_storage_writes(monkeypatch)
    with (
        failures("storage_unavailable") as unavailable,
        Delta("lukittu_storage_failures_total", operation="write") as storage,
    ):
        assert upload(client, world, make_jar()).status_code == 503

    assert (unavailable.moved, storage.moved) == (1, 1)


def test_a_busy_storage_and_a_lost_database_are_reasons_of_their_own(
    client, world, monkeypatch, settings
):
    """Both answer 503 like a failed storage write, but an operator acts differently on each."""
    settings.STORAGE_CONCURRENCY = 1
    settings.STORAGE_BUSY_WAIT = 0.05
    with storage_slot_held():
        with failures("storage_busy") as busy, failures("storage_unavailable") as unavailable:
            assert upload(client, world, make_jar()).status_code == 503

    def database_gone(team):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_lock_team", database_gone)
    with failures("database_unavailable") as database:
        assert upload(client, world, make_jar()).status_code == 503

    assert (busy.moved, unavailable.moved, database.moved) == (1, 0, 1)


def test_an_incomplete_body_is_a_failed_write(client, world):
    boundary = "----metrics"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n\r\n{{}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jar"\r\n\r\n'
    ).encode() + b"x" * 100
    with failures("incomplete_body") as incomplete:
        response = client.generic(
            "PUT",
            release_url(world.team.id, world.release.id),
            data=body,
            content_type=f"multipart/form-data; boundary={boundary}",
            HTTP_AUTHORIZATION=f"Bearer {world.key}",
        )

    assert response.status_code == 400
    assert response.json()["result"]["details"] == "Incomplete request body"
    assert incomplete.moved == 1


def test_client_mistakes_and_reads_are_not_failed_writes(client, world):
    deltas = [failures(reason) for reason in metrics.WRITE_FAILURE_REASONS]
    for delta in deltas:
        delta.__enter__()
    bad = update_data(world.release, productId="00000000-0000-4000-8000-000000000000")
    assert (
        put_release(client, world.team.id, world.release.id, key=world.key, data=bad).status_code
        == 404
    )
    assert client.get(releases_url(world.team.id)).status_code == 401
    for delta in deltas:
        delta.__exit__()
        assert delta.moved == 0, delta.labels


def test_a_failed_delete_after_commit_is_a_storage_failure(world, monkeypatch):
    key = f"releases/{world.team.id}/{world.release.id}/replaced.jar"
    release_storage().save(key, ContentFile(b"old build"))
    ledger.record_deletion(team=world.team, key=key, reason="replaced")

    def refuse(name):
        raise EndpointConnectionError(endpoint_url="storage")

    monkeypatch.setattr(ledger, "delete_object", refuse)
    with Delta("lukittu_storage_failures_total", operation="delete") as deletes:
        assert ledger.finish_deletions([key]) == []

    assert deletes.moved == 1


def reconcile(*args: str) -> None:
    call_command("reconcile_storage", *args, stdout=io.StringIO(), stderr=io.StringIO())


def test_the_reconcilers_findings_are_counted_except_in_a_dry_run(world):
    orphan = f"releases/{world.team.id}/{world.release.id}/orphan.bin"
    release_storage().save(orphan, ContentFile(b"nobody's"))
    Team.objects.filter(pk=world.team.pk).update(storage_used_bytes=999)

    kinds = ("orphans", "corrected", "deleted", "missing")
    dry = [Delta("lukittu_reconcile_findings_total", finding=kind) for kind in kinds]
    for delta in dry:
        delta.__enter__()
    reconcile("--older-than", "0", "--dry-run")
    for delta in dry:
        delta.__exit__()
        assert delta.moved == 0, delta.labels

    with (
        Delta("lukittu_reconcile_findings_total", finding="orphans") as orphans,
        Delta("lukittu_reconcile_findings_total", finding="corrected") as corrected,
        Delta("lukittu_reconcile_findings_total", finding="missing") as missing,
    ):
        reconcile("--older-than", "0")

    assert (orphans.moved, corrected.moved, missing.moved) == (1, 1, 0)


def test_a_metric_that_cannot_be_recorded_never_fails_the_request(client, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("no space left under PROMETHEUS_MULTIPROC_DIR")

    monkeypatch.setattr(metrics.HTTP_REQUESTS, "labels", broken)

    assert client.get("/healthz").status_code == 200
    assert "Could not record a metric" in caplog.text


# --- Several worker processes -----------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


def test_multiprocess_mode_adds_up_every_worker(transactional_db, tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with live_server(tmp_path, workers=2, extra_env=env) as server:
        server.worker_pids()
        sent = 0
        deadline = time.monotonic() + 60
        # Until both workers have answered some: each new connection goes to whichever
        # worker accepts it first.
        while time.monotonic() < deadline:
            with requests.Session() as session:
                assert session.get(f"{server.url}/healthz", timeout=10).status_code == 200
            sent += 1
            served = {pid for pid, _ in server.served_by()}
            if len(served) >= 2 and sent >= 10:
                break
            if sent >= 400:
                pytest.fail(f"one worker answered all {sent} requests")
        time.sleep(0.2)  # the access log line follows the response
        scraped = requests.get(f"{server.url}/metrics", timeout=10)
        assert scraped.status_code == 200

    healthz = {"method": "GET", "route": "healthz", "status": "200"}
    assert sample(scraped.text, "lukittu_http_requests_total", **healthz) == sent
    assert len({pid for pid, _ in server.served_by()}) == 2
    assert any(re.match(r"counter_\d+\.db$", path.name) for path in folder.iterdir())
