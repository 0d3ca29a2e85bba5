"""The error table of the Update Release contract for the path, the ``data`` field and the ids
it references, the order in which problems are reported, and that no error changes anything."""

import uuid

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from releases.models import Release, ReleaseLicense, ReleaseMetadata
from teams.models import Team
from tests.helpers import (
    assert_error,
    make_jar,
    put_release,
    release_url,
    team_state,
    update_data,
)

INVALID_IDS = ["not-a-uuid", "1", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "00000000-0000-0000-0000"]
LATEST_RULE = "Cannot set as latest release when license IDs are provided"
VERSION_TAKEN = "A release with this version already exists for this product and branch"
MULTIPART_HINT = {
    "errors": [
        {
            "message": (
                "Send multipart/form-data with the release's JSON in a 'data' field (and the "
                "build in an optional 'file' part), e.g. curl -F 'data=<data.json' -F file=@app.jar"
            ),
            "path": [],
        }
    ]
}


@pytest.fixture
def world(world):
    """The owner's world, with metadata and a license on the release, so that a failed request
    that cleared them would show."""
    ReleaseMetadata.objects.create(release=world.release, key="channel", value="beta")
    ReleaseLicense.objects.create(release=world.release, license=world.licenses[0])
    return world


def put(client, world, release=None, *, key=None, **kwargs):
    release = release or world.release
    return put_release(client, world.team.id, release.id, key=key or world.key, **kwargs)


def changes(world, release=None, **overrides):
    """A valid ``data`` that would change the release if it were applied."""
    release = release or world.release
    return update_data(
        release,
        **{"version": "7.7.7", "metadata": [{"key": "k", "value": "v"}], **overrides},
    )


# --- Path ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("team_id", INVALID_IDS)
def test_team_id_not_a_uuid(client, world, team_id):
    before = team_state(world.team)

    response = put_release(client, team_id, world.release.id, key=world.key, data=changes(world))

    assert_error(response, 400, "Invalid teamId")
    assert team_state(world.team) == before


@pytest.mark.parametrize("release_id", INVALID_IDS)
def test_release_id_not_a_uuid(client, world, release_id):
    before = team_state(world.team)

    response = put_release(client, world.team.id, release_id, key=world.key, data=changes(world))

    assert_error(response, 400, "Invalid releaseId")
    assert team_state(world.team) == before


# --- The data field -------------------------------------------------------------------------


def test_missing_data_field(client, world):
    before = team_state(world.team)

    response = put(client, world)

    assert_error(response, 400, "Missing data field")
    assert team_state(world.team) == before


def test_missing_data_field_with_a_file(client, world):
    before = team_state(world.team)

    response = put(client, world, file=("app.jar", make_jar()))

    assert_error(response, 400, "Missing data field")
    assert team_state(world.team) == before


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "{",
        '{"version": "1.0.0",}',
        "NaN",
        "Infinity",
        '{"version": NaN}',
        "[]",
        '[{"version": "1.0.0"}]',
        '"a string"',
        "123",
        "true",
        "null",
    ],
)
def test_data_not_json_or_not_an_object(client, world, raw):
    before = team_state(world.team)

    response = put(client, world, raw_data=raw)

    assert_error(response, 400, "Invalid JSON in data field")
    assert team_state(world.team) == before


def test_invalid_request_body_is_the_whole_envelope(client, world):
    before = team_state(world.team)
    data = changes(
        world,
        version="1",
        setAsLatest="true",
        metadata=[{"key": "a", "value": "b"}, {"key": "", "value": "c"}],
    )

    response = put(client, world, data=data)

    assert_error(
        response,
        400,
        "Invalid request body",
        data={
            "errors": [
                {"message": "Ensure this field has at least 3 characters.", "path": ["version"]},
                {"message": "Must be a boolean.", "path": ["setAsLatest"]},
                {"message": "This field may not be blank.", "path": ["metadata", 1, "key"]},
            ]
        },
    )
    assert team_state(world.team) == before


# --- References -----------------------------------------------------------------------------


def test_release_not_the_teams(client, world):
    before = team_state(world.team)

    response = put_release(client, world.team.id, uuid.uuid4(), key=world.key, data=changes(world))

    assert_error(response, 404, "Release not found", "RELEASE_NOT_FOUND")
    assert team_state(world.team) == before


def test_product_not_found(client, world):
    before = team_state(world.team)

    response = put(client, world, data=changes(world, productId=str(uuid.uuid4())))

    assert_error(response, 404, "Product not found", "PRODUCT_NOT_FOUND")
    assert team_state(world.team) == before


def test_branch_not_found(client, world):
    before = team_state(world.team)

    response = put(client, world, data=changes(world, branchId=str(uuid.uuid4())))

    assert_error(response, 404, "Branch not found", "RELEASE_NOT_FOUND")
    assert team_state(world.team) == before


def test_branch_of_another_product_of_the_same_team(client, world):
    other_branch = world.other_product.branches.create(name="beta")
    before = team_state(world.team)

    response = put(client, world, data=changes(world, branchId=str(other_branch.id)))

    assert_error(response, 404, "Branch not found", "RELEASE_NOT_FOUND")
    assert team_state(world.team) == before


def test_branch_of_the_old_product_when_moving_to_another(client, world):
    world.release.branch = world.branch
    world.release.save()
    before = team_state(world.team)

    data = changes(world, productId=str(world.other_product.id), branchId=str(world.branch.id))
    response = put(client, world, data=data)

    assert_error(response, 404, "Branch not found", "RELEASE_NOT_FOUND")
    assert team_state(world.team) == before


def test_license_not_the_teams(client, world):
    before = team_state(world.team)
    license_ids = [str(world.licenses[1].id), str(uuid.uuid4()), str(world.licenses[2].id)]

    response = put(client, world, data=changes(world, licenseIds=license_ids))

    assert_error(response, 404, "One or more license IDs not found", "LICENSE_NOT_FOUND")
    assert team_state(world.team) == before


# --- licenseIds and latest ------------------------------------------------------------------


@pytest.mark.parametrize("status", ["PUBLISHED", "DRAFT"])
def test_licenses_with_set_as_latest(client, world, status):
    before = team_state(world.team)
    data = changes(world, status=status, setAsLatest=True, licenseIds=[str(world.licenses[1].id)])

    response = put(client, world, data=data)

    assert_error(response, 400, LATEST_RULE)
    assert team_state(world.team) == before


def test_licenses_on_the_latest_release_that_stays_published(client, world):
    latest = world.other_release
    ReleaseMetadata.objects.create(release=latest, key="channel", value="stable")
    before = team_state(world.team)
    data = changes(world, latest, status="PUBLISHED", licenseIds=[str(world.licenses[1].id)])

    response = put(client, world, latest, data=data)

    assert_error(response, 400, LATEST_RULE)
    assert team_state(world.team) == before


def test_licenses_on_the_latest_release_that_stops_being_published(client, world):
    latest = world.other_release
    data = changes(world, latest, status="DEPRECATED", licenseIds=[str(world.licenses[1].id)])

    response = put(client, world, latest, data=data)

    assert response.status_code == 200, response.json()
    latest.refresh_from_db()
    assert (latest.status, latest.latest) == ("DEPRECATED", False)
    assert list(latest.license_links.values_list("license_id", flat=True)) == [world.licenses[1].id]


def test_licenses_on_a_release_that_is_not_latest(client, world):
    data = changes(world, status="PUBLISHED", licenseIds=[str(world.licenses[1].id)])

    response = put(client, world, data=data)

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["licenseIds"] == [str(world.licenses[1].id)]
    world.release.refresh_from_db()
    assert (world.release.status, world.release.latest) == ("PUBLISHED", False)


# --- Version conflicts ----------------------------------------------------------------------


def test_version_taken_on_the_main_branch(client, world):
    before = team_state(world.team)

    response = put(client, world, data=changes(world, version=world.other_release.version))

    assert_error(response, 409, VERSION_TAKEN)
    assert team_state(world.team) == before


def test_version_taken_on_a_branch(client, world):
    Release.objects.create(
        team=world.team, product=world.product, branch=world.branch, version="2.0.0"
    )
    before = team_state(world.team)

    data = changes(world, version="2.0.0", branchId=str(world.branch.id))
    response = put(client, world, data=data)

    assert_error(response, 409, VERSION_TAKEN)
    assert team_state(world.team) == before


def test_same_version_on_another_branch_is_fine(client, world):
    data = changes(world, version=world.other_release.version, branchId=str(world.branch.id))

    response = put(client, world, data=data)

    assert response.status_code == 200, response.json()
    world.release.refresh_from_db()
    assert (world.release.version, world.release.branch_id) == ("0.9.0", world.branch.id)


def test_same_version_on_another_product_is_fine(client, world):
    data = changes(
        world, version=world.other_release.version, productId=str(world.other_product.id)
    )

    response = put(client, world, data=data)

    assert response.status_code == 200, response.json()
    world.release.refresh_from_db()
    assert (world.release.version, world.release.product_id) == ("0.9.0", world.other_product.id)


def test_keeping_its_own_version_is_not_a_conflict(client, world):
    response = put(client, world, data=changes(world, version=world.release.version))

    assert response.status_code == 200, response.json()


# --- Order: the earliest row of the table wins ----------------------------------------------


def test_bad_team_id_before_authentication(client, world):
    response = put_release(client, "nope", world.release.id, key=None, data=changes(world))

    assert_error(response, 400, "Invalid teamId")


def test_bad_team_id_before_bad_release_id(client, world):
    response = put_release(client, "nope", "nope", key=world.key, data=changes(world))

    assert_error(response, 400, "Invalid teamId")


def test_bad_release_id_before_authentication(client, world):
    response = put_release(client, world.team.id, "nope", key="wrong", data=changes(world))

    assert_error(response, 400, "Invalid releaseId")


def test_bad_team_id_before_bad_content_type(client, world):
    response = client.put(
        release_url("nope", world.release.id), data="{}", content_type="application/json"
    )

    assert_error(response, 400, "Invalid teamId")


def test_authentication_before_bad_content_type(client, world):
    before = team_state(world.team)

    response = client.put(
        release_url(world.team.id, world.release.id),
        data="{}",
        content_type="application/json",
    )

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")
    assert response["WWW-Authenticate"] == "Bearer"
    assert team_state(world.team) == before


def test_authentication_before_missing_data(client, world):
    response = put(client, world, key="lukittu_api_key_000000000000_wrong")

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")


def test_bad_content_type_before_oversized_content_length(client, world):
    response = client.put(
        release_url(world.team.id, world.release.id),
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
        CONTENT_LENGTH=str(50 * 1024 * 1024),
    )

    assert_error(response, 415, "Unsupported media type", data=MULTIPART_HINT)


def test_oversized_content_length_before_missing_data(client, world):
    response = client.put(
        release_url(world.team.id, world.release.id),
        data=encode_multipart(BOUNDARY, {}),
        content_type=MULTIPART_CONTENT,
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
        CONTENT_LENGTH=str(50 * 1024 * 1024),
    )

    assert_error(response, 413, "File too large. Maximum size is 10 MB")


def test_invalid_json_before_unknown_release(client, world):
    response = put_release(client, world.team.id, uuid.uuid4(), key=world.key, raw_data="{")

    assert_error(response, 400, "Invalid JSON in data field")


def test_invalid_body_before_unknown_release(client, world):
    before = team_state(world.team)

    response = put_release(
        client, world.team.id, uuid.uuid4(), key=world.key, data=changes(world, version="1")
    )

    assert_error(
        response,
        400,
        "Invalid request body",
        data={
            "errors": [
                {"message": "Ensure this field has at least 3 characters.", "path": ["version"]}
            ]
        },
    )
    assert team_state(world.team) == before


def test_invalid_body_before_oversized_file(client, world, settings):
    settings.MAX_RELEASE_FILE_MB = 1
    before = team_state(world.team)

    response = put(
        client,
        world,
        data=changes(world, status="LIVE"),
        file=("app.bin", b"x" * (1024 * 1024 + 1)),
    )

    assert_error(
        response,
        400,
        "Invalid request body",
        data={"errors": [{"message": '"LIVE" is not a valid choice.', "path": ["status"]}]},
    )
    assert team_state(world.team) == before


def test_oversized_file_before_unknown_release(client, world, settings):
    settings.MAX_RELEASE_FILE_MB = 1
    before = team_state(world.team)

    response = put_release(
        client,
        world.team.id,
        uuid.uuid4(),
        key=world.key,
        data=changes(world),
        file=("app.bin", b"x" * (1024 * 1024 + 1)),
    )

    assert_error(response, 413, "File too large. Maximum size is 1 MB")
    assert team_state(world.team) == before


def test_paid_feature_before_unknown_release(client, world):
    Team.objects.filter(pk=world.team.pk).update(file_uploads_enabled=False)
    before = team_state(world.team)

    response = put_release(
        client,
        world.team.id,
        uuid.uuid4(),
        key=world.key,
        data=changes(world),
        file=("app.jar", make_jar()),
    )

    assert_error(response, 403, "File uploads require a paid subscription", "FORBIDDEN")
    assert team_state(world.team) == before


def test_unknown_release_before_unknown_product(client, world):
    response = put_release(
        client,
        world.team.id,
        uuid.uuid4(),
        key=world.key,
        data=changes(world, productId=str(uuid.uuid4())),
    )

    assert_error(response, 404, "Release not found", "RELEASE_NOT_FOUND")


def test_unknown_product_before_unknown_branch(client, world):
    data = changes(world, productId=str(uuid.uuid4()), branchId=str(uuid.uuid4()))

    response = put(client, world, data=data)

    assert_error(response, 404, "Product not found", "PRODUCT_NOT_FOUND")


def test_unknown_product_before_unknown_license(client, world):
    before = team_state(world.team)
    data = changes(world, productId=str(uuid.uuid4()), licenseIds=[str(uuid.uuid4())])

    response = put(client, world, data=data)

    assert_error(response, 404, "Product not found", "PRODUCT_NOT_FOUND")
    assert team_state(world.team) == before


def test_unknown_branch_before_unknown_license(client, world):
    data = changes(world, branchId=str(uuid.uuid4()), licenseIds=[str(uuid.uuid4())])

    response = put(client, world, data=data)

    assert_error(response, 404, "Branch not found", "RELEASE_NOT_FOUND")


def test_unknown_license_before_latest_rule(client, world):
    data = changes(world, status="PUBLISHED", setAsLatest=True, licenseIds=[str(uuid.uuid4())])

    response = put(client, world, data=data)

    assert_error(response, 404, "One or more license IDs not found", "LICENSE_NOT_FOUND")


def test_unknown_license_before_version_conflict(client, world):
    before = team_state(world.team)
    data = changes(world, version=world.other_release.version, licenseIds=[str(uuid.uuid4())])

    response = put(client, world, data=data)

    assert_error(response, 404, "One or more license IDs not found", "LICENSE_NOT_FOUND")
    assert team_state(world.team) == before


def test_latest_rule_before_version_conflict(client, world):
    data = changes(
        world,
        version=world.other_release.version,
        status="PUBLISHED",
        setAsLatest=True,
        licenseIds=[str(world.licenses[1].id)],
    )

    response = put(client, world, data=data)

    assert_error(response, 400, LATEST_RULE)


@pytest.mark.parametrize(
    "file",
    [("no-extension", b"plain bytes"), ("app.jar", b"not a zip"), ("app.jar", make_jar(None))],
)
def test_version_conflict_before_file_checks(client, world, file):
    before = team_state(world.team)

    response = put(
        client, world, data=changes(world, version=world.other_release.version), file=file
    )

    assert_error(response, 409, VERSION_TAKEN)
    assert team_state(world.team) == before
