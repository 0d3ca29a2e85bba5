"""Nothing is lost: an update that fails half-way leaves the release, its metadata, licenses and
file (row and bytes) as they were, and no new object behind; cleanup after commit never fails
an update."""

import errno
import logging
import random
import uuid

import pytest
from django.db import DatabaseError

from releases import storage as storage_module
from releases.models import LedgerEntry, ReleaseFile, ReleaseLicense, ReleaseMetadata
from releases.storage import release_storage
from teams.models import AuditLog
from tests.helpers import (
    assert_error,
    attach_file,
    break_storage_writes,
    make_jar,
    put_release,
    read_object,
    stored_objects,
    team_state,
    update_data,
)

OLD_BYTES = make_jar("Manifest-Version: 1.0\r\nMain-Class: com.example.Old\r\n\r\n")
NEW_BYTES = make_jar(
    "Manifest-Version: 1.0\r\nMain-Class: com.example.New\r\n\r\n",
    # Incompressible, so the archive spans several of the storage's write chunks.
    extra={"com/example/New.class": random.Random(0).randbytes(200_000)},
)


# Every test here runs on local files and on the S3 test server.
pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def prepared(world):
    """``world.release`` with a file, metadata and licenses, all known."""
    world.old_file = attach_file(
        world.release, "old.jar", OLD_BYTES, main_class_name="com.example.Old"
    )
    ReleaseMetadata.objects.bulk_create(
        [
            ReleaseMetadata(release=world.release, position=0, key="channel", value="stable"),
            ReleaseMetadata(release=world.release, position=1, key="a", value="b", locked=True),
        ]
    )
    ReleaseLicense.objects.bulk_create(
        ReleaseLicense(release=world.release, license=license) for license in world.licenses[:2]
    )
    return world


def changing_everything(world, **overrides):
    data = update_data(
        world.release,
        version="2.0.0",
        status="DEPRECATED",
        keepExistingFile=False,
        metadata=[{"key": "new", "value": "value"}],
        licenseIds=[str(world.licenses[2].id)],
    )
    data.update(overrides)
    return data


def put_update(client, world, data, file=("new.jar", NEW_BYTES)):
    return put_release(client, world.team.id, world.release.id, key=world.key, data=data, file=file)


def release_directory(world):
    """The file names stored under the release's own prefix."""
    return release_storage().listdir(f"releases/{world.team.id}/{world.release.id}")


def assert_as_before(world, before):
    assert team_state(world.team) == before
    row = ReleaseFile.objects.get(release=world.release)
    assert (row.id, row.key, row.size) == (world.old_file.id, world.old_file.key, len(OLD_BYTES))
    assert read_object(world.old_file.key) == OLD_BYTES
    assert release_directory(world) == ([], [world.old_file.key.rsplit("/", 1)[1]])
    assert stored_objects() == [world.old_file.key]


def deletion_failures_logged(caplog):
    """The keys named by the storage's "Deleting <key> ... failed" errors."""
    return [
        record.args[0]
        for record in caplog.records
        if record.name == "releases.ledger"
        and record.levelno == logging.ERROR
        and record.msg.startswith("Deleting %s")
        and "failed" in record.msg
    ]


def test_the_prepared_state_is_what_the_tests_compare_against(prepared):
    state = team_state(prepared.team)
    assert [item["key"] for item in state["metadata"]] == ["channel", "a"]
    assert len(state["licenses"]) == 2
    assert [file["key"] for file in state["files"]] == [prepared.old_file.key]
    assert state["stored"] == [prepared.old_file.key]


@pytest.mark.parametrize(
    ("overrides", "file", "status", "details", "code"),
    [
        pytest.param(
            {"licenseIds": [str(uuid.uuid4())]},
            ("new.jar", NEW_BYTES),
            404,
            "One or more license IDs not found",
            "LICENSE_NOT_FOUND",
            id="unknown-license",
        ),
        pytest.param(
            {},
            ("new.jar", b"not a jar"),
            400,
            "Invalid JAR file",
            "BAD_REQUEST",
            id="bad-jar",
        ),
        pytest.param(
            {},
            ("new.jar", make_jar("Manifest-Version: 1.0\r\n\r\n")),
            400,
            "Main class not found in JAR file",
            "BAD_REQUEST",
            id="no-main-class",
        ),
        pytest.param(
            {"version": "0.9.0"},
            ("new.jar", NEW_BYTES),
            409,
            "A release with this version already exists for this product and branch",
            "BAD_REQUEST",
            id="version-taken",
        ),
        pytest.param(
            {"branchId": str(uuid.uuid4())},
            ("new.jar", NEW_BYTES),
            404,
            "Branch not found",
            "RELEASE_NOT_FOUND",
            id="unknown-branch",
        ),
        pytest.param(
            {},
            ("no-extension", NEW_BYTES),
            400,
            "File must have an extension",
            "BAD_REQUEST",
            id="no-extension",
        ),
    ],
)
def test_a_refused_update_with_a_file_changes_nothing(
    client, prepared, django_capture_on_commit_callbacks, overrides, file, status, details, code
):
    before = team_state(prepared.team)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = put_update(client, prepared, changing_everything(prepared, **overrides), file)

    assert_error(response, status, details, code)
    assert callbacks == []
    assert_as_before(prepared, before)


@pytest.mark.parametrize(
    ("manager", "method"),
    [
        pytest.param(ReleaseFile.objects, "create", id="file-row"),
        pytest.param(ReleaseMetadata.objects, "bulk_create", id="metadata"),
        pytest.param(ReleaseLicense.objects, "bulk_create", id="licenses"),
        pytest.param(AuditLog.objects, "create", id="audit-log"),
    ],
)
def test_a_database_error_after_the_new_object_was_stored_changes_nothing(
    client,
    prepared,
    monkeypatch,
    caplog,
    django_capture_on_commit_callbacks,
    manager,
    method,
):
    before = team_state(prepared.team)
    seen_while_failing = []

    def fail(*args, **kwargs):
        seen_while_failing.append(stored_objects())
        raise DatabaseError("the database went away")

    monkeypatch.setattr(manager, method, fail)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = put_update(client, prepared, changing_everything(prepared))

    assert_error(
        response, 500, "Internal server error", "INTERNAL_SERVER_ERROR"
    )  # not the exception's text
    assert callbacks == []
    # The new object really was in storage when the database failed...
    assert len(seen_while_failing) == 1
    assert len(seen_while_failing[0]) == 2
    assert prepared.old_file.key in seen_while_failing[0]
    # ...and it is gone now, while everything else is as it was.
    monkeypatch.undo()
    assert_as_before(prepared, before)
    assert "the database went away" in caplog.text


def test_storage_failing_on_write_is_a_503_and_changes_nothing(
    client, prepared, monkeypatch, django_capture_on_commit_callbacks
):
    before = team_state(prepared.team)
    break_storage_writes(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = put_update(client, prepared, changing_everything(prepared))

    assert_error(response, 503, "Storage unavailable", "INTERNAL_SERVER_ERROR")
    assert callbacks == []
    monkeypatch.undo()
    assert_as_before(prepared, before)


# A full local disk: on S3 a failed PUT stores nothing, so there is nothing partial to clean.
@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_storage_failing_part_way_through_a_write_leaves_no_partial_object(
    client, prepared, monkeypatch, django_capture_on_commit_callbacks
):
    """The upload cannot be linked into place (another file system), and the disk fills up
    part-way through the copy: the copy already exists by then, and it must not stay behind."""
    written = []

    def other_file_system(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def copy_until_full(reader, writer, length=0):
        writer.write(reader.read(1000))
        written.append(1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    before = team_state(prepared.team)
    monkeypatch.setattr(storage_module.os, "link", other_file_system)
    monkeypatch.setattr(storage_module.shutil, "copyfileobj", copy_until_full)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = put_update(client, prepared, changing_everything(prepared))

    assert_error(response, 503, "Storage unavailable", "INTERNAL_SERVER_ERROR")
    assert callbacks == []
    assert written, "the backend wrote part of the object before failing"
    monkeypatch.undo()
    assert_as_before(prepared, before)


def test_storage_failing_to_delete_the_old_object_after_commit_still_updates(
    client, prepared, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def cannot_delete(name):
        raise OSError(errno.EIO, "storage is down")

    monkeypatch.setattr(release_storage(), "delete", cannot_delete)

    with (
        caplog.at_level(logging.ERROR, logger="releases.ledger"),
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        response = put_update(client, prepared, changing_everything(prepared))

    assert response.status_code == 200, response.json()
    assert len(callbacks) == 1
    row = ReleaseFile.objects.get(release=prepared.release)
    assert row.key != prepared.old_file.key
    assert row.main_class_name == "com.example.New"
    assert read_object(row.key) == NEW_BYTES
    # The old object is left for the reconciler, and the log says which one.
    assert read_object(prepared.old_file.key) == OLD_BYTES
    assert deletion_failures_logged(caplog) == [prepared.old_file.key]
    assert response.json()["data"]["version"] == "2.0.0"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "failure",
    [OSError(errno.EIO, "storage is down"), RuntimeError("an unexpected storage failure")],
    ids=["storage-error", "unexpected-error"],
)
def test_a_failed_delete_after_a_real_commit_loses_nothing(
    client, prepared, monkeypatch, caplog, failure
):
    """With a real commit the cleanup runs inside the request: whatever it raises, the update
    stands and the new object (which the committed row points at) stays."""

    def cannot_delete(name):
        raise failure

    monkeypatch.setattr(release_storage(), "delete", cannot_delete)

    with caplog.at_level(logging.ERROR):
        response = put_update(client, prepared, changing_everything(prepared))

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=prepared.release)
    assert response.json()["data"]["file"]["key"] == row.key
    assert read_object(row.key) == NEW_BYTES
    assert read_object(prepared.old_file.key) == OLD_BYTES
    assert sorted(stored_objects()) == sorted([row.key, prepared.old_file.key])
    assert deletion_failures_logged(caplog) == [prepared.old_file.key]


@pytest.mark.django_db(transaction=True)
def test_after_a_real_commit_the_replaced_object_is_deleted(client, prepared):
    response = put_update(client, prepared, changing_everything(prepared))

    assert response.status_code == 200, response.json()
    row = ReleaseFile.objects.get(release=prepared.release)
    assert stored_objects() == [row.key]
    assert read_object(row.key) == NEW_BYTES


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "interrupt", [SystemExit(1), KeyboardInterrupt()], ids=["system-exit", "keyboard-interrupt"]
)
def test_an_interrupt_inside_the_after_commit_delete_keeps_the_committed_build(
    client, prepared, monkeypatch, interrupt
):
    """Gunicorn's timeout raises SystemExit wherever the worker is, here in the delete of the
    replaced object after the commit. No cleanup may then touch the new object, which the
    committed row references; the old one stays recorded for the reconciler."""

    def interrupted(name):
        raise interrupt

    monkeypatch.setattr(release_storage(), "delete", interrupted)

    with pytest.raises(type(interrupt)):
        put_update(client, prepared, changing_everything(prepared))

    monkeypatch.undo()
    row = ReleaseFile.objects.get(release=prepared.release)
    assert row.key != prepared.old_file.key
    assert read_object(row.key) == NEW_BYTES
    assert read_object(prepared.old_file.key) == OLD_BYTES
    assert list(LedgerEntry.objects.values_list("key", "state")) == [
        (prepared.old_file.key, "DELETING")
    ]


@pytest.mark.django_db(transaction=True)
def test_an_interrupt_before_the_commit_abandons_only_the_new_object(client, prepared, monkeypatch):
    """SystemExit inside the locked transaction: it rolls back, so the staged object is
    abandoned (its record says so) and the old build is untouched."""
    before = team_state(prepared.team)

    def interrupted(*args, **kwargs):
        raise SystemExit(1)

    monkeypatch.setattr(AuditLog.objects, "create", interrupted)
    with pytest.raises(SystemExit):
        put_update(client, prepared, changing_everything(prepared))
    monkeypatch.undo()
    assert_as_before(prepared, before)
    assert not LedgerEntry.objects.exists()
