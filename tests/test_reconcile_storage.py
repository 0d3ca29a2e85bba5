"""Failures lose nothing and leave nothing behind for long: `reconcile_storage` finishes what
the ledger records (deletions due, abandoned uploads), deletes true orphans after the grace
period, corrects storage totals and reports missing objects. Each storage test runs on local
files and on the S3 test server."""

import io
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone

from releases.models import LedgerEntry, ReleaseFile
from releases.storage import list_objects, release_storage
from teams.models import Team
from tests.conftest import free_port
from tests.helpers import make_jar, put_release, update_data
from tests.live import PROJECT_ROOT, server_env


def keys() -> set[str]:
    return {item.key for item in list_objects()}


def upload(client, world, content: bytes):
    return put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release),
        file=("app.jar", content),
    )


def reconcile(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("reconcile_storage", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue(), err.getvalue()


def break_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, name):
        raise EndpointConnectionError(endpoint_url="storage")

    monkeypatch.setattr(type(release_storage()), "delete", refuse)


def test_a_failed_delete_after_commit_keeps_the_update_and_is_retried_later(
    client, world, backend, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    first_jar, second_jar = make_jar(), make_jar(extra={"v2.txt": "2"})
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(client, world, first_jar).status_code == 200
    old = ReleaseFile.objects.get(release=world.release)

    with monkeypatch.context() as patch:
        break_deletes(patch)
        with django_capture_on_commit_callbacks(execute=True):
            response = upload(client, world, second_jar)
    assert response.status_code == 200
    new = ReleaseFile.objects.get(release=world.release)
    assert response.json()["data"]["file"]["id"] == str(new.id)
    assert keys() == {old.key, new.key}
    assert list(LedgerEntry.objects.values_list("key", "state", "reason", "attempts")) == [
        (old.key, "DELETING", "replaced", 1)
    ]
    assert "recorded for reconcile_storage" in caplog.text

    code, out, _ = reconcile()  # the grace period does not apply to recorded deletions
    assert code == 0
    assert keys() == {new.key}
    assert not LedgerEntry.objects.exists()
    assert "deleted 1 objects due for deletion" in out
    assert release_storage().open(new.key).read() == second_jar


def test_a_deletion_record_for_a_referenced_object_never_deletes_it(client, world, backend):
    assert upload(client, world, make_jar()).status_code == 200
    current = ReleaseFile.objects.get(release=world.release)
    LedgerEntry.objects.create(key=current.key, state="DELETING", reason="replaced")
    assert reconcile("--older-than", "0")[0] == 0
    assert current.key in keys()
    assert not LedgerEntry.objects.exists()


def test_the_replaced_object_of_a_process_that_died_after_commit_is_deleted_at_once(
    client, world, backend, django_capture_on_commit_callbacks
):
    """The replacement committed its deletion record: no grace period is needed to know the
    old object is garbage."""
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(client, world, make_jar()).status_code == 200
    old = ReleaseFile.objects.get(release=world.release)
    # The replaced object's delete never runs: the process "died" right after the commit.
    with django_capture_on_commit_callbacks(execute=False):
        assert upload(client, world, make_jar(extra={"v2.txt": "2"})).status_code == 200
    new = ReleaseFile.objects.get(release=world.release)
    assert keys() == {old.key, new.key}

    code, out, _ = reconcile("--dry-run")
    assert code == 0 and keys() == {old.key, new.key}
    assert f"would delete {old.key} (due for deletion)" in out

    code, out, _ = reconcile()
    assert code == 0 and keys() == {new.key}
    assert not LedgerEntry.objects.exists()


def test_an_upload_abandoned_in_flight_is_deleted_once_its_lease_lapsed(world, backend):
    """A process killed between writing an object and its transaction: the UPLOADING entry
    keeps the bytes reserved until its lease (no longer renewed) lapses, however long ago it
    was made; then the reconciler ends it."""
    key = f"releases/{world.team.id}/{world.release.id}/abandoned.jar"
    entry = LedgerEntry.objects.create(
        key=key,
        team=world.team,
        state="UPLOADING",
        size=5,
        reason="upload in flight",
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )
    LedgerEntry.objects.filter(pk=entry.pk).update(created_at=timezone.now() - timedelta(days=1))
    release_storage().save(key, ContentFile(b"bytes"))

    code, out, _ = reconcile("--older-than", "0")  # its request may still be running
    assert code == 0 and key in keys()
    assert LedgerEntry.objects.get(key=key).state == "UPLOADING"

    LedgerEntry.objects.filter(pk=entry.pk).update(lease_expires_at=timezone.now())
    code, out, _ = reconcile()
    assert code == 0 and key not in keys()
    assert not LedgerEntry.objects.exists()
    assert "1 abandoned uploads" in out


def test_an_uploading_entry_whose_row_committed_is_settled_not_deleted(client, world, backend):
    assert upload(client, world, make_jar()).status_code == 200
    current = ReleaseFile.objects.get(release=world.release)
    LedgerEntry.objects.create(
        key=current.key, team=world.team, state="UPLOADING", size=1, reason="upload in flight"
    )
    assert reconcile("--older-than", "0")[0] == 0
    assert current.key in keys()
    assert not LedgerEntry.objects.exists()


def test_a_true_orphan_is_deleted_only_after_the_grace_period(world, backend):
    key = f"releases/{world.team.id}/{world.release.id}/orphan.bin"
    release_storage().save(key, ContentFile(b"nobody's"))

    code, out, _ = reconcile()
    assert code == 0 and key in keys()
    assert "kept 1 orphans younger than 60 minutes" in out

    code, out, _ = reconcile("--older-than", "0", "--dry-run")
    assert code == 0 and key in keys()
    assert f"would delete orphan {key}" in out

    code, out, _ = reconcile("--older-than", "0")
    assert code == 0 and key not in keys()
    assert "1 orphaned objects" in out


def test_a_drifted_storage_total_is_corrected(client, world, backend):
    assert upload(client, world, make_jar()).status_code == 200
    actual = ReleaseFile.objects.get(release=world.release).size
    Team.objects.filter(pk=world.team.pk).update(storage_used_bytes=actual + 999)

    code, _, err = reconcile("--dry-run")
    assert code == 0
    assert f"recorded {actual + 999}, files hold {actual}" in err
    assert Team.objects.get(pk=world.team.pk).storage_used_bytes == actual + 999

    code, out, err = reconcile()
    assert code == 0 and "corrected" in err and "1 storage totals corrected" in out
    assert Team.objects.get(pk=world.team.pk).storage_used_bytes == actual


def test_temporary_files_left_by_killed_workers_are_removed(settings, tmp_path, world):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    folder = tmp_path / "uploads"
    folder.mkdir()
    old, fresh = folder / "tmpold.upload.jar", folder / "tmpnew.upload.jar"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))

    code, out, _ = reconcile()
    assert code == 0
    assert not old.exists() and fresh.exists()
    assert "1 temporary files" in out


def test_objects_outside_the_releases_prefix_are_never_touched(world, backend):
    storage = release_storage()
    storage.save("elsewhere/keep.txt", ContentFile(b"not ours"))
    assert reconcile("--older-than", "0")[0] == 0
    assert storage.exists("elsewhere/keep.txt")


def test_a_release_file_whose_object_is_missing_is_reported_with_exit_status_1(
    client, world, backend
):
    assert upload(client, world, make_jar()).status_code == 200
    file = ReleaseFile.objects.get(release=world.release)
    release_storage().delete(file.key)
    code, out, err = reconcile("--older-than", "0")
    assert code == 1
    assert f"MISSING object {file.key} of release {world.release.id}" in err
    assert "1 release files missing their object" in out
    assert ReleaseFile.objects.filter(pk=file.pk).exists()  # reported, never deleted


def test_a_clean_store_reports_nothing(client, world, backend):
    assert upload(client, world, make_jar()).status_code == 200
    code, out, err = reconcile("--older-than", "0")
    assert (code, err) == (0, "")
    assert "0 orphaned objects" in out and "0 release files missing" in out


def test_a_storage_outage_is_one_line_on_stderr_and_exit_status_1(tmp_path):
    """Run as an operator (or cron) runs it: a storage that cannot be reached is reported in
    one line naming the problem, not a traceback, and the exit status stays 1."""
    env = server_env(tmp_path / "media", None)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        AWS_STORAGE_BUCKET_NAME="releases",
        AWS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_S3_REGION_NAME="us-east-1",
        AWS_S3_MAX_ATTEMPTS="1",
        AWS_S3_CONNECT_TIMEOUT="2",
    )
    finished = subprocess.run(
        [sys.executable, "manage.py", "reconcile_storage"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 1
    assert "Traceback" not in finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith("CommandError: Storage unavailable, nothing reconciled: ")
    assert "Could not connect to the endpoint URL" in lines[0]
    assert finished.stdout == ""
