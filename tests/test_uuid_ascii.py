"""Ids from clients are UUIDs in their canonical form of ASCII hex digits only. Python's UUID
parser alone would also take other scripts' digits (it parses with ``int(x, 16)``), so
U+0661 (Arabic-Indic one) would silently stand for ``1``."""

import uuid
from urllib.parse import quote

import pytest

from lukittu.ids import parse_uuid
from releases.models import Release
from tests.helpers import (
    assert_error,
    put_release,
    release_url,
    releases_url,
    team_state,
    update_data,
)

ARABIC_INDIC_ZERO = 0x0660
FULLWIDTH_ZERO = 0xFF10


def with_digit_from(block: int, value: object) -> str:
    """``value`` as text with its first ASCII digit written in another script: the same UUID
    to ``uuid.UUID``, and still 36 characters."""
    text = str(value)
    index = next(i for i, char in enumerate(text) if char.isdigit())
    return text[:index] + chr(block + int(text[index])) + text[index + 1 :]


LOOKALIKES = [
    pytest.param(lambda value: with_digit_from(ARABIC_INDIC_ZERO, value), id="arabic-indic"),
    pytest.param(lambda value: with_digit_from(FULLWIDTH_ZERO, value), id="fullwidth"),
    pytest.param(lambda value: uuid.UUID(str(value)).hex + "----", id="hyphens-moved"),
]


def get(client, url, key):
    # Non-ASCII in a path travels percent-encoded (UTF-8), as any HTTP client sends it.
    return client.get(quote(url, safe="/?=&"), HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_the_lookalikes_are_the_same_uuid_to_python(lookalike):
    value = uuid.uuid4()
    assert len(lookalike(value)) == 36
    assert uuid.UUID(lookalike(value)) == value


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_path_team_id_not_in_ascii_hex_is_invalid(client, world, lookalike):
    response = get(client, releases_url(lookalike(world.team.id)), world.key)

    assert_error(response, 400, "Invalid teamId")


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_path_release_id_not_in_ascii_hex_is_invalid(client, world, lookalike):
    response = get(client, release_url(world.team.id, lookalike(world.release.id)), world.key)

    assert_error(response, 400, "Invalid releaseId")


def test_an_update_to_a_path_release_id_not_in_ascii_hex_changes_nothing(client, world):
    before = team_state(world.team)

    response = put_release(
        client,
        world.team.id,
        quote(with_digit_from(ARABIC_INDIC_ZERO, world.release.id)),
        key=world.key,
        data=update_data(world.release, version="2.0.0"),
    )

    assert_error(response, 400, "Invalid releaseId")
    assert team_state(world.team) == before


def must_be_a_uuid(*path):
    return {"errors": [{"message": "Must be a UUID.", "path": list(path)}]}


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_body_product_id_not_in_ascii_hex_is_invalid(client, world, lookalike):
    before = team_state(world.team)
    data = update_data(
        world.release, version="2.0.0", productId=lookalike(world.release.product_id)
    )

    response = put_release(client, world.team.id, world.release.id, key=world.key, data=data)

    assert_error(response, 400, "Invalid request body", data=must_be_a_uuid("productId"))
    assert team_state(world.team) == before
    assert Release.objects.get(pk=world.release.pk).version == "1.0.0"


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_a_body_license_id_not_in_ascii_hex_is_invalid(client, world, lookalike):
    before = team_state(world.team)
    first, second, _ = world.licenses
    data = update_data(world.release, licenseIds=[str(first.id), lookalike(second.id)])

    response = put_release(client, world.team.id, world.release.id, key=world.key, data=data)

    assert_error(response, 400, "Invalid request body", data=must_be_a_uuid("licenseIds", 1))
    assert team_state(world.team) == before


def test_a_body_branch_id_not_in_ascii_hex_is_invalid(client, world):
    data = update_data(world.release, branchId=with_digit_from(ARABIC_INDIC_ZERO, world.branch.id))

    response = put_release(client, world.team.id, world.release.id, key=world.key, data=data)

    assert_error(response, 400, "Invalid request body", data=must_be_a_uuid("branchId"))


def test_a_query_product_id_not_in_ascii_hex_is_invalid(client, world):
    product_id = with_digit_from(ARABIC_INDIC_ZERO, world.product.id)

    response = get(client, f"{releases_url(world.team.id)}?productId={product_id}", world.key)

    assert_error(
        response,
        400,
        "Invalid query parameter: productId",
        data=must_be_a_uuid("productId"),
    )


# --- the parser ------------------------------------------------------------------------------

CANONICAL = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    "text", [CANONICAL, CANONICAL.upper(), "0F8fad5b-D9cb-469f-A165-70867728950E"]
)
def test_parse_uuid_takes_the_canonical_form_in_any_case(text):
    assert parse_uuid(text) == uuid.UUID(CANONICAL)


@pytest.mark.parametrize(
    "text",
    [
        "",
        CANONICAL.replace("-", ""),
        "{" + CANONICAL + "}",
        "urn:uuid:" + CANONICAL,
        CANONICAL + "\n",
        " " + CANONICAL,
        CANONICAL[:-1] + "g",
        CANONICAL.replace("0", "\u0660"),
        CANONICAL.replace("0", "\uff10"),
        CANONICAL.replace("-", "\u2010"),
        CANONICAL.replace("-", "", 1) + "-",
    ],
)
def test_parse_uuid_refuses_every_other_spelling(text):
    with pytest.raises(ValueError):
        parse_uuid(text)


@pytest.mark.parametrize("value", [None, 1, uuid.UUID(CANONICAL).int, b"0" * 36])
def test_parse_uuid_refuses_what_is_not_text(value):
    with pytest.raises(ValueError):
        parse_uuid(value)
