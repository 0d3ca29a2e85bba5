"""List Releases (``GET /teams/{teamId}/releases``): the envelope, every query parameter and
every bad value of it, natural version order, stable order, pages, search, status, scoping,
a fixed number of queries per page, and no license key material."""

import json
import re
import time
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from releases.models import (
    Branch,
    Release,
    ReleaseFile,
    ReleaseLicense,
    ReleaseMetadata,
    version_sort_key,
)
from teams.models import ApiKey, License
from tests.helpers import assert_error, release_json, releases_url, result_of

TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|COMMIT)\b", re.IGNORECASE
)


def get_list(client, world, query="", key=None, **params):
    """GET the list with ``params`` (encoded by the client) or a raw ``query`` string."""
    url = releases_url(world.team.id) + (f"?{query}" if query else "")
    return client.get(url, params, HTTP_AUTHORIZATION=f"Bearer {key or world.key}")


def listed(response):
    assert response.status_code == 200, response.json()
    return [release["version"] for release in response.json()["data"]["releases"]]


def make_releases(product, versions, *, branch=None, status="DRAFT", created_at=None):
    """Releases of ``product`` in the order given; created a second apart (the last newest),
    or all at ``created_at`` when it is given."""
    base = timezone.now() - timedelta(days=1)
    releases = []
    for index, version in enumerate(versions):
        release = Release.objects.create(
            team=product.team, product=product, branch=branch, version=version, status=status
        )
        moment = created_at or base + timedelta(seconds=index)
        Release.objects.filter(pk=release.pk).update(created_at=moment, updated_at=moment)
        releases.append(release)
    return releases


def invalid(names, errors):
    return {
        "status": 400,
        "details": f"Invalid query parameter: {names}",
        "data": {"errors": errors},
    }


# --- The envelope and defaults --------------------------------------------------------------


def test_list_returns_the_whole_envelope(client, world):
    moment = timezone.now() - timedelta(hours=1)
    Release.objects.filter(pk=world.release.pk).update(created_at=moment)
    Release.objects.filter(pk=world.other_release.pk).update(
        created_at=moment + timedelta(minutes=1)
    )
    ReleaseMetadata.objects.create(release=world.release, key="channel", value="beta", locked=True)
    ReleaseLicense.objects.create(release=world.release, license=world.licenses[0])
    ReleaseFile.objects.create(
        team=world.team,
        release=world.release,
        key=f"releases/{world.team.id}/{world.release.id}/{uuid.uuid4()}.zip",
        size=3,
        name="a.zip",
        checksum="0" * 32,
        sha256="0" * 64,
    )

    response = get_list(client, world, productId=str(world.product.id))

    assert response.status_code == 200, response.json()
    assert response["Content-Type"] == "application/json"
    assert response.json()["data"] == {
        "releases": [release_json(world.other_release), release_json(world.release)],
        "hasNextPage": False,
        "totalResults": 2,
    }
    assert result_of(response) == {"valid": True, "details": "Releases found"}
    first = response.json()["data"]["releases"][1]
    assert first["metadata"] == [{"key": "channel", "value": "beta", "locked": True}]
    assert first["licenseIds"] == [str(world.licenses[0].id)]
    assert first["file"]["name"] == "a.zip"


def test_defaults_are_page_1_of_25_newest_first(client, world):
    releases = make_releases(world.other_product, [f"1.{index}.0" for index in range(27)])
    newest_first = [release.version for release in reversed(releases)]

    response = get_list(client, world, productId=str(world.other_product.id))
    explicit = get_list(
        client,
        world,
        productId=str(world.other_product.id),
        page=1,
        pageSize=25,
        sortColumn="createdAt",
        sortDirection="desc",
    )

    assert listed(response) == newest_first[:25]
    assert response.json()["data"]["hasNextPage"] is True
    assert response.json()["data"]["totalResults"] == 27
    assert explicit.json()["data"] == response.json()["data"]


def test_an_empty_product_lists_nothing(client, world):
    response = get_list(client, world, productId=str(world.other_product.id))

    assert response.json()["data"] == {"releases": [], "hasNextPage": False, "totalResults": 0}
    assert result_of(response) == {"valid": True, "details": "Releases found"}


def test_without_product_id_every_release_of_the_team_is_listed(client, world, outsider):
    make_releases(world.other_product, ["7.0.0"])
    make_releases(outsider.other_product, ["8.0.0"])

    response = get_list(client, world, pageSize=100)

    ids = {release["id"] for release in response.json()["data"]["releases"]}
    assert ids == {
        str(pk) for pk in Release.objects.filter(team=world.team).values_list("pk", flat=True)
    }
    assert len(ids) == 3
    assert response.json()["data"]["totalResults"] == 3
    assert {release["teamId"] for release in response.json()["data"]["releases"]} == {
        str(world.team.id)
    }


def test_outsiders_releases_never_appear(client, world, outsider):
    make_releases(outsider.product, ["1.0.0-beta", "1.0.0-BETA.2"])

    everything = get_list(client, world, pageSize=100, search="1.0.0")
    outsider_ids = {
        str(pk) for pk in Release.objects.filter(team=outsider.team).values_list("pk", flat=True)
    }

    listed_ids = {release["id"] for release in everything.json()["data"]["releases"]}
    assert listed_ids == {str(world.release.id)}
    assert not listed_ids & outsider_ids
    assert str(outsider.team.id) not in everything.content.decode()


@pytest.mark.parametrize("whose", ["outsider", "missing"])
def test_a_product_of_another_team_or_a_missing_one_is_404(client, world, outsider, whose):
    product_id = outsider.product.id if whose == "outsider" else uuid.uuid4()

    response = get_list(client, world, productId=str(product_id))

    assert_error(response, 404, "Product not found", "PRODUCT_NOT_FOUND")


def test_unknown_parameters_are_a_400_naming_them(client, world):
    """A misspelt filter would otherwise list every release as if it had matched."""
    response = get_list(client, world, query=f"productID={world.product.id}&sort=version")

    assert_error(
        response,
        400,
        "Invalid query parameter: productID, sort",
        data={
            "errors": [
                {"message": "Unknown parameter.", "path": ["productID"]},
                {"message": "Unknown parameter.", "path": ["sort"]},
            ]
        },
    )


def test_an_unknown_parameter_is_named_once_and_after_the_known_ones(client, world):
    response = get_list(client, world, query="limit=1&pageSize=7&limit=2&status=DRAFT&status=DRAFT")

    assert_error(
        response,
        400,
        "Invalid query parameter: pageSize, status, limit",
        data={
            "errors": [
                {"message": '"7" is not a valid choice.', "path": ["pageSize"]},
                {"message": "Give this parameter once.", "path": ["status"]},
                {"message": "Unknown parameter.", "path": ["limit"]},
            ]
        },
    )


def test_known_parameters_alone_are_listed(client, world):
    response = get_list(
        client,
        world,
        productId=str(world.product.id),
        status="DRAFT",
        search="1.0",
        sortColumn="version",
        sortDirection="asc",
        page=1,
        pageSize=10,
    )

    assert listed(response) == ["1.0.0"]


# --- Bad values -----------------------------------------------------------------------------

BAD_VALUES = [
    ("page=0", "page", "Ensure this value is greater than or equal to 1."),
    ("page=-1", "page", "Ensure this value is greater than or equal to 1."),
    ("page=abc", "page", "A valid integer is required."),
    ("page=", "page", "A valid integer is required."),
    ("page=1.5", "page", "A valid integer is required."),
    ("page=1.0", "page", "A valid integer is required."),
    ("page=%2B3", "page", "A valid integer is required."),
    ("page=%202", "page", "A valid integer is required."),
    ("page=%D9%A3", "page", "A valid integer is required."),
    ("page=100001", "page", "Ensure this value is less than or equal to 100000."),
    ("pageSize=20", "pageSize", '"20" is not a valid choice.'),
    ("pageSize=0", "pageSize", '"0" is not a valid choice.'),
    ("pageSize=1000", "pageSize", '"1000" is not a valid choice.'),
    ("pageSize=ten", "pageSize", '"ten" is not a valid choice.'),
    ("pageSize=", "pageSize", '"" is not a valid choice.'),
    ("sortColumn=name", "sortColumn", '"name" is not a valid choice.'),
    ("sortColumn=created_at", "sortColumn", '"created_at" is not a valid choice.'),
    ("sortColumn=VERSION", "sortColumn", '"VERSION" is not a valid choice.'),
    ("sortDirection=up", "sortDirection", '"up" is not a valid choice.'),
    ("sortDirection=DESC", "sortDirection", '"DESC" is not a valid choice.'),
    ("status=LIVE", "status", '"LIVE" is not a valid choice.'),
    ("status=published", "status", '"published" is not a valid choice.'),
    ("status=", "status", '"" is not a valid choice.'),
    ("productId=abc", "productId", "Must be a UUID."),
    ("productId=", "productId", "Must be a UUID."),
    ("productId=" + "0" * 32, "productId", "Must be a UUID."),
    ("search=" + "a" * 256, "search", "Ensure this field has no more than 255 characters."),
    ("search=a%00b", "search", "Null characters are not allowed."),
]


@pytest.mark.parametrize(
    ("query", "name", "message"), BAD_VALUES, ids=[row[0][:24] for row in BAD_VALUES]
)
def test_a_bad_value_is_a_400_naming_the_parameter(client, world, query, name, message):
    response = get_list(client, world, query=query)

    expected = invalid(name, [{"message": message, "path": [name]}])
    assert_error(response, expected["status"], expected["details"], data=expected["data"])


def test_every_bad_parameter_is_named(client, world):
    response = get_list(
        client, world, query="sortDirection=sideways&page=0&status=NOPE&pageSize=7&search=ok"
    )

    assert_error(
        response,
        400,
        "Invalid query parameter: page, pageSize, sortDirection, status",
        data={
            "errors": [
                {"message": "Ensure this value is greater than or equal to 1.", "path": ["page"]},
                {"message": '"7" is not a valid choice.', "path": ["pageSize"]},
                {"message": '"sideways" is not a valid choice.', "path": ["sortDirection"]},
                {"message": '"NOPE" is not a valid choice.', "path": ["status"]},
            ]
        },
    )


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("page=1&page=2", "page"),
        ("pageSize=10&pageSize=10", "pageSize"),
        ("sortColumn=version&sortColumn=createdAt", "sortColumn"),
        ("sortDirection=asc&sortDirection=desc", "sortDirection"),
        ("search=a&search=b", "search"),
        ("status=DRAFT&status=PUBLISHED", "status"),
    ],
)
def test_a_repeated_parameter_is_a_400(client, world, query, name):
    response = get_list(client, world, query=query)

    assert_error(
        response,
        400,
        f"Invalid query parameter: {name}",
        data={"errors": [{"message": "Give this parameter once.", "path": [name]}]},
    )


def test_a_repeated_product_id_is_a_400(client, world):
    product_id = world.product.id

    response = get_list(client, world, query=f"productId={product_id}&productId={product_id}")

    assert_error(
        response,
        400,
        "Invalid query parameter: productId",
        data={"errors": [{"message": "Give this parameter once.", "path": ["productId"]}]},
    )


def test_a_bad_value_and_a_repeat_are_both_reported(client, world):
    response = get_list(client, world, query="pageSize=7&status=DRAFT&status=DRAFT")

    assert_error(
        response,
        400,
        "Invalid query parameter: pageSize, status",
        data={
            "errors": [
                {"message": '"7" is not a valid choice.', "path": ["pageSize"]},
                {"message": "Give this parameter once.", "path": ["status"]},
            ]
        },
    )


@pytest.mark.parametrize("size", [10, 25, 50, 100])
def test_each_page_size_is_allowed(client, world, size):
    make_releases(world.other_product, [f"2.{index}.0" for index in range(30)])

    response = get_list(client, world, productId=str(world.other_product.id), pageSize=size)

    assert len(listed(response)) == min(size, 30)
    assert response.json()["data"]["hasNextPage"] is (size < 30)
    assert response.json()["data"]["totalResults"] == 30


# --- Order ----------------------------------------------------------------------------------

VERSIONS_IN_ORDER = ["1.2.0", "1.9.0", "1.10.0", "1.10.0-beta", "2.0.0"]


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_version_sorts_naturally(client, world, direction):
    # Created in a shuffled order, so neither creation time nor id explains the result.
    make_releases(world.other_product, ["1.10.0", "2.0.0", "1.2.0", "1.10.0-beta", "1.9.0"])

    response = get_list(
        client,
        world,
        productId=str(world.other_product.id),
        sortColumn="version",
        sortDirection=direction,
    )

    expected = VERSIONS_IN_ORDER if direction == "asc" else VERSIONS_IN_ORDER[::-1]
    assert listed(response) == expected


def test_version_sort_compares_numbers_of_any_length(client, world):
    make_releases(
        world.other_product,
        ["10.0.0", "9.99.999", "100.0.0", "v2", "v10", "1.0.0-rc.10", "1.0.0-rc.9"],
    )

    response = get_list(
        client,
        world,
        productId=str(world.other_product.id),
        sortColumn="version",
        sortDirection="asc",
    )

    assert listed(response) == [
        "1.0.0-rc.9",
        "1.0.0-rc.10",
        "9.99.999",
        "10.0.0",
        "100.0.0",
        "v2",
        "v10",
    ]


def test_the_version_sort_key_is_natural():
    keys = [version_sort_key(version) for version in VERSIONS_IN_ORDER]
    assert keys == sorted(keys)
    assert version_sort_key("1.10.0") > version_sort_key("1.9.0")
    assert version_sort_key("01.2") == version_sort_key("1.2")


@pytest.mark.parametrize("column", ["createdAt", "updatedAt", "latest", "version"])
def test_ties_are_broken_by_id_in_the_same_direction(client, world, column):
    moment = timezone.now() - timedelta(hours=2)
    # Versions that tie on their sort key too, so every column ties.
    releases = make_releases(
        world.other_product, ["1.0", "01.0", "1.00", "001.0", "1.000", "01.00"], created_at=moment
    )
    assert len({version_sort_key(release.version) for release in releases}) == 1
    by_id = sorted(str(release.id) for release in releases)
    product_id = str(world.other_product.id)

    ascending = get_list(
        client, world, productId=product_id, sortColumn=column, sortDirection="asc"
    )
    descending = get_list(
        client, world, productId=product_id, sortColumn=column, sortDirection="desc"
    )

    assert [release["id"] for release in ascending.json()["data"]["releases"]] == by_id
    assert [release["id"] for release in descending.json()["data"]["releases"]] == by_id[::-1]


def test_equal_created_at_across_pages_neither_repeats_nor_skips(client, world):
    moment = timezone.now() - timedelta(hours=2)
    releases = make_releases(
        world.other_product, [f"3.{index}.0" for index in range(23)], created_at=moment
    )
    product_id = str(world.other_product.id)

    pages = [
        get_list(client, world, productId=product_id, pageSize=10, page=page).json()["data"]
        for page in (1, 2, 3)
    ]

    ids = [release["id"] for page in pages for release in page["releases"]]
    assert ids == sorted((str(release.id) for release in releases), reverse=True)


def test_sort_by_updated_at(client, world):
    releases = make_releases(world.other_product, ["1.0.0", "2.0.0", "3.0.0"])
    base = timezone.now() - timedelta(minutes=30)
    for offset, release in zip((2, 0, 1), releases, strict=True):
        Release.objects.filter(pk=release.pk).update(updated_at=base + timedelta(minutes=offset))
    product_id = str(world.other_product.id)

    ascending = get_list(
        client, world, productId=product_id, sortColumn="updatedAt", sortDirection="asc"
    )
    descending = get_list(client, world, productId=product_id, sortColumn="updatedAt")

    assert listed(ascending) == ["2.0.0", "3.0.0", "1.0.0"]
    assert listed(descending) == ["1.0.0", "3.0.0", "2.0.0"]


def test_sort_by_created_at_ascending(client, world):
    make_releases(world.other_product, ["3.0.0", "1.0.0", "2.0.0"])

    response = get_list(
        client,
        world,
        productId=str(world.other_product.id),
        sortColumn="createdAt",
        sortDirection="asc",
    )

    assert listed(response) == ["3.0.0", "1.0.0", "2.0.0"]


def test_sort_by_latest(client, world):
    moment = timezone.now() - timedelta(hours=2)
    drafts = make_releases(world.other_product, ["1.0.0", "1.1.0", "1.2.0"], created_at=moment)
    [latest] = make_releases(world.other_product, ["0.1.0"], status="PUBLISHED", created_at=moment)
    Release.objects.filter(pk=latest.pk).update(latest=True)
    others = sorted(str(release.id) for release in drafts)
    product_id = str(world.other_product.id)

    descending = get_list(client, world, productId=product_id, sortColumn="latest")
    ascending = get_list(
        client, world, productId=product_id, sortColumn="latest", sortDirection="asc"
    )

    assert [r["id"] for r in descending.json()["data"]["releases"]] == [
        str(latest.id),
        *others[::-1],
    ]
    assert [r["id"] for r in ascending.json()["data"]["releases"]] == [*others, str(latest.id)]
    assert descending.json()["data"]["releases"][0]["latest"] is True


# --- Pages ----------------------------------------------------------------------------------


def test_pages_walk_the_whole_list(client, world):
    releases = make_releases(world.other_product, [f"4.{index}.0" for index in range(23)])
    newest_first = [str(release.id) for release in reversed(releases)]
    product_id = str(world.other_product.id)

    pages = [
        get_list(client, world, productId=product_id, pageSize=10, page=page).json()["data"]
        for page in (1, 2, 3, 4)
    ]

    assert [len(page["releases"]) for page in pages] == [10, 10, 3, 0]
    assert [page["hasNextPage"] for page in pages] == [True, True, False, False]
    assert [page["totalResults"] for page in pages] == [23, 23, 23, 23]
    assert [release["id"] for page in pages for release in page["releases"]] == newest_first


def test_a_page_that_exactly_fills_the_list_has_no_next_page(client, world):
    make_releases(world.other_product, [f"5.{index}.0" for index in range(20)])
    product_id = str(world.other_product.id)

    second = get_list(client, world, productId=product_id, pageSize=10, page=2)

    assert len(listed(second)) == 10
    assert second.json()["data"]["hasNextPage"] is False
    assert second.json()["data"]["totalResults"] == 20


def test_a_page_far_past_the_end_is_empty(client, world):
    response = get_list(client, world, productId=str(world.product.id), page=100000)

    assert response.json()["data"] == {"releases": [], "hasNextPage": False, "totalResults": 2}


# --- Search and status ----------------------------------------------------------------------


def test_search_is_case_insensitive_in_the_version(client, world):
    make_releases(world.other_product, ["2.0.0-BETA.1", "2.0.0-beta.2", "2.0.0", "1.0.0-Beta"])

    response = get_list(
        client,
        world,
        productId=str(world.other_product.id),
        search="bEtA",
        sortColumn="version",
        sortDirection="asc",
    )

    assert listed(response) == ["1.0.0-Beta", "2.0.0-BETA.1", "2.0.0-beta.2"]
    assert response.json()["data"]["totalResults"] == 3


def test_search_is_trimmed(client, world):
    make_releases(world.other_product, ["2.0.0-beta", "2.0.0"])
    product_id = str(world.other_product.id)

    padded = get_list(client, world, productId=product_id, search="  beta\t")
    blank = get_list(client, world, productId=product_id, search="   ")
    empty = get_list(client, world, productId=product_id, search="")

    assert listed(padded) == ["2.0.0-beta"]
    assert sorted(listed(blank)) == sorted(listed(empty)) == ["2.0.0", "2.0.0-beta"]


@pytest.mark.parametrize("pattern", ["%", "_", "2_0", "2%0"])
def test_search_treats_wildcards_as_text(client, world, pattern):
    make_releases(world.other_product, ["2.0.0", "2.1.0"])

    response = get_list(client, world, productId=str(world.other_product.id), search=pattern)

    assert listed(response) == []
    assert response.json()["data"]["totalResults"] == 0


def test_search_matches_inside_the_version(client, world):
    make_releases(world.other_product, ["1.10.0", "1.1.0", "0.10.1"])

    response = get_list(
        client,
        world,
        productId=str(world.other_product.id),
        search="10",
        sortColumn="version",
        sortDirection="asc",
    )

    assert listed(response) == ["0.10.1", "1.10.0"]


@pytest.mark.parametrize("status", ["PUBLISHED", "DRAFT", "DEPRECATED", "ARCHIVED"])
def test_status_filter(client, world, status):
    for index, each in enumerate(["PUBLISHED", "DRAFT", "DEPRECATED", "ARCHIVED"]):
        make_releases(world.other_product, [f"{index}.0.0", f"{index}.1.0"], status=each)

    response = get_list(client, world, productId=str(world.other_product.id), status=status)

    assert [release["status"] for release in response.json()["data"]["releases"]] == [status] * 2
    assert response.json()["data"]["totalResults"] == 2


def test_filters_combine(client, world):
    make_releases(world.product, ["3.0.0-beta", "3.1.0-beta"], status="PUBLISHED")
    make_releases(world.product, ["3.2.0-beta"], status="DRAFT")
    make_releases(world.other_product, ["3.3.0-beta"], status="PUBLISHED")

    response = get_list(
        client,
        world,
        productId=str(world.product.id),
        status="PUBLISHED",
        search="BETA",
        sortColumn="version",
        sortDirection="desc",
    )

    assert listed(response) == ["3.1.0-beta", "3.0.0-beta"]
    assert response.json()["data"]["totalResults"] == 2


# --- Auth -----------------------------------------------------------------------------------


def test_no_key_is_401(client, world):
    response = client.get(releases_url(world.team.id))

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")
    assert response["WWW-Authenticate"] == "Bearer"


def test_outsiders_key_on_the_owners_url_is_401(client, world, outsider):
    response = get_list(client, world, key=outsider.key)

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")


def test_team_id_not_a_uuid(client, world):
    response = client.get(
        "/api/v1/dev/teams/not-a-uuid/releases", HTTP_AUTHORIZATION=f"Bearer {world.key}"
    )

    assert_error(response, 400, "Invalid teamId")


def test_the_list_is_rate_limited_per_key(client, world, settings):
    settings.DEV_API_RATE = "2/minute"

    # The count lives in fixed one-minute windows: three requests that straddle a boundary are
    # counted in two, so they are sent again, with the count cleared; they take well under a
    # minute, so the second time they cannot straddle.
    for _ in range(2):
        cache.clear()
        window = int(time.time() // 60)
        first = get_list(client, world)
        second = get_list(client, world)
        third = get_list(client, world)
        if int(time.time() // 60) == window:
            break

    assert (first.status_code, second.status_code) == (200, 200)
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("2", "1")
    assert second["X-RateLimit-Remaining"] == "0"
    assert_error(third, 429, "Too many requests", "RATE_LIMIT")
    assert int(third["Retry-After"]) >= 1


# --- Queries and secrets --------------------------------------------------------------------

# A page costs this many statements (transaction control aside), whatever its size and however
# many metadata entries and licenses its releases have: the key lookup, the product check, the
# count, the page, and one query each for metadata and license links (product, branch and file
# are joined into the page's query).
QUERIES_PER_PAGE = 6


def counted(queries):
    return [query["sql"] for query in queries if not TRANSACTION_CONTROL.match(query["sql"])]


def populate(world, product, count, *, metadata, licenses):
    branch = Branch.objects.create(product=product, name=f"branch-{count}")
    releases = Release.objects.bulk_create(
        Release(
            team=world.team,
            product=product,
            branch=branch if index % 2 else None,
            version=f"{count}.{index}.0",
            version_sort_key=version_sort_key(f"{count}.{index}.0"),
        )
        for index in range(count)
    )
    team_licenses = list(License.objects.filter(team=world.team))[:licenses]
    ReleaseMetadata.objects.bulk_create(
        ReleaseMetadata(release=release, position=position, key=f"k{position}", value="v")
        for release in releases
        for position in range(metadata)
    )
    ReleaseLicense.objects.bulk_create(
        ReleaseLicense(release=release, license=license)
        for release in releases
        for license in team_licenses
    )
    ReleaseFile.objects.bulk_create(
        ReleaseFile(
            team=world.team,
            release=release,
            key=f"releases/{world.team.id}/{release.id}/{uuid.uuid4()}.zip",
            size=1,
            name="a.zip",
            checksum="0" * 32,
            sha256="0" * 64,
        )
        for release in releases[::3]
    )


def measure(client, world, product, page_size):
    with CaptureQueriesContext(connection) as queries:
        response = get_list(client, world, productId=str(product.id), pageSize=page_size)
    assert response.status_code == 200, response.json()
    return response, counted(queries.captured_queries)


def test_a_page_costs_a_fixed_number_of_queries(client, world):
    third = world.other_product
    populate(world, world.product, 10, metadata=1, licenses=1)
    populate(world, third, 120, metadata=5, licenses=3)
    ApiKey.objects.filter(team=world.team).update(last_used_at=timezone.now())

    small, small_queries = measure(client, world, world.product, 10)
    large, large_queries = measure(client, world, third, 100)

    assert len(small.json()["data"]["releases"]) == 10
    assert len(large.json()["data"]["releases"]) == 100
    assert all(len(release["metadata"]) == 5 for release in large.json()["data"]["releases"])
    assert all(len(release["licenseIds"]) == 3 for release in large.json()["data"]["releases"])
    assert len(small_queries) == QUERIES_PER_PAGE, "\n".join(small_queries)
    assert len(large_queries) == QUERIES_PER_PAGE, "\n".join(large_queries)


def test_without_a_product_id_a_page_costs_one_query_less(client, world):
    populate(world, world.other_product, 30, metadata=2, licenses=2)
    ApiKey.objects.filter(team=world.team).update(last_used_at=timezone.now())

    with CaptureQueriesContext(connection) as queries:
        response = get_list(client, world, pageSize=25)

    assert len(response.json()["data"]["releases"]) == 25
    assert len(counted(queries.captured_queries)) == QUERIES_PER_PAGE - 1


def all_keys(value):
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in all_keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in all_keys(item)}
    return set()


def test_no_license_key_material_is_listed(client, world):
    plain_keys = ["KQXWZ-MNPRS-TUVWX-YZABC-DEFGH", "HJKLM-NPQRS-TUVWX-YZABC-QWXYZ"]
    licenses = []
    for plain in plain_keys:
        license = License(team=world.team)
        license.set_key(plain)
        license.save()
        licenses.append(license)
    for release in (world.release, world.other_release):
        ReleaseLicense.objects.bulk_create(
            ReleaseLicense(release=release, license=license)
            for license in [*licenses, *world.licenses]
        )

    response = get_list(client, world, productId=str(world.product.id))

    text = response.content.decode()
    body = json.loads(text)
    assert all(len(release["licenseIds"]) == 5 for release in body["data"]["releases"])
    for license in [*licenses, *world.licenses]:
        license.refresh_from_db()
        assert license.key_digest not in text
        assert license.key_hint not in text
    for plain in plain_keys:
        assert plain not in text
        assert plain.replace("-", "") not in text
    forbidden = {"key_digest", "keyDigest", "key_hint", "keyHint", "licenseKey", "licenses"}
    assert not all_keys(body) & forbidden
