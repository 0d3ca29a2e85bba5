"""Create Release (``POST /teams/{teamId}/releases``): the envelope, defaults, files on both
backends, latest, the error table in its order, the per-product limit, version conflicts,
nothing lost on failure, the audit log and team scoping."""

import hashlib
import random
import re
import uuid

import pytest
from django.db import DatabaseError

from releases.models import Release, ReleaseFile, ReleaseLicense, ReleaseMetadata
from teams.models import DEFAULT_MAX_RELEASES_PER_PRODUCT, AuditLog, Team, unknown_creator
from teams.services import team_create
from tests.helpers import (
    assert_error,
    break_storage_writes,
    create_data,
    make_jar,
    post_release,
    read_object,
    release_json,
    result_of,
    stored_objects,
    team_state,
)

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
LATEST_RULE = "Cannot set as latest release when license IDs are provided"
VERSION_TAKEN = "A release with this version already exists for this product and branch"
LIMIT_REACHED = "Max releases per product reached"
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
JAR = make_jar(
    "Manifest-Version: 1.0\r\nMain-Class: com.example.Created\r\n\r\n",
    # Incompressible, so the archive spans several of the storage's write chunks.
    extra={"com/example/Created.class": random.Random(1).randbytes(150_000)},
)


def create(client, world, data, **kwargs):
    return post_release(client, world.team.id, key=world.key, data=data, **kwargs)


def new_release(response):
    return Release.objects.get(pk=response.json()["data"]["id"])


def set_team(world, **fields):
    Team.objects.filter(pk=world.team.pk).update(**fields)


# --- Success --------------------------------------------------------------------------------


def test_create_returns_201_with_the_whole_envelope(client, world):
    data = create_data(
        world.product,
        "2.0.0-rc.1",
        status="DRAFT",
        setAsLatest=False,
        branchId=str(world.branch.id),
        metadata=[
            {"key": "channel", "value": "rc", "locked": True},
            {"key": "notes", "value": "first candidate"},
        ],
        licenseIds=[str(world.licenses[1].id), str(world.licenses[0].id)],
    )

    response = create(client, world, data)

    assert response.status_code == 201, response.json()
    assert not response.has_header("Location")
    assert response["Content-Type"] == "application/json"
    release = new_release(response)
    body = response.json()
    assert body == {
        "data": {
            "id": str(release.id),
            "version": "2.0.0-rc.1",
            "status": "DRAFT",
            "latest": False,
            "productId": str(world.product.id),
            "branchId": str(world.branch.id),
            "teamId": str(world.team.id),
            "createdAt": body["data"]["createdAt"],
            "updatedAt": body["data"]["updatedAt"],
            "metadata": [
                {"key": "channel", "value": "rc", "locked": True},
                {"key": "notes", "value": "first candidate", "locked": False},
            ],
            "product": {
                "id": str(world.product.id),
                "name": world.product.name,
                "url": None,
                "teamId": str(world.team.id),
                "createdByUserId": str(unknown_creator()),
                "createdAt": body["data"]["product"]["createdAt"],
                "updatedAt": body["data"]["product"]["updatedAt"],
            },
            "branch": {"id": str(world.branch.id), "name": "beta"},
            "file": None,
            "licenseIds": [str(world.licenses[1].id), str(world.licenses[0].id)],
        },
        "result": {
            "timestamp": body["result"]["timestamp"],
            "valid": True,
            "details": "Release created",
        },
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["result"]["timestamp"])
    # The response is what the database now holds, read afresh.
    assert body["data"] == release_json(release)
    assert release.team_id == world.team.id
    assert list(ReleaseMetadata.objects.filter(release=release).values_list("key", "locked")) == [
        ("channel", True),
        ("notes", False),
    ]
    assert set(
        ReleaseLicense.objects.filter(release=release).values_list("license", flat=True)
    ) == {
        world.licenses[0].id,
        world.licenses[1].id,
    }
    assert ReleaseFile.objects.filter(release=release).count() == 0
    assert stored_objects() == []


def test_optional_fields_take_their_defaults(client, world):
    data = {"version": "3.0.0", "productId": str(world.product.id), "status": "PUBLISHED"}

    response = create(client, world, data)

    assert response.status_code == 201, response.json()
    release = new_release(response)
    payload = response.json()["data"]
    assert (payload["latest"], payload["branchId"], payload["branch"]) == (False, None, None)
    assert (payload["metadata"], payload["licenseIds"], payload["file"]) == ([], [], None)
    assert payload == release_json(release)
    assert (release.version, release.status, release.latest, release.branch_id) == (
        "3.0.0",
        "PUBLISHED",
        False,
        None,
    )
    # setAsLatest defaults to false: the product's latest release keeps the flag.
    world.other_release.refresh_from_db()
    assert world.other_release.latest is True


def test_explicit_null_branch_is_the_main_line(client, world):
    response = create(client, world, create_data(world.product, branchId=None))

    assert response.status_code == 201, response.json()
    assert new_release(response).branch_id is None


def test_repeated_license_ids_count_once(client, world):
    license_id = str(world.licenses[2].id)

    response = create(client, world, create_data(world.product, licenseIds=[license_id] * 3))

    assert response.status_code == 201, response.json()
    assert response.json()["data"]["licenseIds"] == [license_id]
    assert ReleaseLicense.objects.filter(release=new_release(response)).count() == 1


def test_set_as_latest_demotes_the_previous_latest(client, world):
    before = world.other_release.updated_at

    response = create(client, world, create_data(world.product, "1.1.0", setAsLatest=True))

    assert response.status_code == 201, response.json()
    assert response.json()["data"]["latest"] is True
    world.other_release.refresh_from_db()
    assert world.other_release.latest is False
    assert world.other_release.updated_at > before
    assert list(
        Release.objects.filter(product=world.product, latest=True).values_list("version", flat=True)
    ) == ["1.1.0"]


def test_set_as_latest_on_a_branch_leaves_the_main_lines_latest(client, world):
    on_branch = Release.objects.create(
        team=world.team,
        product=world.product,
        branch=world.branch,
        version="2.0.0-beta.1",
        status="PUBLISHED",
        latest=True,
    )
    data = create_data(
        world.product, "2.0.0-beta.2", setAsLatest=True, branchId=str(world.branch.id)
    )

    response = create(client, world, data)

    assert response.status_code == 201, response.json()
    on_branch.refresh_from_db()
    world.other_release.refresh_from_db()
    assert on_branch.latest is False
    assert world.other_release.latest is True
    assert new_release(response).latest is True


@pytest.mark.parametrize("status", ["DRAFT", "DEPRECATED", "ARCHIVED"])
def test_set_as_latest_only_takes_for_a_published_release(client, world, status):
    response = create(client, world, create_data(world.product, status=status, setAsLatest=True))

    assert response.status_code == 201, response.json()
    assert response.json()["data"]["latest"] is False
    assert new_release(response).latest is False
    world.other_release.refresh_from_db()
    assert world.other_release.latest is True


def test_rate_limit_headers_on_create(client, world):
    response = create(client, world, create_data(world.product))

    assert response.status_code == 201, response.json()
    assert response["X-RateLimit-Limit"] == "1200"
    assert response["X-RateLimit-Remaining"] == "1199"
    assert int(response["X-RateLimit-Reset"]) >= 1


# --- The data field -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_keep_existing_file_is_unknown_to_create(client, world, value):
    before = team_state(world.team)

    response = create(client, world, create_data(world.product, keepExistingFile=value))

    assert_error(
        response,
        400,
        "Invalid request body",
        data={"errors": [{"message": "Unknown field.", "path": ["keepExistingFile"]}]},
    )
    assert team_state(world.team) == before


def test_required_fields_and_bad_optional_ones_are_each_reported(client, world):
    before = team_state(world.team)
    data = {
        "setAsLatest": "yes",
        "branchId": "main",
        "metadata": None,
        "licenseIds": "all",
        "extra": 1,
    }

    response = create(client, world, data)

    assert_error(
        response,
        400,
        "Invalid request body",
        data={
            "errors": [
                {"message": "This field is required.", "path": ["version"]},
                {"message": "This field is required.", "path": ["productId"]},
                {"message": "This field is required.", "path": ["status"]},
                {"message": "Must be a boolean.", "path": ["setAsLatest"]},
                {"message": "Must be a UUID.", "path": ["branchId"]},
                {"message": "This field may not be null.", "path": ["metadata"]},
                {
                    "message": 'Expected a list of items but got type "str".',
                    "path": ["licenseIds"],
                },
                {"message": "Unknown field.", "path": ["extra"]},
            ]
        },
    )
    assert team_state(world.team) == before


def test_missing_data_field(client, world):
    before = team_state(world.team)

    response = post_release(client, world.team.id, key=world.key, file=("a.zip", b"zip"))

    assert_error(response, 400, "Missing data field")
    assert team_state(world.team) == before


def test_data_not_json(client, world):
    before = team_state(world.team)

    response = post_release(client, world.team.id, key=world.key, raw_data="{not json")

    assert_error(response, 400, "Invalid JSON in data field")
    assert team_state(world.team) == before


def test_not_multipart_is_415(client, world):
    before = team_state(world.team)

    response = client.post(
        f"/api/v1/dev/teams/{world.team.id}/releases",
        data=create_data(world.product),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )

    assert_error(response, 415, "Unsupported media type", data=MULTIPART_HINT)
    assert team_state(world.team) == before


@pytest.mark.parametrize("key", [None, "lukittu_api_key_000000000000_wrong"])
def test_no_or_a_wrong_key_is_401(client, world, key):
    before = team_state(world.team)

    response = post_release(client, world.team.id, key=key, data=create_data(world.product))

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")
    assert response["WWW-Authenticate"] == "Bearer"
    assert team_state(world.team) == before


def test_team_id_not_a_uuid(client, world):
    response = post_release(client, "not-a-uuid", key=world.key, data=create_data(world.product))

    assert_error(response, 400, "Invalid teamId")
    assert Release.objects.filter(team=world.team).count() == 2


# --- Files, on local files and on the S3 test server ----------------------------------------


@pytest.mark.usefixtures("backend")
def test_create_with_a_jar_stores_it_under_a_server_made_key(client, world):
    response = create(client, world, create_data(world.product), file=("Plugin-1.0.JAR", JAR))

    assert response.status_code == 201, response.json()
    release = new_release(response)
    row = ReleaseFile.objects.get(release=release)
    assert re.fullmatch(rf"releases/{world.team.id}/{release.id}/{UUID}\.jar", row.key)
    assert row.key == f"releases/{world.team.id}/{release.id}/{row.id}.jar"
    assert (row.team_id, row.name, row.size) == (world.team.id, "Plugin-1.0.JAR", len(JAR))
    assert row.checksum == hashlib.md5(JAR).hexdigest()
    assert row.sha256 == hashlib.sha256(JAR).hexdigest()
    assert row.main_class_name == "com.example.Created"
    assert read_object(row.key) == JAR
    assert stored_objects() == [row.key]
    assert response.json()["data"]["file"] == release_json(release)["file"]
    assert response.json()["data"]["file"]["mainClassName"] == "com.example.Created"


@pytest.mark.usefixtures("backend")
def test_two_creates_never_share_an_object(client, world):
    first = create(client, world, create_data(world.product, "5.0.0"), file=("a.zip", b"one"))
    second = create(client, world, create_data(world.product, "5.0.1"), file=("a.zip", b"two"))

    assert (first.status_code, second.status_code) == (201, 201)
    keys = [response.json()["data"]["file"]["key"] for response in (first, second)]
    assert keys[0] != keys[1]
    assert [read_object(key) for key in keys] == [b"one", b"two"]
    assert stored_objects() == sorted(keys)


def test_a_file_without_the_paid_feature_is_403(client, world):
    set_team(world, file_uploads_enabled=False)
    before = team_state(world.team)

    response = create(client, world, create_data(world.product), file=("a.zip", b"zip"))

    assert_error(response, 403, "File uploads require a paid subscription", "FORBIDDEN")
    assert team_state(world.team) == before


def test_without_the_paid_feature_a_release_without_a_file_is_created(client, world):
    set_team(world, file_uploads_enabled=False)

    response = create(client, world, create_data(world.product))

    assert response.status_code == 201, response.json()


# --- The error table, in order --------------------------------------------------------------

ROWS = [
    ("too-large", 413, "File too large. Maximum size is 1 MB", "BAD_REQUEST"),
    ("paid", 403, "File uploads require a paid subscription", "FORBIDDEN"),
    ("product", 404, "Product not found", "PRODUCT_NOT_FOUND"),
    ("branch", 404, "Branch not found", "RELEASE_NOT_FOUND"),
    ("license", 404, "One or more license IDs not found", "LICENSE_NOT_FOUND"),
    ("latest", 400, LATEST_RULE, "BAD_REQUEST"),
    ("limit", 403, LIMIT_REACHED, "FORBIDDEN"),
    ("version", 409, VERSION_TAKEN, "BAD_REQUEST"),
    ("extension", 400, "File must have an extension", "BAD_REQUEST"),
    ("jar", 400, "Invalid JAR file", "BAD_REQUEST"),
    ("main-class", 400, "Main class not found in JAR file", "BAD_REQUEST"),
    ("storage", 400, "Storage limit reached", "BAD_REQUEST"),
]
NAMES = [row[0] for row in ROWS]


def request_with_problems(world, settings, problems):
    """A create with exactly ``problems`` (names from ``ROWS``); the rest of it is valid."""
    settings.MAX_RELEASE_FILE_MB = 1
    set_team(
        world,
        file_uploads_enabled="paid" not in problems,
        max_releases_per_product=2 if "limit" in problems else 100,  # the product has 2
        storage_limit_bytes=100 if "storage" in problems else 10 * 1024 * 1024,
    )
    license_ids = []
    if "latest" in problems:
        license_ids.append(str(world.licenses[0].id))
    if "license" in problems:
        license_ids.append(str(uuid.uuid4()))
    data = create_data(
        world.product,
        "0.9.0" if "version" in problems else "4.0.0",  # 0.9.0: the product's main line has it
        productId=str(uuid.uuid4() if "product" in problems else world.product.id),
        branchId=str(uuid.uuid4()) if "branch" in problems else None,
        setAsLatest="latest" in problems or not license_ids,
        licenseIds=license_ids,
        metadata=[{"key": "k", "value": "v"}],
    )
    content = make_jar(extra={"padding.bin": random.Random(2).randbytes(300)})  # over 100 bytes
    name = "build.jar"
    if "extension" in problems:
        name = "build"
    elif "jar" in problems:
        content = b"not a zip archive " * 20
    elif "main-class" in problems:
        content = make_jar(
            "Manifest-Version: 1.0\r\n\r\n", extra={"pad": random.Random(3).randbytes(300)}
        )
    assert ("storage" not in problems) or len(content) > 100
    if "too-large" in problems:
        content = content + b"\0" * (1024 * 1024 + 1 - len(content))
    return data, (name, content)


@pytest.mark.parametrize("first", range(len(ROWS)), ids=NAMES)
def test_the_earliest_problem_is_reported_and_nothing_changes(
    client, world, settings, django_capture_on_commit_callbacks, first
):
    data, file = request_with_problems(world, settings, NAMES[first:])
    before = team_state(world.team)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = create(client, world, data, file=file)

    _, status, details, code = ROWS[first]
    assert_error(response, status, details, code)
    assert callbacks == []
    assert team_state(world.team) == before
    assert stored_objects() == []


def test_the_same_request_without_problems_is_created(client, world, settings):
    data, file = request_with_problems(world, settings, [])

    response = create(client, world, data, file=file)

    assert response.status_code == 201, response.json()
    assert response.json()["data"]["latest"] is True
    assert stored_objects() == [response.json()["data"]["file"]["key"]]


# --- The per-product release limit ----------------------------------------------------------


def add_releases(product, count, prefix="9.0", branch=None):
    for index in range(count):
        Release.objects.create(
            team=product.team, product=product, branch=branch, version=f"{prefix}.{index}"
        )


def test_teams_have_a_default_limit_of_100(world):
    team = team_create(name="Fresh")
    assert team.max_releases_per_product == DEFAULT_MAX_RELEASES_PER_PRODUCT == 100
    assert Team.objects.get(pk=world.team.pk).max_releases_per_product == 100


def test_one_below_the_limit_is_allowed_and_at_it_refused(client, world):
    set_team(world, max_releases_per_product=3)  # the product has 2

    allowed = create(client, world, create_data(world.product, "3.0.0"))
    before = team_state(world.team)
    refused = create(client, world, create_data(world.product, "3.0.1"))

    assert allowed.status_code == 201, allowed.json()
    assert_error(refused, 403, LIMIT_REACHED, "FORBIDDEN")
    assert team_state(world.team) == before
    assert Release.objects.filter(product=world.product).count() == 3


def test_the_default_limit_allows_the_100th_release_and_refuses_the_101st(client, world):
    add_releases(world.product, 97)  # with the world's 2: 99

    allowed = create(client, world, create_data(world.product, "100.0.0"))
    refused = create(client, world, create_data(world.product, "101.0.0"))

    assert allowed.status_code == 201, allowed.json()
    assert_error(refused, 403, LIMIT_REACHED, "FORBIDDEN")
    assert Release.objects.filter(product=world.product).count() == 100


def test_releases_of_other_products_do_not_count(client, world, outsider):
    set_team(world, max_releases_per_product=3)
    add_releases(world.other_product, 5)
    add_releases(outsider.product, 5)

    on_product = create(client, world, create_data(world.product, "3.0.0"))
    on_other = create(client, world, create_data(world.other_product, "3.0.0"))

    assert on_product.status_code == 201, on_product.json()
    assert_error(on_other, 403, LIMIT_REACHED, "FORBIDDEN")
    assert Release.objects.filter(product=world.product).count() == 3
    assert Release.objects.filter(product=world.other_product).count() == 5


def test_releases_on_every_branch_of_the_product_count(client, world):
    set_team(world, max_releases_per_product=3)
    add_releases(world.product, 1, branch=world.branch)  # 2 on the main line, 1 on the branch

    response = create(client, world, create_data(world.product, "3.0.0"))

    assert_error(response, 403, LIMIT_REACHED, "FORBIDDEN")


def test_the_limit_is_per_team(client, world, outsider):
    set_team(world, max_releases_per_product=2)  # the owner's product is full

    response = post_release(
        client, outsider.team.id, key=outsider.key, data=create_data(outsider.product)
    )

    assert response.status_code == 201, response.json()


# --- Version conflicts ----------------------------------------------------------------------


def test_a_version_taken_on_the_main_line_is_409(client, world):
    before = team_state(world.team)

    response = create(client, world, create_data(world.product, "1.0.0", branchId=None))

    assert_error(response, 409, VERSION_TAKEN)
    assert team_state(world.team) == before


def test_a_version_taken_on_the_same_branch_is_409(client, world):
    data = create_data(world.product, "2.0.0", branchId=str(world.branch.id))
    first = create(client, world, data)
    before = team_state(world.team)

    second = create(client, world, data)

    assert first.status_code == 201, first.json()
    assert_error(second, 409, VERSION_TAKEN)
    assert team_state(world.team) == before


def test_the_same_version_on_another_branch_or_product_is_allowed(client, world, outsider):
    on_branch = create(
        client, world, create_data(world.product, "1.0.0", branchId=str(world.branch.id))
    )
    on_other_product = create(client, world, create_data(world.other_product, "1.0.0"))

    assert on_branch.status_code == 201, on_branch.json()
    assert on_other_product.status_code == 201, on_other_product.json()
    assert Release.objects.filter(version="1.0.0").count() == 4  # with both teams' 1.0.0


def test_versions_differing_only_in_case_are_different(client, world):
    response = create(client, world, create_data(world.product, "1.0.0-RC"))
    lower = create(client, world, create_data(world.product, "1.0.0-rc"))

    assert (response.status_code, lower.status_code) == (201, 201)


# --- Nothing is lost, on local files and on the S3 test server ------------------------------


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(
    ("overrides", "file", "status", "details", "code"),
    [
        pytest.param(
            {"licenseIds": [str(uuid.uuid4())]},
            ("build.jar", JAR),
            404,
            "One or more license IDs not found",
            "LICENSE_NOT_FOUND",
            id="unknown-license",
        ),
        pytest.param(
            {},
            ("build.jar", b"PK but not a jar"),
            400,
            "Invalid JAR file",
            "BAD_REQUEST",
            id="bad-jar",
        ),
        pytest.param(
            {"version": "0.9.0"},
            ("build.jar", JAR),
            409,
            VERSION_TAKEN,
            "BAD_REQUEST",
            id="version",
        ),
    ],
)
def test_a_refused_create_with_a_file_leaves_nothing(
    client, world, django_capture_on_commit_callbacks, overrides, file, status, details, code
):
    before = team_state(world.team)
    data = create_data(world.product, metadata=[{"key": "k", "value": "v"}], **overrides)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = create(client, world, data, file=file)

    assert_error(response, status, details, code)
    assert callbacks == []
    assert team_state(world.team) == before
    assert stored_objects() == []


@pytest.mark.usefixtures("backend")
@pytest.mark.parametrize(
    ("manager", "method"),
    [
        pytest.param(Release.objects, "filter", id="demote-previous-latest"),
        pytest.param(ReleaseFile.objects, "create", id="file-row"),
        pytest.param(ReleaseMetadata.objects, "bulk_create", id="metadata"),
        pytest.param(ReleaseLicense.objects, "bulk_create", id="licenses"),
        pytest.param(AuditLog.objects, "create", id="audit-log"),
    ],
)
def test_a_database_error_after_the_object_was_stored_leaves_nothing(
    client, world, monkeypatch, caplog, django_capture_on_commit_callbacks, manager, method
):
    before = team_state(world.team)
    seen_while_failing = []
    original = getattr(manager, method)

    def fail(*args, **kwargs):
        # Only once the new object is in storage: earlier calls (lookups) go through.
        if not stored_objects():
            return original(*args, **kwargs)
        seen_while_failing.append(stored_objects())
        raise DatabaseError("the database went away")

    monkeypatch.setattr(manager, method, fail)
    data = create_data(
        world.product,
        setAsLatest=True,
        metadata=[{"key": "k", "value": "v"}],
    )
    if method == "bulk_create" and manager is ReleaseLicense.objects:
        data.update(setAsLatest=False, licenseIds=[str(world.licenses[0].id)])

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = create(client, world, data, file=("build.jar", JAR))

    assert_error(response, 500, "Internal server error", "INTERNAL_SERVER_ERROR")
    assert callbacks == []
    # The new object really was in storage when the database failed...
    assert len(seen_while_failing) == 1
    [[key]] = seen_while_failing
    assert key.startswith(f"releases/{world.team.id}/")
    # ...and it is gone now, with no release row (nor anything else) left.
    monkeypatch.undo()
    assert team_state(world.team) == before
    assert stored_objects() == []
    assert "the database went away" in caplog.text


@pytest.mark.usefixtures("backend")
def test_storage_failing_on_write_is_a_503_and_leaves_nothing(
    client, world, monkeypatch, django_capture_on_commit_callbacks
):
    before = team_state(world.team)
    break_storage_writes(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = create(client, world, create_data(world.product), file=("build.jar", JAR))

    assert_error(response, 503, "Storage unavailable", "INTERNAL_SERVER_ERROR")
    assert callbacks == []
    monkeypatch.undo()
    assert team_state(world.team) == before
    assert stored_objects() == []


# --- Audit log ------------------------------------------------------------------------------


def test_a_create_is_recorded_in_the_audit_log(client, world):
    data = create_data(
        world.product,
        "6.0.0",
        metadata=[{"key": "k", "value": "v"}],
        licenseIds=[str(world.licenses[0].id)],
    )

    response = create(
        client, world, data, HTTP_USER_AGENT="release-bot/1.0", REMOTE_ADDR="203.0.113.9"
    )

    assert response.status_code == 201, response.json()
    release = new_release(response)
    entry = AuditLog.objects.get(team=world.team)
    assert entry.action == "release.create"
    assert (entry.target_type, entry.target_id) == ("release", str(release.id))
    assert entry.api_key.team_id == world.team.id
    assert entry.actor == entry.api_key.prefix
    assert world.key.startswith(entry.actor)
    assert (entry.ip_address, entry.user_agent) == ("203.0.113.9", "release-bot/1.0")
    assert entry.request_data == data
    assert entry.result == response.json()["data"]


def test_a_refused_create_writes_no_audit_entry(client, world):
    response = create(client, world, create_data(world.product, "1.0.0"))

    assert response.status_code == 409
    assert AuditLog.objects.filter(team=world.team).count() == 0


# --- Team scoping ---------------------------------------------------------------------------


def answer(response):
    """What a client can learn from a response: its status and its envelope (no timestamp)."""
    return response.status_code, response.json()["data"], result_of(response)


@pytest.fixture
def states(world, outsider):
    """Both teams' rows before the request; checked unchanged after it."""
    before = (team_state(world.team), team_state(outsider.team))
    yield before
    assert (team_state(world.team), team_state(outsider.team)) == before


def test_outsiders_product_is_not_found(client, world, outsider, states):
    theirs = create(client, world, create_data(outsider.product))
    missing = create(client, world, create_data(world.product, productId=str(uuid.uuid4())))

    assert answer(theirs) == answer(missing)
    assert answer(theirs) == (
        404,
        None,
        {"valid": False, "details": "Product not found", "code": "PRODUCT_NOT_FOUND"},
    )


def test_outsiders_branch_is_not_found(client, world, outsider, states):
    theirs = create(client, world, create_data(world.product, branchId=str(outsider.branch.id)))
    missing = create(client, world, create_data(world.product, branchId=str(uuid.uuid4())))

    assert answer(theirs) == answer(missing)
    assert answer(theirs) == (
        404,
        None,
        {"valid": False, "details": "Branch not found", "code": "RELEASE_NOT_FOUND"},
    )


def test_outsiders_product_with_its_own_branch_is_not_found(client, world, outsider, states):
    data = create_data(outsider.product, branchId=str(outsider.branch.id))

    response = create(client, world, data)

    assert_error(response, 404, "Product not found", "PRODUCT_NOT_FOUND")


def test_branch_of_another_product_of_the_same_team_is_not_found(client, world):
    other_branch = world.other_product.branches.create(name="beta")
    before = team_state(world.team)

    response = create(client, world, create_data(world.product, branchId=str(other_branch.id)))

    assert_error(response, 404, "Branch not found", "RELEASE_NOT_FOUND")
    assert team_state(world.team) == before


def test_outsiders_license_is_not_found(client, world, outsider, states):
    def data(license_id):
        return create_data(world.product, licenseIds=[str(world.licenses[0].id), str(license_id)])

    theirs = create(client, world, data(outsider.licenses[0].id))
    missing = create(client, world, data(uuid.uuid4()))

    assert answer(theirs) == answer(missing)
    assert answer(theirs) == (
        404,
        None,
        {
            "valid": False,
            "details": "One or more license IDs not found",
            "code": "LICENSE_NOT_FOUND",
        },
    )


def test_outsiders_key_on_the_owners_url(client, world, outsider, states):
    response = post_release(
        client, world.team.id, key=outsider.key, data=create_data(world.product)
    )

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")


def test_the_created_release_belongs_to_the_keys_team(client, world, outsider):
    owners = create(client, world, create_data(world.product, "1.5.0"))
    response = post_release(
        client, outsider.team.id, key=outsider.key, data=create_data(outsider.product, "1.5.0")
    )

    assert owners.status_code == 201, owners.json()
    assert response.status_code == 201, response.json()
    release = new_release(response)
    assert release.team_id == outsider.team.id
    assert AuditLog.objects.get(target_id=str(release.id)).team_id == outsider.team.id
    assert AuditLog.objects.filter(team=world.team).count() == 1
