"""Two holes in conditional and idempotent writes, closed:

- an Idempotency-Key is scoped by the canonical path (ids parsed), so a retry that spells the
  team id in upper case replays the first answer instead of writing again;
- ``If-Match`` on a write with no current representation (a create, a test event) can never
  match (RFC 9110 13.1.1): 412, and nothing it did is kept, not even an uploaded file."""

import pytest

from releases.models import Product, Release
from teams.conditions import canonical_path
from teams.models import IdempotencyKey
from tests.helpers import create_data, make_jar, post_release, stored_objects
from tests.test_conditions import products_url, send
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

NO_MATCH = (
    "Precondition failed: If-Match cannot match a resource that has no current "
    "representation; send it only to update or delete"
)


def upper_team(url: str, world) -> str:
    return url.replace(str(world.team.id), str(world.team.id).upper())


def test_a_retry_with_the_team_id_in_upper_case_replays(client, world):
    before = Product.objects.filter(team=world.team).count()
    body = {"name": "Scoped", "url": None}

    first = send(client, "post", products_url(world), world, body, idempotency_key="k-1")
    retried = send(
        client, "post", upper_team(products_url(world), world), world, body, idempotency_key="k-1"
    )

    assert first.status_code == 201, first.content
    assert retried.status_code == 201, retried.content
    assert retried["Idempotent-Replayed"] == "true"
    assert retried.json() == first.json()
    assert Product.objects.filter(team=world.team).count() == before + 1
    assert list(IdempotencyKey.objects.values_list("path", flat=True)) == [products_url(world)]


def test_the_canonical_path_keeps_other_arguments_and_lowers_uuids(rf, world):
    from django.urls import resolve

    url = f"{upper_team(products_url(world), world)}/{str(world.product.id).upper()}"
    request = rf.put(url)
    request.resolver_match = resolve(url)

    assert canonical_path(request) == f"{products_url(world)}/{world.product.id}"


@pytest.mark.parametrize("if_match", ["*", '"0123456789abcdef0123456789abcdef"'])
def test_if_match_on_a_create_is_412_and_creates_nothing(client, world, if_match):
    before = Product.objects.filter(team=world.team).count()

    response = send(
        client,
        "post",
        products_url(world),
        world,
        {"name": "Never", "url": None},
        if_match=if_match,
        idempotency_key="k-2",
    )

    assert response.status_code == 412, response.content
    assert response.json()["result"]["details"] == NO_MATCH
    assert response.json()["result"]["code"] == "BAD_REQUEST"
    assert "ETag" not in response
    assert Product.objects.filter(team=world.team).count() == before
    # A refused write frees its key for a corrected retry.
    assert not IdempotencyKey.objects.exists()
    again = send(
        client, "post", products_url(world), world, {"name": "Never"}, idempotency_key="k-2"
    )
    assert again.status_code == 201


def test_if_match_on_a_release_create_stores_no_file(client, world):
    releases = Release.objects.count()

    response = post_release(
        client,
        world.team.id,
        key=world.key,
        data=create_data(world.product),
        file=("app.jar", make_jar()),
        HTTP_IF_MATCH="*",
    )

    assert response.status_code == 412, response.content
    assert Release.objects.count() == releases
    assert stored_objects() == []


def test_if_match_on_a_test_event_is_412_and_sends_nothing(client, world):
    created = send(
        client,
        "post",
        f"/api/v1/dev/teams/{world.team.id}/webhooks",
        world,
        {"url": "https://hooks.example.com/x", "events": ["release.created"], "active": True},
    )
    assert created.status_code == 201, created.content
    endpoint = WebhookEndpoint.objects.get()

    response = send(
        client,
        "post",
        f"/api/v1/dev/teams/{world.team.id}/webhooks/{endpoint.id}/test",
        world,
        if_match=created["ETag"],
    )

    assert response.status_code == 412, response.content
    assert not WebhookDelivery.objects.exists()
