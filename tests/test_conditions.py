"""ETags, If-Match, If-None-Match and Idempotency-Key on products and branches (the release
endpoints' are in test_release_conditions.py)."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from releases.catalog import product_payload
from releases.models import Branch, Product
from teams.conditions import etag_of
from teams.models import ApiKey, AuditLog, IdempotencyKey
from tests.conftest import World

pytestmark = pytest.mark.django_db


def send(
    client: Client, method: str, url: str, world: World, body: Any = None, **headers: str
) -> Any:
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {world.key}", **extra}
    if body is not None:
        kwargs["data"] = json.dumps(body)
        kwargs["content_type"] = "application/json"
    return getattr(client, method)(url, **kwargs)


def products_url(world: World) -> str:
    return f"/api/v1/dev/teams/{world.team.id}/products"


def product_url(world: World, product: Any = None) -> str:
    return f"{products_url(world)}/{(product or world.product).id}"


# --- ETags --------------------------------------------------------------------------------------


def test_get_answers_with_an_etag_and_304_when_current(client, world):
    first = send(client, "get", product_url(world), world)
    etag = first["ETag"]
    assert etag == etag_of(first.json()["data"])

    again = send(client, "get", product_url(world), world, if_none_match=etag)
    weak = send(client, "get", product_url(world), world, if_none_match=f'W/{etag}, "x"')
    stale = send(client, "get", product_url(world), world, if_none_match='"something-else"')

    assert again.status_code == 304 and again["ETag"] == etag and again.content == b""
    assert weak.status_code == 304
    assert stale.status_code == 200


def test_an_identical_update_keeps_the_etag(client, world):
    etag = send(client, "get", product_url(world), world)["ETag"]
    body = {"name": world.product.name, "url": world.product.url}

    first = send(client, "put", product_url(world), world, body, if_match=etag)
    retried = send(client, "put", product_url(world), world, body, if_match=etag)

    assert first.status_code == 200 and first["ETag"] == etag
    assert retried.status_code == 200


def test_if_match_with_an_old_etag_is_412_and_changes_nothing(client, world):
    old = send(client, "get", product_url(world), world)["ETag"]
    changed = send(client, "put", product_url(world), world, {"name": "Renamed"})
    current = changed["ETag"]
    assert current != old

    refused = send(client, "put", product_url(world), world, {"name": "Lost"}, if_match=old)
    delete = send(client, "delete", product_url(world), world, if_match=old)

    for response in (refused, delete):
        assert response.status_code == 412
        assert response["ETag"] == current
        assert response.json()["result"]["code"] == "BAD_REQUEST"
        assert response.json()["result"]["details"].startswith("Precondition failed")
    assert Product.objects.get(pk=world.product.pk).name == "Renamed"
    assert (
        send(
            client, "put", product_url(world), world, {"name": "Won"}, if_match=current
        ).status_code
        == 200
    )


def test_if_match_star_needs_the_resource_and_weak_tags_never_match(client, world):
    etag = send(client, "get", product_url(world), world)["ETag"]

    weak = send(client, "put", product_url(world), world, {"name": "x"}, if_match=f"W/{etag}")
    star = send(client, "put", product_url(world), world, {"name": "x"}, if_match="*")
    malformed = send(client, "put", product_url(world), world, {"name": "x"}, if_match="abc")

    assert weak.status_code == 412
    assert star.status_code == 200
    assert malformed.status_code == 400


def test_branches_honour_if_match(client, world):
    url = f"/api/v1/dev/teams/{world.team.id}/branches/{world.branch.id}"
    etag = send(client, "get", url, world)["ETag"]
    send(client, "put", url, world, {"name": "renamed"})

    assert send(client, "delete", url, world, if_match=etag).status_code == 412
    assert Branch.objects.filter(pk=world.branch.pk).exists()


# --- Idempotency-Key ------------------------------------------------------------------------


def test_a_retried_create_replays_the_first_answer(client, world):
    body = {"name": "Once", "url": None}

    first = send(client, "post", products_url(world), world, body, idempotency_key="k-1")
    again = send(client, "post", products_url(world), world, body, idempotency_key="k-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert again["ETag"] == first["ETag"]
    assert Product.objects.filter(team=world.team, name="Once").count() == 1
    assert AuditLog.objects.filter(action="product.create", team=world.team).count() == 1


def test_the_key_is_scoped_to_the_api_key_method_and_path(client, world):
    from teams.services import api_key_create

    _, second_key = api_key_create(team=world.team, name="second")
    body = {"name": "Scoped"}
    send(client, "post", products_url(world), world, body, idempotency_key="shared")
    other = client.post(
        products_url(world),
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {second_key}",
        HTTP_IDEMPOTENCY_KEY="shared",
    )

    assert other.status_code == 201
    assert "Idempotent-Replayed" not in other
    assert Product.objects.filter(name="Scoped").count() == 2


def test_the_same_key_with_another_request_is_422(client, world):
    send(client, "post", products_url(world), world, {"name": "A"}, idempotency_key="k-2")

    response = send(
        client, "post", products_url(world), world, {"name": "B"}, idempotency_key="k-2"
    )

    assert response.status_code == 422
    assert not Product.objects.filter(name="B").exists()


def test_a_key_still_running_is_409_with_retry_after(client, world):
    key = ApiKey.objects.get(team=world.team)
    body = {"name": "Slow"}
    from teams.conditions import fingerprint

    IdempotencyKey.objects.create(
        api_key=key,
        key="k-3",
        method="POST",
        path=products_url(world),
        fingerprint=fingerprint(body),
    )

    response = send(client, "post", products_url(world), world, body, idempotency_key="k-3")

    assert response.status_code == 409
    assert response["Retry-After"] == "1"
    assert not Product.objects.filter(name="Slow").exists()


def test_a_claim_left_by_a_dead_request_is_taken_over(client, world, settings):
    settings.IDEMPOTENCY_STALE_SECONDS = 60
    key = ApiKey.objects.get(team=world.team)
    body = {"name": "Orphaned"}
    from teams.conditions import fingerprint

    IdempotencyKey.objects.create(
        api_key=key,
        key="k-4",
        method="POST",
        path=products_url(world),
        fingerprint=fingerprint(body),
        created_at=timezone.now() - timedelta(seconds=61),
    )

    response = send(client, "post", products_url(world), world, body, idempotency_key="k-4")

    assert response.status_code == 201
    assert IdempotencyKey.objects.get(key="k-4").status_code == 201


def test_a_refused_write_frees_its_key(client, world):
    url = f"{products_url(world)}/{world.product.id}/branches"

    clash = send(client, "post", url, world, {"name": "beta"}, idempotency_key="k-5")
    assert clash.status_code == 409
    assert not IdempotencyKey.objects.filter(key="k-5").exists()
    Branch.objects.filter(pk=world.branch.pk).update(name="old-beta")

    retried = send(client, "post", url, world, {"name": "beta"}, idempotency_key="k-5")
    assert retried.status_code == 201


def test_a_retried_delete_replays_instead_of_404(client, world):
    url = product_url(world, world.other_product)

    first = send(client, "delete", url, world, idempotency_key="d-1")
    again = send(client, "delete", url, world, idempotency_key="d-1")

    assert first.status_code == again.status_code == 200
    assert again.json()["data"] == product_payload_of(first)


def product_payload_of(response: Any) -> dict[str, Any]:
    return response.json()["data"]


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "é"])
def test_a_malformed_key_is_400(client, world, value):
    response = send(
        client, "post", products_url(world), world, {"name": "K"}, idempotency_key=value
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["result"]["details"]


def test_keys_expire_after_a_day_and_are_purged(client, world):
    body = {"name": "Daily"}
    send(client, "post", products_url(world), world, body, idempotency_key="k-6")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))

    # Expired: the key is free again, and a new request with it runs.
    again = send(client, "post", products_url(world), world, body, idempotency_key="k-6")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Product.objects.filter(name="Daily").count() == 2

    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    call_command("purge_idempotency_keys", stdout=open("/dev/null", "w"))
    assert not IdempotencyKey.objects.exists()


def test_etag_ignores_updated_at_only():
    payload = product_payload(
        Product(name="n", created_at=timezone.now(), updated_at=timezone.now())
    )
    later = {**payload, "updatedAt": "2030-01-01T00:00:00.000Z"}
    renamed = {**payload, "name": "m"}

    assert etag_of(payload) == etag_of(later) != etag_of(renamed)


def test_a_malformed_if_none_match_is_400(client, world):
    response = send(client, "get", product_url(world), world, if_none_match="not-a-tag")

    assert response.status_code == 400
    assert response.json()["result"]["details"] == (
        'Malformed If-None-Match: send "<etag>" as received'
    )
