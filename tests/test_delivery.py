"""The Client API in process: the classloader's bytes, the plain download, the update check,
their checks in the README's order, seats, session keys and isolation."""

import hashlib
import os
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.files.base import ContentFile
from django.db import connections
from django.test import Client
from django.utils import timezone

from delivery import seats
from delivery.models import Download, Seat, SessionKeyUse, hwid_digest
from lukittu.api import ApiError
from releases.models import Product, Release, ReleaseLicense, ReleaseStatus
from teams.keys import key_pair_for
from teams.models import License
from teams.services import license_create
from tests.conftest import World, build_world
from tests.helpers import attach_file, make_jar
from tests.loader import Loader, classloader_url, download_url, latest_url

HWID = "hwid-0123456789-abcdef"
OTHER_HWID = "hwid-9876543210-fedcba"


@pytest.fixture(autouse=True)
def _generous_rate_limits(settings: Any) -> None:
    settings.CLIENT_IP_RATE = "10000/minute"
    settings.CLIENT_LICENSE_RATE = "10000/minute"


class Shop:
    """A team selling ``world.product``: a license for it, a published latest release with a
    JAR, and the loader's view of the team's public key."""

    def __init__(self, world: World, content: bytes) -> None:
        self.world = world
        self.team = world.team
        self.content = content
        self.license, self.key = license_create(team=world.team)
        world.product.licenses.add(self.license)
        self.release = world.other_release  # 0.9.0, PUBLISHED, latest, main line
        self.file = attach_file(self.release, "app.jar", content, main_class_name="com.ex.Main")
        self.public_key_pem = key_pair_for(world.team).public_key_pem

    def params(self, **overrides: Any) -> dict[str, Any]:
        values = {
            "licenseKey": self.key,
            "productId": str(self.world.product.id),
            "hardwareIdentifier": HWID,
        }
        values.update(overrides)
        return {name: value for name, value in values.items() if value is not None}

    def classloader(
        self, client: Client, loader: Loader | None = None, team_id: Any = None, **overrides: Any
    ) -> Any:
        loader = loader or Loader(self.public_key_pem)
        params = self.params(sessionKey=loader.session_key_hex(), **overrides)
        response = client.get(classloader_url(team_id or self.team.id), params)
        response.loader = loader
        return response


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def assert_refused(response: Any, status: int, code: str, details: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    result = response.json()["result"]
    assert result["valid"] is False
    assert result["code"] == code, result
    if details is not None:
        assert result["details"] == details


@pytest.fixture
def shop(world: World) -> Shop:
    return Shop(world, make_jar(extra={"com/ex/Main.class": os.urandom(2000)}))


# --- The classloader's bytes ------------------------------------------------------------------


def test_a_loader_gets_the_uploaded_bytes_back_exactly(client, world, backend):
    content = make_jar(extra={"big.bin": os.urandom(3 * 1024 * 1024 + 123)})
    shop = Shop(world, content)

    response = shop.classloader(client)

    assert response.status_code == 200, response.content[:300]
    body = body_of(response)
    assert response.loader.decrypt(body) == content
    # Frames of at most 64 KiB of plaintext, each 32 bytes of framing more.
    frames = -(-len(content) // (64 * 1024))
    assert len(body) == len(content) + 32 * frames
    assert response["Content-Length"] == str(len(body))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-File-Size"] == str(len(content))
    assert response["X-Version"] == "0.9.0"
    assert response["X-Latest-Version"] == "0.9.0"
    assert response["X-Product-Name"] == world.product.name
    assert response["X-Release-Status"] == "PUBLISHED"
    assert response["X-Main-Class"] == "com.ex.Main"
    assert response["X-Release-Created-At"].endswith("Z")
    assert response["X-File-Created-At"].endswith("Z")
    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_product_name_with_a_line_break_still_delivers(client, shop):
    """Names written before control characters were refused go out with spaces for them,
    not as a 500 (a line break cannot be in a header)."""
    Product.objects.filter(pk=shop.world.product.pk).update(name="Old\r\nname\x07")

    response = shop.classloader(client)

    assert response.status_code == 200, response.content[:300]
    assert response["X-Product-Name"] == "Old  name "
    assert response.loader.decrypt(body_of(response)) == shop.content


def test_each_frame_has_its_own_iv(client, shop):
    response = shop.classloader(client)
    body = body_of(response)

    ivs, offset = [], 0
    while offset < len(body):
        length = int.from_bytes(body[offset : offset + 4], "big")
        ivs.append(body[offset + 4 : offset + 16])
        offset += 4 + length
    assert len(set(ivs)) == len(ivs)


def test_a_tampered_frame_does_not_decrypt(client, shop):
    from cryptography.exceptions import InvalidTag

    response = shop.classloader(client)
    body = bytearray(body_of(response))
    body[40] ^= 1

    with pytest.raises(InvalidTag):
        response.loader.decrypt(bytes(body))


def test_the_legacy_device_identifier_names_the_hardware(client, shop):
    loader = Loader(shop.public_key_pem)
    params = shop.params(sessionKey=loader.session_key_hex(), hardwareIdentifier=None)
    params["deviceIdentifier"] = HWID

    response = client.get(classloader_url(shop.team.id), params)

    assert response.status_code == 200
    assert Seat.objects.get(kind=Seat.Kind.HWID).value == hwid_digest(HWID)


# --- Checks, in order ---------------------------------------------------------------------


def test_the_team_id_is_checked_first(client, shop):
    response = client.get(classloader_url("not-a-uuid"), {"unknown": "x"})

    assert_refused(response, 400, "BAD_REQUEST", "Invalid team UUID")


@pytest.mark.parametrize(
    ("change", "details"),
    [
        ({"licenseKey": None}, "License key is required"),
        (
            {"licenseKey": "abcde-12345"},
            "License key must be in the format of XXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
        ),
        ({"productId": "nope"}, "Product UUID must be a valid UUID"),
        (
            {"productId": "١٢٣٤٥٦٧٨-1234-1234-1234-123456789012"},
            "Product UUID must be a valid UUID",
        ),
        ({"hardwareIdentifier": "short"}, "Hardware identifier must be at least 10 characters"),
        ({"hardwareIdentifier": "has spaces in it"}, "Hardware identifier must not contain spaces"),
        (
            {"hardwareIdentifier": "x" * 1001},
            "Hardware identifier must be less than 1000 characters",
        ),
        ({"sessionKey": "abc"}, "Session key must be at least 10 characters"),
        ({"customerId": "42"}, "Customer UUID must be a valid UUID"),
        ({"version": "1 0"}, "Version must be 1 to 255 characters without spaces"),
        ({"colour": "red"}, None),
    ],
)
def test_parameters_are_checked_with_the_problem_named(client, shop, change, details):
    loader = Loader(shop.public_key_pem)
    params = shop.params(sessionKey=loader.session_key_hex())
    params.update(change)
    params = {name: value for name, value in params.items() if value is not None}

    # A team that does not exist: the parameters are checked before the team is looked up.
    response = client.get(classloader_url(uuid.uuid4()), params)

    assert_refused(response, 400, "BAD_REQUEST", details)
    if details is None:
        assert response.json()["result"]["details"].startswith("Unknown parameter colour")


def test_a_parameter_given_twice_is_refused(client, shop):
    response = client.get(
        classloader_url(shop.team.id) + f"?licenseKey={shop.key}&licenseKey={shop.key}"
    )

    assert_refused(response, 400, "BAD_REQUEST", "Parameter licenseKey must be given once")


def test_a_missing_or_deleted_team_is_not_found(client, shop):
    assert_refused(shop.classloader(client, team_id=uuid.uuid4()), 404, "TEAM_NOT_FOUND")
    shop.team.deleted_at = timezone.now()
    shop.team.save()

    assert_refused(shop.classloader(client), 404, "TEAM_NOT_FOUND")


def test_a_team_without_the_classloader_feature_is_forbidden(client, shop):
    shop.team.file_uploads_enabled = False
    shop.team.save()

    assert_refused(shop.classloader(client), 403, "FORBIDDEN")


@pytest.mark.parametrize("session_key", ["zz" * 20, "ab" * 256, "abc" * 5])
def test_a_session_key_that_does_not_decrypt_is_refused(client, shop, session_key):
    params = shop.params(sessionKey=session_key)

    response = client.get(classloader_url(shop.team.id), params)

    assert_refused(response, 400, "INVALID_SESSION_KEY", "Invalid session key")


def test_a_session_key_for_another_teams_key_is_refused(client, shop, outsider):
    loader = Loader(key_pair_for(outsider.team).public_key_pem)

    assert_refused(shop.classloader(client, loader), 400, "INVALID_SESSION_KEY")


def test_a_team_without_a_key_pair_gets_one_on_its_first_classloader_request(client, shop):
    from teams.models import TeamKeyPair

    TeamKeyPair.objects.filter(team=shop.team).delete()

    # The loader's key was the old pair's: it cannot decrypt with the new one.
    assert_refused(shop.classloader(client), 400, "INVALID_SESSION_KEY")
    new_pair = TeamKeyPair.objects.get(team=shop.team)
    assert new_pair.public_key_pem != shop.public_key_pem
    shop.public_key_pem = new_pair.public_key_pem
    assert shop.classloader(client).status_code == 200


def test_a_session_key_works_once_in_fifteen_minutes(client, shop):
    loader = Loader(shop.public_key_pem)
    params = shop.params(sessionKey=loader.session_key_hex())

    first = client.get(classloader_url(shop.team.id), params)
    again = client.get(classloader_url(shop.team.id), params)
    assert first.status_code == 200
    assert_refused(again, 429, "RATE_LIMIT", "Rate limited")
    assert "Retry-After" not in again  # waiting does not help: a new key does

    SessionKeyUse.objects.update(used_at=timezone.now() - timedelta(minutes=16))
    later = client.get(classloader_url(shop.team.id), params)
    assert later.status_code == 200
    assert SessionKeyUse.objects.count() == 1


def test_a_license_of_another_team_is_not_found(client, shop, outsider):
    outsiders_license, outsiders_key = license_create(team=outsider.team)
    outsider.product.licenses.add(outsiders_license)

    response = shop.classloader(client, licenseKey=outsiders_key)

    assert_refused(response, 404, "LICENSE_NOT_FOUND", "License not found")


def test_a_product_not_on_the_license_is_not_found(client, shop, outsider):
    other = shop.classloader(client, productId=str(shop.world.other_product.id))
    # Another team's product, even one the outsider's license would open.
    foreign = shop.classloader(client, productId=str(outsider.product.id))

    assert_refused(other, 404, "PRODUCT_NOT_FOUND", "Product not found")
    assert_refused(foreign, 404, "PRODUCT_NOT_FOUND", "Product not found")


def test_a_branch_of_another_product_is_not_found(client, shop):
    response = shop.classloader(client, branch="no-such-branch")

    assert_refused(response, 404, "RELEASE_NOT_FOUND", "Branch not found")


def test_the_license_and_release_checks_come_in_order(client, shop):
    """Everything wrong at once; each fix uncovers the next error in the README's order."""
    release = Release.objects.create(
        team=shop.team, product=shop.world.product, version="2.0.0", status=ReleaseStatus.ARCHIVED
    )
    attach_file(release, "app.jar", shop.content)
    other_license, _ = license_create(team=shop.team)
    ReleaseLicense.objects.create(release=release, license=other_license)
    License.objects.filter(pk=shop.license.pk).update(
        suspended=True, expires_at=timezone.now() - timedelta(days=1), ip_limit=1, hwid_limit=1
    )
    Seat.objects.create(license=shop.license, kind=Seat.Kind.IP, value="10.9.9.9")
    Seat.objects.create(license=shop.license, kind=Seat.Kind.HWID, value=hwid_digest(OTHER_HWID))

    def attempt() -> Any:
        return shop.classloader(client, version="2.0.0")

    assert_refused(shop.classloader(client, version="9.9.9"), 404, "RELEASE_NOT_FOUND")
    assert_refused(attempt(), 403, "RELEASE_ARCHIVED", "Release is archived")
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.DRAFT)
    assert_refused(attempt(), 403, "RELEASE_DRAFT", "Release is draft")
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.DEPRECATED)
    assert_refused(attempt(), 403, "NO_ACCESS_TO_RELEASE")
    ReleaseLicense.objects.create(release=release, license=shop.license)
    assert_refused(attempt(), 403, "LICENSE_SUSPENDED", "License suspended")
    License.objects.filter(pk=shop.license.pk).update(suspended=False)
    assert_refused(attempt(), 403, "LICENSE_EXPIRED", "License expired")
    License.objects.filter(pk=shop.license.pk).update(expires_at=None)
    assert_refused(attempt(), 403, "IP_LIMIT_REACHED", "IP limit reached")
    seats.free(shop.license, Seat.Kind.IP)
    assert_refused(attempt(), 403, "HWID_LIMIT_REACHED", "HWID limit reached")
    seats.free(shop.license, Seat.Kind.HWID)

    delivered = attempt()
    assert delivered.status_code == 200
    assert delivered["X-Release-Status"] == "DEPRECATED"
    assert delivered["X-Version"] == "2.0.0"
    assert delivered["X-Latest-Version"] == "0.9.0"
    assert delivered.loader.decrypt(body_of(delivered)) == shop.content


def test_a_refused_request_takes_no_seat_and_records_nothing(client, shop):
    License.objects.filter(pk=shop.license.pk).update(suspended=True)

    assert_refused(shop.classloader(client), 403, "LICENSE_SUSPENDED")

    assert not Seat.objects.exists()
    assert not Download.objects.exists()


# --- Which release -----------------------------------------------------------------------------


def test_without_a_version_the_lines_latest_is_delivered_and_only_the_main_line(client, shop):
    branch_release = Release.objects.create(
        team=shop.team,
        product=shop.world.product,
        branch=shop.world.branch,
        version="5.0.0-beta",
        status=ReleaseStatus.PUBLISHED,
        latest=True,
    )
    attach_file(branch_release, "beta.jar", b"beta build")

    main = shop.classloader(client)
    beta = shop.classloader(client, branch="beta")

    assert main["X-Version"] == "0.9.0"
    assert main.loader.decrypt(body_of(main)) == shop.content
    assert beta["X-Version"] == "5.0.0-beta"
    assert beta.loader.decrypt(body_of(beta)) == b"beta build"


def test_a_version_of_another_branch_is_not_found(client, shop):
    branch_release = Release.objects.create(
        team=shop.team,
        product=shop.world.product,
        branch=shop.world.branch,
        version="5.0.0-beta",
        status=ReleaseStatus.PUBLISHED,
    )
    attach_file(branch_release, "beta.jar", b"beta build")

    assert_refused(shop.classloader(client, version="5.0.0-beta"), 404, "RELEASE_NOT_FOUND")
    assert shop.classloader(client, version="5.0.0-beta", branch="beta").status_code == 200


def test_a_release_without_a_file_is_never_delivered(client, shop):
    # 1.0.0 has no file: asked for by version it does not exist for delivery.
    Release.objects.filter(pk=shop.world.release.pk).update(status=ReleaseStatus.PUBLISHED)
    assert_refused(shop.classloader(client, version="1.0.0"), 404, "RELEASE_NOT_FOUND")
    # The latest release losing its file leaves nothing to deliver by default.
    shop.file.delete()
    assert_refused(shop.classloader(client), 404, "RELEASE_NOT_FOUND", "Release not found")


def test_a_missing_object_is_a_server_error_not_a_download(client, world, backend):
    """On S3 the object is opened while the session key and the seats are dealt with; the
    seats' transaction waits for it and rolls back: no seat, no record."""
    from releases.storage import release_storage

    shop = Shop(world, make_jar())
    release_storage().delete(shop.file.key)

    response = shop.classloader(client)

    assert_refused(response, 500, "INTERNAL_SERVER_ERROR")
    assert not Download.objects.exists()
    assert not Seat.objects.exists()


def test_an_early_opened_build_is_closed_when_the_request_is_refused(
    client, world, backend, monkeypatch
):
    """The classloader starts opening the build before the session key is claimed: a
    replayed key is refused, and the object opened for it is closed, not left to leak."""
    from delivery import streams

    shop = Shop(world, make_jar())
    opened: list[Any] = []
    real_opened = streams._opened

    def recording(key: str, open_body: Any) -> Any:
        stored = real_opened(key, open_body)
        opened.append(stored.body)
        return stored

    monkeypatch.setattr(streams, "_opened", recording)
    loader = Loader(shop.public_key_pem)
    first = shop.classloader(client, loader)
    body_of(first)
    replayed = shop.classloader(client, loader)

    assert_refused(replayed, 429, "RATE_LIMIT")
    # On S3 the opening thread may still be at it: it closes what it opens once it has it.
    deadline = time.monotonic() + 10
    while not (len(opened) == 2 and body_closed(opened[1])) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(opened) == 2
    assert body_closed(opened[1])
    assert Download.objects.count() == 1


def body_closed(body: Any) -> bool:
    """A local file's, or an S3 StreamingBody's (its urllib3 response's) closed state."""
    raw = getattr(body, "_raw_stream", body)
    return bool(raw.closed)


@pytest.mark.parametrize("endpoint", [classloader_url, download_url])
@pytest.mark.parametrize("stored", [b"shorter", b"x" * 300_000])
def test_an_object_of_another_size_than_its_row_is_cut_off(client, shop, endpoint, stored):
    """Never other bytes than the row describes: the stream stops with an error, so the
    client sees a body shorter than its Content-Length."""
    from delivery.streams import WrongSize
    from releases.storage import release_storage

    storage = release_storage()
    storage.delete(shop.file.key)
    storage.save(shop.file.key, ContentFile(stored))
    params = shop.params()
    if endpoint is classloader_url:
        params["sessionKey"] = Loader(shop.public_key_pem).session_key_hex()

    response = client.get(endpoint(shop.team.id), params)

    assert response.status_code == 200
    with pytest.raises(WrongSize):
        b"".join(response.streaming_content)


# On S3 the plain download is a presigned URL: the service opens nothing there.
@pytest.mark.parametrize(
    ("endpoint", "on_s3"),
    [
        (classloader_url, False),
        # Live by hand: it asks for the S3 server by name, where tests/process_tests.py cannot see.
        pytest.param(classloader_url, True, marks=pytest.mark.live),
        (download_url, False),
    ],
)
def test_a_full_license_is_reported_before_a_missing_object(
    client, world, request, endpoint, on_s3
):
    """The README's order: the seats, then the storage. The object is opened while the seats
    are counted, and its error is reported only once they would have let the device in."""
    from releases.storage import release_storage

    if on_s3:
        request.getfixturevalue("s3")
    shop = Shop(world, make_jar())
    release_storage().delete(shop.file.key)
    License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)
    Seat.objects.create(license=shop.license, kind=Seat.Kind.HWID, value=hwid_digest(OTHER_HWID))
    loader = Loader(shop.public_key_pem)
    params = shop.params(sessionKey=loader.session_key_hex())
    if endpoint is download_url:
        del params["sessionKey"]

    full = client.get(endpoint(shop.team.id), params)
    seats.free(shop.license)
    if endpoint is classloader_url:
        params["sessionKey"] = Loader(shop.public_key_pem).session_key_hex()
    missing = client.get(endpoint(shop.team.id), params)

    assert_refused(full, 403, "HWID_LIMIT_REACHED")
    assert_refused(
        missing, 500, "INTERNAL_SERVER_ERROR", "The release's file is missing from storage"
    )
    assert not Seat.objects.exists()
    assert not Download.objects.exists()


# --- Seats --------------------------------------------------------------------------------------


def test_a_hwid_limit_lets_known_devices_in_and_new_ones_wait(client, shop):
    License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)

    assert shop.classloader(client).status_code == 200
    assert_refused(
        shop.classloader(client, hardwareIdentifier=OTHER_HWID), 403, "HWID_LIMIT_REACHED"
    )
    assert shop.classloader(client).status_code == 200


def test_an_idle_seat_stops_counting_after_the_teams_timeout(client, shop):
    License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)
    shop.team.seat_timeout_minutes = 30
    shop.team.save()
    assert shop.classloader(client).status_code == 200

    Seat.objects.update(last_seen_at=timezone.now() - timedelta(minutes=31))

    assert shop.classloader(client, hardwareIdentifier=OTHER_HWID).status_code == 200
    assert Seat.objects.filter(kind=Seat.Kind.HWID).count() == 2


def test_without_a_timeout_seats_are_kept(client, shop):
    License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)
    assert shop.classloader(client).status_code == 200
    Seat.objects.update(last_seen_at=timezone.now() - timedelta(days=365))

    assert_refused(
        shop.classloader(client, hardwareIdentifier=OTHER_HWID), 403, "HWID_LIMIT_REACHED"
    )


def test_an_ip_limit_counts_addresses(shop):
    License.objects.filter(pk=shop.license.pk).update(ip_limit=1)
    first = Client(REMOTE_ADDR="10.0.0.1")
    second = Client(REMOTE_ADDR="10.0.0.2")

    assert shop.classloader(first).status_code == 200
    assert_refused(shop.classloader(second, hardwareIdentifier=OTHER_HWID), 403, "IP_LIMIT_REACHED")
    assert shop.classloader(first, hardwareIdentifier=OTHER_HWID).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_two_new_devices_racing_for_the_last_seat_get_it_once():
    world = build_world("Racers")
    shop = Shop(world, b"x" * 100)
    License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)
    license = License.objects.get(pk=shop.license.pk)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def claim(number: int) -> None:
        device = seats.Device(hardware_identifier=f"racing-device-{number:04d}", ip_address=None)
        handout = seats.Handout(
            release_id=shop.release.pk,
            version="0.9.0",
            file_id=shop.file.pk,
            file_sha256=shop.file.sha256,
            endpoint=Download.Endpoint.CLASSLOADER,
            user_agent="race",
        )
        try:
            barrier.wait()
            seats.take(world.team, license, device, handout)
            outcomes.append("seat")
        except ApiError as error:
            outcomes.append(error.error_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(outcomes) == ["HWID_LIMIT_REACHED"] * 5 + ["seat"]
    assert Seat.objects.filter(license=license).count() == 1
    assert Download.objects.filter(license=license).count() == 1


# --- Records ------------------------------------------------------------------------------------


def test_a_download_is_recorded_with_a_hashed_hwid(shop):
    response = shop.classloader(Client(HTTP_USER_AGENT="Loader/1.0"))
    body_of(response)

    record = Download.objects.get()
    assert record.release_id == shop.release.pk
    assert record.file_id == shop.file.pk
    assert record.file_sha256 == hashlib.sha256(shop.content).hexdigest()
    assert record.license_id == shop.license.pk
    assert record.hwid_digest == hwid_digest(HWID) != HWID
    assert record.ip_address == "127.0.0.1"
    assert record.endpoint == Download.Endpoint.CLASSLOADER
    assert record.user_agent == "Loader/1.0"
    seat_values = set(Seat.objects.values_list("kind", "value"))
    assert seat_values == {("IP", "127.0.0.1"), ("HWID", hwid_digest(HWID))}


def test_records_outlive_the_release(client, shop):
    body_of(shop.classloader(client))
    shop.file.delete()
    shop.release.delete()

    record = Download.objects.get()
    assert record.release_id is None
    assert record.version == "0.9.0"


# --- The plain download and the update check ------------------------------------------------


def test_the_plain_download_streams_local_files_with_their_digests(client, shop):
    response = client.get(download_url(shop.team.id), shop.params())

    assert response.status_code == 200
    assert body_of(response) == shop.content
    assert response["Content-Length"] == str(len(shop.content))
    assert response["Content-Disposition"] == 'attachment; filename="app.jar"'
    digest = hashlib.sha256(shop.content)
    assert response["X-Checksum-SHA256"] == digest.hexdigest()
    import base64

    assert response["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
    assert Download.objects.get().endpoint == Download.Endpoint.DOWNLOAD


def test_the_plain_download_redirects_to_a_short_lived_s3_url(client, shop_on_s3):
    shop = shop_on_s3
    response = client.get(download_url(shop.team.id), shop.params())

    assert response.status_code == 302
    location = response["Location"]
    assert "X-Amz-Expires=300" in location
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in location
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == shop.content
    assert fetched.headers["Content-Disposition"] == 'attachment; filename="app.jar"'
    assert Download.objects.count() == 1


def test_the_plain_download_refuses_a_session_key(client, shop):
    response = client.get(download_url(shop.team.id), shop.params(sessionKey="ab" * 20))

    assert_refused(response, 400, "BAD_REQUEST")


def test_the_update_check_describes_what_would_be_delivered(client, shop):
    response = client.get(latest_url(shop.team.id), shop.params())

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["version"] == "0.9.0"
    assert data["status"] == "PUBLISHED"
    assert data["latest"] is True
    assert data["branch"] is None
    assert data["file"]["name"] == "app.jar"
    assert data["file"]["size"] == len(shop.content)
    assert data["file"]["sha256"] == hashlib.sha256(shop.content).hexdigest()
    assert data["file"]["md5"] == hashlib.md5(shop.content).hexdigest()
    assert data["file"]["mainClassName"] == "com.ex.Main"
    # A check takes no seat and is not a download.
    assert not Seat.objects.exists()
    assert not Download.objects.exists()


def test_the_update_check_applies_the_seat_rules(client, shop):
    License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)
    Seat.objects.create(license=shop.license, kind=Seat.Kind.HWID, value=hwid_digest(OTHER_HWID))

    response = client.get(latest_url(shop.team.id), shop.params())

    assert_refused(response, 403, "HWID_LIMIT_REACHED")


@pytest.fixture
def shop_on_s3(world: World, s3: Any) -> Shop:
    return Shop(world, make_jar(extra={"a.bin": os.urandom(5000)}))


# --- Rate limits ----------------------------------------------------------------------------


def test_the_ip_limit_comes_before_the_team_lookup(client, shop, settings):
    settings.CLIENT_IP_RATE = "2/minute"
    for _ in range(2):
        client.get(latest_url(uuid.uuid4()), shop.params())

    response = client.get(latest_url(uuid.uuid4()), shop.params())

    assert_refused(response, 429, "RATE_LIMIT", "Rate limited")
    assert 1 <= int(response["Retry-After"]) <= 60


def test_the_license_key_limit_counts_every_address(shop, settings):
    settings.CLIENT_LICENSE_RATE = "2/minute"
    for number in range(2):
        Client(REMOTE_ADDR=f"10.1.0.{number}").get(latest_url(shop.team.id), shop.params())

    response = Client(REMOTE_ADDR="10.1.0.9").get(latest_url(shop.team.id), shop.params())
    other_license = Client(REMOTE_ADDR="10.1.0.9").get(
        latest_url(shop.team.id), shop.params(licenseKey="AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    )

    assert_refused(response, 429, "RATE_LIMIT")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert_refused(other_license, 404, "LICENSE_NOT_FOUND")
