"""Products and branches in the Developer API: CRUD, scoping, limits, clashes, audit."""

import json
import threading
import uuid
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from releases.models import Branch, Product, Release, ReleaseStatus
from teams.models import ApiKey, AuditLog, operator_creator_id, unknown_creator
from tests.conftest import World, build_world

pytestmark = pytest.mark.django_db


def base(world: World) -> str:
    return f"/api/v1/dev/teams/{world.team.id}"


def call(
    client: Client, method: str, url: str, world: World, body: Any = None, **extra: Any
) -> Any:
    kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {world.key}", **extra}
    if body is not None:
        kwargs["data"] = json.dumps(body) if not isinstance(body, str | bytes) else body
        kwargs.setdefault("content_type", "application/json")
    return getattr(client, method)(url, **kwargs)


def result(response: Any) -> dict[str, Any]:
    return response.json()["result"]


def test_create_get_list_update_delete_a_product(client, world):
    created = call(client, "post", f"{base(world)}/products", world, {"name": "Tool", "url": None})
    assert created.status_code == 201, created.content
    product = created.json()["data"]
    assert product["name"] == "Tool"
    assert product["teamId"] == str(world.team.id)
    key = ApiKey.objects.get(team=world.team)
    assert product["createdByUserId"] == str(key.id)

    url = f"{base(world)}/products/{product['id']}"
    assert call(client, "get", url, world).json()["data"] == product
    listed = call(client, "get", f"{base(world)}/products?search=too", world).json()["data"]
    assert [item["id"] for item in listed["products"]] == [product["id"]]
    assert listed["totalResults"] == 1 and listed["hasNextPage"] is False

    updated = call(client, "put", url, world, {"name": "Tool 2", "url": "https://example.com/t"})
    assert updated.status_code == 200
    assert updated.json()["data"]["url"] == "https://example.com/t"

    deleted = call(client, "delete", url, world)
    assert deleted.status_code == 200
    assert deleted.json()["data"]["name"] == "Tool 2"
    assert not Product.objects.filter(pk=product["id"]).exists()
    actions = list(
        AuditLog.objects.filter(target_id=product["id"]).values_list("action", flat=True)
    )
    assert sorted(actions) == ["product.create", "product.delete", "product.update"]
    assert AuditLog.objects.filter(target_id=product["id"], api_key=key).count() == 3


def test_every_product_names_a_creator():
    assert unknown_creator() == operator_creator_id("operator:unknown")
    world = build_world("Creators")
    # Made by code that names no creator: the unknown operator, never null.
    assert world.product.created_by_user_id == unknown_creator()


def test_another_teams_product_and_branch_are_not_found(client, world, outsider):
    product_url = f"{base(world)}/products/{outsider.product.id}"
    branch_url = f"{base(world)}/branches/{outsider.branch.id}"

    assert result(call(client, "get", product_url, world))["code"] == "PRODUCT_NOT_FOUND"
    assert result(call(client, "put", product_url, world, {"name": "x"}))["code"] == (
        "PRODUCT_NOT_FOUND"
    )
    assert result(call(client, "delete", product_url, world))["code"] == "PRODUCT_NOT_FOUND"
    assert call(client, "get", branch_url, world).status_code == 404
    assert call(client, "delete", branch_url, world).status_code == 404
    assert Product.objects.filter(pk=outsider.product.id).exists()
    assert Branch.objects.filter(pk=outsider.branch.id).exists()
    # The outsider's key does not open this team's URLs at all.
    other = call(client, "get", f"{base(world)}/products", outsider)
    assert other.status_code == 401


def test_a_product_with_releases_cannot_be_deleted(client, world):
    response = call(client, "delete", f"{base(world)}/products/{world.product.id}", world)

    assert response.status_code == 409
    assert result(response)["details"] == (
        "The product has releases: delete or move them first, then the product"
    )
    assert Product.objects.filter(pk=world.product.id).exists()


def test_a_product_without_releases_goes_with_its_branches(client, world):
    Branch.objects.create(product=world.other_product, name="nightly")

    response = call(client, "delete", f"{base(world)}/products/{world.other_product.id}", world)

    assert response.status_code == 200
    assert not Branch.objects.filter(product_id=world.other_product.id).exists()


def test_branches_create_list_rename_delete(client, world):
    url = f"{base(world)}/products/{world.product.id}/branches"
    created = call(client, "post", url, world, {"name": "nightly"})
    assert created.status_code == 201
    branch = created.json()["data"]
    assert branch["productId"] == str(world.product.id)

    names = [item["name"] for item in call(client, "get", url, world).json()["data"]["branches"]]
    assert names == ["beta", "nightly"]

    branch_url = f"{base(world)}/branches/{branch['id']}"
    renamed = call(client, "put", branch_url, world, {"name": "canary"})
    assert renamed.json()["data"]["name"] == "canary"
    assert call(client, "delete", branch_url, world).status_code == 200
    assert not Branch.objects.filter(pk=branch["id"]).exists()


def test_a_branch_name_clash_is_409_not_500(client, world):
    url = f"{base(world)}/products/{world.product.id}/branches"
    clash = call(client, "post", url, world, {"name": "beta"})
    other = call(client, "post", url, world, {"name": "other"}).json()["data"]
    rename = call(client, "put", f"{base(world)}/branches/{other['id']}", world, {"name": "beta"})

    for response in (clash, rename):
        assert response.status_code == 409
        assert result(response)["details"] == "The product already has a branch with this name"
    assert Branch.objects.get(pk=other["id"]).name == "other"


def test_a_branch_with_releases_cannot_be_deleted(client, world):
    Release.objects.create(
        team=world.team,
        product=world.product,
        branch=world.branch,
        version="2.0.0-beta",
        status=ReleaseStatus.DRAFT,
    )

    response = call(client, "delete", f"{base(world)}/branches/{world.branch.id}", world)

    assert response.status_code == 409
    assert Branch.objects.filter(pk=world.branch.id).exists()


def test_the_branch_limit_holds(client, world):
    world.team.max_branches_per_product = 2
    world.team.save()
    url = f"{base(world)}/products/{world.product.id}/branches"

    assert call(client, "post", url, world, {"name": "second"}).status_code == 201
    refused = call(client, "post", url, world, {"name": "third"})

    assert refused.status_code == 403
    assert result(refused)["details"] == "Max branches per product reached"
    assert Branch.objects.filter(product=world.product).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_branch_limit_holds_under_concurrent_creates():
    world = build_world("Branchy")
    world.team.max_branches_per_product = 3
    world.team.save()
    url = f"{base(world)}/products/{world.product.id}/branches"
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def create(number: int) -> None:
        try:
            barrier.wait()
            statuses.append(call(Client(), "post", url, world, {"name": f"b{number}"}).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(statuses) == [201, 201, 403, 403, 403, 403]
    assert Branch.objects.filter(product=world.product).count() == 3


@pytest.mark.parametrize(
    ("body", "content_type", "status", "details"),
    [
        ("{not json", "application/json", 400, "Malformed JSON body"),
        ("name=x", "application/x-www-form-urlencoded", 415, "Unsupported media type"),
        ({"name": ""}, "application/json", 400, "Invalid request body"),
        ({"name": "   "}, "application/json", 400, "Invalid request body"),
        ({"name": 5}, "application/json", 400, "Invalid request body"),
        ({"name": "x", "team": "y"}, "application/json", 400, "Invalid request body"),
        ({"name": "x", "url": "not a url"}, "application/json", 400, "Invalid request body"),
        (["name"], "application/json", 400, "Invalid request body"),
    ],
)
def test_bad_bodies_are_explained(client, world, body, content_type, status, details):
    response = call(
        client, "post", f"{base(world)}/products", world, body, content_type=content_type
    )

    assert response.status_code == status, response.content
    assert result(response)["details"] == details
    if status == 400 and details == "Invalid request body":
        assert response.json()["data"]["errors"]
    assert Product.objects.filter(team=world.team).count() == 2


def test_bad_ids_and_queries(client, world):
    assert result(call(client, "get", f"{base(world)}/products/nope", world))["details"] == (
        "Invalid productId"
    )
    assert result(call(client, "get", f"{base(world)}/branches/nope", world))["details"] == (
        "Invalid branchId"
    )
    response = call(client, "get", f"{base(world)}/products?sort=name", world)
    assert result(response)["details"] == "Invalid query parameter: sort"
    missing = call(client, "get", f"{base(world)}/products/{uuid.uuid4()}/branches", world)
    assert result(missing)["code"] == "PRODUCT_NOT_FOUND"


def test_products_page(client, world):
    for number in range(30):
        Product.objects.create(team=world.team, name=f"P{number:02d}")

    first = call(client, "get", f"{base(world)}/products?pageSize=10", world).json()["data"]
    last = call(client, "get", f"{base(world)}/products?pageSize=10&page=4", world).json()["data"]
    beyond = call(client, "get", f"{base(world)}/products?pageSize=10&page=9", world).json()["data"]

    assert len(first["products"]) == 10 and first["hasNextPage"] is True
    assert first["totalResults"] == 32
    assert len(last["products"]) == 2 and last["hasNextPage"] is False
    assert beyond["products"] == [] and beyond["hasNextPage"] is False


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://example.com/plugin?x=1", True),
        ("https://J\u0085~\U0001ce5f\u00b0", True),  # JSON Schema's \S and Python's differ here
        ("https://example.com\n", False),  # Python's $ would let a trailing newline in
        ("https://exa mple.com", False),
        ("ftp://example.com", False),
        ("https://", False),
    ],
)
def test_a_product_url_follows_the_documented_pattern(client, world, url, accepted):
    import re

    from releases.catalog import URL_PATTERN

    response = call(client, "post", f"{base(world)}/products", world, {"name": "U", "url": url})

    assert (response.status_code == 201) is accepted, response.content
    assert bool(re.search(URL_PATTERN, url)) is accepted or url.endswith("\n")


@pytest.mark.parametrize("name", ["Two\nlines", "Tab\there", "Bell\x07", "Trailing\n", "Del\x7f"])
def test_names_with_control_characters_are_refused(client, world, name):
    """Names go into the classloader's X-Product-Name header: a line break would end it."""
    product = call(client, "post", f"{base(world)}/products", world, {"name": name})
    product_id = world.product.id
    branch = call(
        client, "post", f"{base(world)}/products/{product_id}/branches", world, {"name": name}
    )

    for response in (product, branch):
        assert response.status_code == 400, response.content
        errors = response.json()["data"]["errors"]
        assert errors[0]["path"] == ["name"]
        assert "control characters" in errors[0]["message"]
    assert not Product.objects.filter(name=name).exists()
    assert not Branch.objects.filter(name=name).exists()


def test_json_nested_too_deeply_is_malformed_not_a_500(client, world):
    body = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"

    response = call(client, "post", f"{base(world)}/products", world, body)

    assert response.status_code == 400, response.content[:300]
    assert response.json()["result"]["details"] == "Malformed JSON body"
