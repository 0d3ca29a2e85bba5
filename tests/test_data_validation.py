"""The field rules of ``data``: every problem is reported with the exact path to it, nothing
is written when any rule is broken, and the edges of each rule are accepted."""

import uuid

import pytest

from releases.models import Release, ReleaseLicense, ReleaseMetadata
from teams.services import license_create
from tests.helpers import assert_error, put_release, team_state, update_data

FIELDS = [
    "version",
    "productId",
    "status",
    "setAsLatest",
    "keepExistingFile",
    "branchId",
    "metadata",
    "licenseIds",
]
REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
NOT_STRING = "Must be a string."
NOT_BOOLEAN = "Must be a boolean."
NOT_UUID = "Must be a UUID."
TOO_SHORT = "Ensure this field has at least 3 characters."
TOO_LONG = "Ensure this field has no more than 255 characters."
BLANK = "This field may not be blank."


def put(client, world, data):
    return put_release(client, world.team.id, world.release.id, key=world.key, data=data)


def assert_rejected(client, world, data, errors):
    """``data`` is refused with exactly ``errors`` (``[(message, path)]``) and nothing changes."""
    before = team_state(world.team)

    response = put(client, world, data)

    assert_error(
        response,
        400,
        "Invalid request body",
        data={"errors": [{"message": message, "path": path} for message, path in errors]},
    )
    assert team_state(world.team) == before


def assert_accepted(client, world, data):
    response = put(client, world, data)
    assert response.status_code == 200, response.json()
    return response.json()["data"]


# --- Required fields and JSON types ---------------------------------------------------------


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_is_required(client, world, field):
    data = update_data(world.release, version="2.0.0")
    del data[field]

    assert_rejected(client, world, data, [(REQUIRED, [field])])


def test_an_empty_object_reports_every_field(client, world):
    assert_rejected(client, world, {}, [(REQUIRED, [field]) for field in FIELDS])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("version", 123, NOT_STRING),
        ("version", 1.5, NOT_STRING),
        ("version", ["1.0.0"], NOT_STRING),
        ("version", None, NOT_NULL),
        ("productId", 123, NOT_UUID),
        ("productId", "not-a-uuid", NOT_UUID),
        ("productId", "0" * 32, NOT_UUID),
        ("productId", None, NOT_NULL),
        ("status", 1, '"1" is not a valid choice.'),
        ("status", "published", '"published" is not a valid choice.'),
        ("status", "DELETED", '"DELETED" is not a valid choice.'),
        ("status", None, NOT_NULL),
        ("setAsLatest", "true", NOT_BOOLEAN),
        ("setAsLatest", "123", NOT_BOOLEAN),
        ("setAsLatest", 1, NOT_BOOLEAN),
        ("setAsLatest", 0, NOT_BOOLEAN),
        ("setAsLatest", None, NOT_NULL),
        ("keepExistingFile", "false", NOT_BOOLEAN),
        ("keepExistingFile", 0, NOT_BOOLEAN),
        ("keepExistingFile", None, NOT_NULL),
        ("branchId", 123, NOT_UUID),
        ("branchId", "", NOT_UUID),
        ("metadata", {}, 'Expected a list of items but got type "dict".'),
        ("metadata", "x", 'Expected a list of items but got type "str".'),
        ("metadata", None, NOT_NULL),
        ("licenseIds", "x", 'Expected a list of items but got type "str".'),
        ("licenseIds", None, NOT_NULL),
    ],
)
def test_wrong_json_type(client, world, field, value, message):
    data = {**update_data(world.release, version="2.0.0"), field: value}

    assert_rejected(client, world, data, [(message, [field])])


def test_license_ids_are_checked_one_by_one(client, world):
    data = update_data(world.release, licenseIds=[str(world.licenses[0].id), 123, "nope"])

    assert_rejected(
        client, world, data, [(NOT_UUID, ["licenseIds", 1]), (NOT_UUID, ["licenseIds", 2])]
    )


def test_every_problem_is_reported_at_once(client, world):
    data = update_data(
        world.release,
        version=" 1.0",
        status="LIVE",
        metadata=[{"key": "a", "value": ""}, "x"],
        unexpected=True,
    )
    del data["productId"]

    assert_rejected(
        client,
        world,
        data,
        [
            ("Must not contain whitespace.", ["version"]),
            (REQUIRED, ["productId"]),
            ('"LIVE" is not a valid choice.', ["status"]),
            (BLANK, ["metadata", 0, "value"]),
            ("Must be an object.", ["metadata", 1]),
            ("Unknown field.", ["unexpected"]),
        ],
    )


# --- version --------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "message"), [("", BLANK), ("1.", TOO_SHORT)])
def test_version_too_short(client, world, version, message):
    assert_rejected(
        client, world, update_data(world.release, version=version), [(message, ["version"])]
    )


def test_version_too_long(client, world):
    data = update_data(world.release, version="v" * 256)

    assert_rejected(client, world, data, [(TOO_LONG, ["version"])])


@pytest.mark.parametrize("version", ["1.0", "v" * 255])
def test_version_length_edges_are_accepted(client, world, version):
    data = assert_accepted(client, world, update_data(world.release, version=version))

    assert data["version"] == version
    assert Release.objects.get(pk=world.release.pk).version == version


@pytest.mark.parametrize(
    "version", ["1.0 beta", " 1.0.0", "1.0.0 ", "1.0.0\n", "1.0\t0", "1.0\u00a00", "   "]
)
def test_version_with_whitespace(client, world, version):
    data = update_data(world.release, version=version)

    assert_rejected(client, world, data, [("Must not contain whitespace.", ["version"])])


# --- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["PUBLISHED", "DRAFT", "DEPRECATED", "ARCHIVED"])
def test_every_status_is_accepted(client, world, status):
    data = assert_accepted(client, world, update_data(world.release, status=status))

    assert data["status"] == status
    assert Release.objects.get(pk=world.release.pk).status == status


# --- metadata -------------------------------------------------------------------------------


def items(count, **extra):
    return [{"key": f"k{index}", "value": f"v{index}", **extra} for index in range(count)]


def test_twenty_metadata_items_are_accepted(client, world):
    data = assert_accepted(client, world, update_data(world.release, metadata=items(20)))

    assert data["metadata"] == items(20, locked=False)
    assert ReleaseMetadata.objects.filter(release=world.release).count() == 20


def test_twenty_one_metadata_items_are_rejected(client, world):
    data = update_data(world.release, metadata=items(21))

    assert_rejected(
        client, world, data, [("Ensure this field has no more than 20 elements.", ["metadata"])]
    )


@pytest.mark.parametrize("field", ["key", "value"])
@pytest.mark.parametrize(
    ("text", "message"), [("", BLANK), ("x" * 256, TOO_LONG), (1, NOT_STRING), (None, NOT_NULL)]
)
def test_metadata_key_and_value_rules(client, world, field, text, message):
    item = {"key": "a", "value": "b", field: text}
    data = update_data(world.release, metadata=[{"key": "z", "value": "z"}, item])

    assert_rejected(client, world, data, [(message, ["metadata", 1, field])])


@pytest.mark.parametrize("length", [1, 255])
def test_metadata_key_and_value_length_edges(client, world, length):
    item = {"key": "k" * length, "value": "v" * length}

    data = assert_accepted(client, world, update_data(world.release, metadata=[item]))

    assert data["metadata"] == [{**item, "locked": False}]
    stored = ReleaseMetadata.objects.get(release=world.release)
    assert (stored.key, stored.value) == (item["key"], item["value"])


@pytest.mark.parametrize("field", ["key", "value"])
def test_metadata_key_and_value_are_required(client, world, field):
    item = {"key": "a", "value": "b"}
    del item[field]

    assert_rejected(
        client,
        world,
        update_data(world.release, metadata=[item]),
        [(REQUIRED, ["metadata", 0, field])],
    )


def test_metadata_locked_defaults_to_false(client, world):
    metadata = [{"key": "a", "value": "1"}, {"key": "b", "value": "2", "locked": True}]

    data = assert_accepted(client, world, update_data(world.release, metadata=metadata))

    assert data["metadata"] == [
        {"key": "a", "value": "1", "locked": False},
        {"key": "b", "value": "2", "locked": True},
    ]
    assert list(
        ReleaseMetadata.objects.filter(release=world.release).values_list("key", "locked")
    ) == [("a", False), ("b", True)]


@pytest.mark.parametrize("locked", ["true", 1, None])
def test_metadata_locked_must_be_a_boolean(client, world, locked):
    metadata = [{"key": "a", "value": "1", "locked": locked}]
    message = NOT_NULL if locked is None else NOT_BOOLEAN

    assert_rejected(
        client,
        world,
        update_data(world.release, metadata=metadata),
        [(message, ["metadata", 0, "locked"])],
    )


def test_unknown_key_in_a_metadata_item(client, world):
    metadata = [{"key": "a", "value": "1"}, {"key": "b", "value": "2", "Locked": True}]

    assert_rejected(
        client,
        world,
        update_data(world.release, metadata=metadata),
        [("Unknown field.", ["metadata", 1, "Locked"])],
    )


def test_unknown_keys_at_the_root(client, world):
    data = update_data(world.release, id=str(world.release.id), latest=True)

    assert_rejected(
        client, world, data, [("Unknown field.", ["id"]), ("Unknown field.", ["latest"])]
    )


def test_duplicate_metadata_keys(client, world):
    metadata = [
        {"key": "a", "value": "1"},
        {"key": "b", "value": "2"},
        {"key": "a", "value": "3"},
        {"key": "b", "value": "4"},
    ]

    assert_rejected(
        client,
        world,
        update_data(world.release, metadata=metadata),
        [("Duplicate key.", ["metadata", 2, "key"]), ("Duplicate key.", ["metadata", 3, "key"])],
    )


def test_metadata_keys_differing_in_case_are_distinct(client, world):
    metadata = [{"key": "a", "value": "1"}, {"key": "A", "value": "2"}]

    data = assert_accepted(client, world, update_data(world.release, metadata=metadata))

    assert [item["key"] for item in data["metadata"]] == ["a", "A"]


# --- licenseIds -----------------------------------------------------------------------------


def thirty_licenses(world):
    return world.licenses + [license_create(team=world.team)[0] for _ in range(27)]


def test_thirty_one_distinct_license_ids_are_rejected(client, world):
    license_ids = [str(item.id) for item in thirty_licenses(world)] + [str(uuid.uuid4())]

    assert_rejected(
        client,
        world,
        update_data(world.release, licenseIds=license_ids),
        [("At most 30 distinct license ids.", ["licenseIds"])],
    )


def test_a_repeated_license_id_counts_once(client, world):
    license_ids = [str(item.id) for item in thirty_licenses(world)]
    sent = [*license_ids, license_ids[4]]
    assert len(sent) == 31

    data = assert_accepted(client, world, update_data(world.release, licenseIds=sent))

    assert data["licenseIds"] == license_ids
    stored = ReleaseLicense.objects.filter(release=world.release)
    assert sorted(str(link.license_id) for link in stored) == sorted(license_ids)


def test_empty_license_ids_and_metadata_clear_the_lists(client, world):
    ReleaseMetadata.objects.create(release=world.release, key="a", value="b")
    ReleaseLicense.objects.create(release=world.release, license=world.licenses[0])

    data = assert_accepted(client, world, update_data(world.release, metadata=[], licenseIds=[]))

    assert (data["metadata"], data["licenseIds"]) == ([], [])
    assert not ReleaseMetadata.objects.filter(release=world.release).exists()
    assert not ReleaseLicense.objects.filter(release=world.release).exists()


# --- branchId -------------------------------------------------------------------------------


def test_branch_id_null_is_the_main_branch(client, world):
    world.release.branch = world.branch
    world.release.save()

    data = assert_accepted(client, world, update_data(world.release, branchId=None))

    assert (data["branchId"], data["branch"]) == (None, None)
    assert Release.objects.get(pk=world.release.pk).branch_id is None


def test_branch_id_of_the_product(client, world):
    data = assert_accepted(client, world, update_data(world.release, branchId=str(world.branch.id)))

    assert data["branch"] == {"id": str(world.branch.id), "name": "beta"}
    assert Release.objects.get(pk=world.release.pk).branch_id == world.branch.id
