"""Release files on a real S3-compatible server: keys, bytes, content type, privacy and
integrity in transit."""

import base64
import hashlib

import pytest
import requests
from botocore.config import Config
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from releases.models import Release, ReleaseFile
from releases.storage import release_storage
from tests.conftest import free_port
from tests.helpers import make_jar, put_release, result_of, update_data


def upload(client, world, name="app.jar", content=None, **overrides):
    content = make_jar() if content is None else content
    data = update_data(world.release, **overrides)
    return put_release(
        client, world.team.id, world.release.id, key=world.key, data=data, file=(name, content)
    )


def test_upload_stores_exactly_the_bytes_under_the_server_key(client, world, s3):
    jar = make_jar()
    response = upload(client, world, content=jar)
    assert response.status_code == 200, response.json()
    file = ReleaseFile.objects.get(release=world.release)
    assert file.key == f"releases/{world.team.id}/{world.release.id}/{file.id}.jar"
    stored = s3.client.get_object(Bucket=s3.bucket, Key=file.key)
    assert stored["Body"].read() == jar
    assert stored["ContentType"] == "application/java-archive"
    assert file.checksum == hashlib.md5(jar).hexdigest()
    assert file.sha256 == hashlib.sha256(jar).hexdigest()
    listed = s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert [item["Key"] for item in listed] == [file.key]


def test_the_clients_content_type_is_ignored(client, world, s3):
    data = update_data(world.release)
    response = client.put(
        f"/api/v1/dev/teams/{world.team.id}/releases/{world.release.id}",
        data=(
            b'--B\r\nContent-Disposition: form-data; name="data"\r\n\r\n'
            + __import__("json").dumps(data).encode()
            + b'\r\n--B\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"'
            b"\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>\r\n--B--\r\n"
        ),
        content_type="multipart/form-data; boundary=B",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )
    assert response.status_code == 200, response.json()
    key = ReleaseFile.objects.get(release=world.release).key
    assert s3.client.head_object(Bucket=s3.bucket, Key=key)["ContentType"] == "text/plain"


def test_objects_are_private(client, world, s3):
    assert upload(client, world).status_code == 200
    key = ReleaseFile.objects.get(release=world.release).key
    grants = s3.client.get_object_acl(Bucket=s3.bucket, Key=key)["Grants"]
    assert all(grant["Grantee"].get("Type") == "CanonicalUser" for grant in grants)
    assert not any(
        "AllUsers" in str(grant) or "AuthenticatedUsers" in str(grant) for grant in grants
    )
    # No public URL: an unsigned GET is refused, and the storage only hands out signed links.
    assert requests.get(f"{s3.endpoint}/{s3.bucket}/{key}", timeout=10).status_code == 403
    assert "Signature" in release_storage().url(key)


def test_each_put_carries_the_sha256_for_the_store_to_verify(client, world, s3):
    sent = []
    s3_client = release_storage().connection.meta.client
    s3_client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append(request.headers.get("x-amz-checksum-sha256")),
    )
    jar = make_jar()
    assert upload(client, world, content=jar).status_code == 200
    expected = base64.b64encode(hashlib.sha256(jar).digest()).decode()
    assert [value.decode() if isinstance(value, bytes) else value for value in sent] == [expected]


def test_a_write_corrupted_in_transit_is_refused_and_removed(client, world, s3, caplog):
    def corrupt(request, **_):
        request.body = b"X" * 10
        request.headers["Content-Length"] = "10"

    release_storage().connection.meta.client.meta.events.register(
        "before-send.s3.PutObject", corrupt
    )
    response = upload(client, world)
    assert response.status_code == 503
    assert result_of(response) == {
        "valid": False,
        "details": "Storage unavailable",
        "code": "INTERNAL_SERVER_ERROR",
    }
    assert not ReleaseFile.objects.filter(release=world.release).exists()
    assert s3.client.list_objects_v2(Bucket=s3.bucket).get("KeyCount") == 0
    assert "does not match the upload" in caplog.text


def test_an_unreachable_store_is_503_and_changes_nothing(client, world, s3, settings):
    options = settings.STORAGES["default"]["OPTIONS"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {
                **options,
                "endpoint_url": f"http://127.0.0.1:{free_port()}",
                "client_config": Config(
                    connect_timeout=1, retries={"max_attempts": 1, "mode": "standard"}
                ),
            },
        },
    }
    before = Release.objects.get(pk=world.release.pk)
    response = upload(client, world, version="2.0.0")
    assert response.status_code == 503
    assert result_of(response)["details"] == "Storage unavailable"
    after = Release.objects.get(pk=world.release.pk)
    assert (after.version, after.updated_at) == (before.version, before.updated_at)
    assert not ReleaseFile.objects.exists()


def test_admin_download_redirects_to_a_short_lived_presigned_url(client, world, s3):
    jar = make_jar()
    assert upload(client, world, content=jar).status_code == 200
    file = ReleaseFile.objects.get(release=world.release)
    staff = Client()
    staff.force_login(User.objects.create_superuser("op", "op@example.com", "pw-tests-only"))
    response = staff.get(reverse("admin:releases_releasefile_download", args=[file.pk]))
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint}/{s3.bucket}/{file.key}?")
    assert "Expires=" in location or "X-Amz-Expires=300" in location
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200 and fetched.content == jar
    assert (
        Client().get(reverse("admin:releases_releasefile_download", args=[file.pk])).status_code
        == 302
    )


@pytest.mark.parametrize("keep", [True, False])
def test_keep_and_remove_on_s3(client, world, s3, django_capture_on_commit_callbacks, keep):
    assert upload(client, world).status_code == 200
    first = ReleaseFile.objects.get(release=world.release)
    with django_capture_on_commit_callbacks(execute=True):
        response = put_release(
            client,
            world.team.id,
            world.release.id,
            key=world.key,
            data=update_data(world.release, keepExistingFile=keep),
        )
    assert response.status_code == 200
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents", [])]
    if keep:
        assert ReleaseFile.objects.get(release=world.release).pk == first.pk
        assert keys == [first.key]
    else:
        assert not ReleaseFile.objects.filter(release=world.release).exists()
        assert keys == []


def test_replace_on_s3_deletes_the_old_object_only_after_commit(
    client, world, s3, django_capture_on_commit_callbacks
):
    assert upload(client, world, content=make_jar()).status_code == 200
    first = ReleaseFile.objects.get(release=world.release)
    second_jar = make_jar(extra={"b.txt": "second"})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert upload(client, world, content=second_jar).status_code == 200
    second = ReleaseFile.objects.get(release=world.release)
    keys = {o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert keys == {first.key, second.key}  # not yet committed: the old object is still there
    for callback in callbacks:
        callback()
    keys = {o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    assert keys == {second.key}
    assert s3.client.get_object(Bucket=s3.bucket, Key=second.key)["Body"].read() == second_jar
