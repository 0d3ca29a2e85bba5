"""Failures after commit lose nothing and leave nothing behind for long: stale objects are
recorded, and `reconcile_storage` deletes orphans and reports missing objects. Each test runs
on local files and on the S3 test server."""

import io

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.files.base import ContentFile
from django.core.management import call_command

from releases.models import ReleaseFile, StaleObject
from releases.storage import list_objects, release_storage
from tests.helpers import make_jar, put_release, update_data


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
    assert list(StaleObject.objects.values_list("key", "reason")) == [(old.key, "replaced")]
    assert "recorded for reconcile_storage" in caplog.text

    code, out, _ = reconcile()  # the default grace period does not apply to recorded objects
    assert code == 0
    assert keys() == {new.key}
    assert not StaleObject.objects.exists()
    assert "deleted 1 stale objects" in out
    assert release_storage().open(new.key).read() == second_jar


def test_a_stale_record_for_a_referenced_object_never_deletes_it(client, world, backend):
    assert upload(client, world, make_jar()).status_code == 200
    current = ReleaseFile.objects.get(release=world.release)
    StaleObject.objects.create(key=current.key, reason="replaced")
    assert reconcile("--older-than", "0")[0] == 0
    assert current.key in keys()
    assert not StaleObject.objects.exists()


def test_objects_left_by_a_process_that_died_after_commit_are_deleted(
    client, world, backend, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(client, world, make_jar()).status_code == 200
    old = ReleaseFile.objects.get(release=world.release)
    # The replaced object's delete never runs: the process "died" right after the commit.
    with django_capture_on_commit_callbacks(execute=False):
        assert upload(client, world, make_jar(extra={"v2.txt": "2"})).status_code == 200
    new = ReleaseFile.objects.get(release=world.release)
    assert keys() == {old.key, new.key}

    code, out, _ = reconcile()  # within the grace period: an upload may still be in flight
    assert code == 0 and keys() == {old.key, new.key}
    assert "kept 1 younger than 60 minutes" in out

    code, out, _ = reconcile("--older-than", "0", "--dry-run")
    assert code == 0 and keys() == {old.key, new.key}
    assert f"would delete orphan {old.key}" in out

    code, out, _ = reconcile("--older-than", "0")
    assert code == 0 and keys() == {new.key}
    assert f"deleted orphan {old.key}" in out
    assert "deleted 1 orphaned objects" in out


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
    assert "deleted 0 orphaned objects" in out and "0 release files missing" in out
