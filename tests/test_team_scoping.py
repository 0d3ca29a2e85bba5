"""Every id is looked up inside the key's team: another team's release, product, branch or
license answers exactly like an id that does not exist, and is never touched."""

import uuid

import pytest

from tests.helpers import put_release, result_of, team_state, update_data


def answer(response):
    """What a client can learn from a response: its status and its envelope (no timestamp)."""
    return response.status_code, response.json()["data"], result_of(response)


def owner_put(client, world, release_id, data):
    return put_release(client, world.team.id, release_id, key=world.key, data=data)


@pytest.fixture
def states(world, outsider):
    """Both teams' rows before the request; checked unchanged after it."""
    before = (team_state(world.team), team_state(outsider.team))
    yield before
    assert (team_state(world.team), team_state(outsider.team)) == before


def test_outsiders_release_is_not_found(client, world, outsider, states):
    data = update_data(world.release, version="5.0.0")

    theirs = owner_put(client, world, outsider.release.id, data)
    missing = owner_put(client, world, uuid.uuid4(), data)

    assert answer(theirs) == answer(missing)
    assert answer(theirs) == (
        404,
        None,
        {"valid": False, "details": "Release not found", "code": "RELEASE_NOT_FOUND"},
    )


def test_outsiders_release_with_its_own_data_is_not_found(client, world, outsider, states):
    """Even a body that is valid for the outsider's release (its product, its version)."""
    data = update_data(outsider.release, version="5.0.0")

    theirs = owner_put(client, world, outsider.release.id, data)
    missing = owner_put(client, world, uuid.uuid4(), data)

    assert answer(theirs) == answer(missing)
    assert theirs.status_code == 404


def test_outsiders_product_is_not_found(client, world, outsider, states):
    def data(product_id):
        return update_data(world.release, productId=str(product_id))

    theirs = owner_put(client, world, world.release.id, data(outsider.product.id))
    missing = owner_put(client, world, world.release.id, data(uuid.uuid4()))

    assert answer(theirs) == answer(missing)
    assert answer(theirs) == (
        404,
        None,
        {"valid": False, "details": "Product not found", "code": "PRODUCT_NOT_FOUND"},
    )


def test_outsiders_branch_is_not_found(client, world, outsider, states):
    def data(branch_id):
        return update_data(world.release, branchId=str(branch_id))

    theirs = owner_put(client, world, world.release.id, data(outsider.branch.id))
    missing = owner_put(client, world, world.release.id, data(uuid.uuid4()))

    assert answer(theirs) == answer(missing)
    assert answer(theirs) == (
        404,
        None,
        {"valid": False, "details": "Branch not found", "code": "RELEASE_NOT_FOUND"},
    )


def test_outsiders_product_and_branch_together_are_not_found(client, world, outsider, states):
    def data(product_id, branch_id):
        return update_data(world.release, productId=str(product_id), branchId=str(branch_id))

    theirs = owner_put(
        client, world, world.release.id, data(outsider.product.id, outsider.branch.id)
    )
    missing = owner_put(client, world, world.release.id, data(uuid.uuid4(), uuid.uuid4()))

    assert answer(theirs) == answer(missing)
    assert theirs.status_code == 404


def test_outsiders_license_is_not_found(client, world, outsider, states):
    def data(license_id):
        return update_data(world.release, licenseIds=[str(world.licenses[0].id), str(license_id)])

    theirs = owner_put(client, world, world.release.id, data(outsider.licenses[0].id))
    missing = owner_put(client, world, world.release.id, data(uuid.uuid4()))

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
    data = update_data(world.release, version="5.0.0")

    response = put_release(client, world.team.id, world.release.id, key=outsider.key, data=data)

    assert answer(response) == (
        401,
        None,
        {"valid": False, "details": "Invalid API key", "code": "UNAUTHORIZED"},
    )
    assert response["WWW-Authenticate"] == "Bearer"


def test_owners_key_on_the_outsiders_url(client, world, outsider, states):
    """The key is refused on another team's URL even for that team's own release."""
    data = update_data(outsider.release, version="5.0.0")

    response = put_release(client, outsider.team.id, outsider.release.id, key=world.key, data=data)

    assert answer(response) == (
        401,
        None,
        {"valid": False, "details": "Invalid API key", "code": "UNAUTHORIZED"},
    )


def test_outsider_can_still_update_its_own_release(client, world, outsider):
    """The scoping refuses the owner, not the ids: the outsider's key works on them."""
    data = update_data(outsider.release, version="5.0.0", branchId=str(outsider.branch.id))

    response = put_release(
        client, outsider.team.id, outsider.release.id, key=outsider.key, data=data
    )

    assert response.status_code == 200, response.json()
    outsider.release.refresh_from_db()
    assert (outsider.release.version, outsider.release.branch_id) == ("5.0.0", outsider.branch.id)
