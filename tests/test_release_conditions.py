"""ETags, If-Match and Idempotency-Key on the release endpoints, with files: a refused or
replayed write stores no object and leaves the rows as they were."""

from typing import Any

import pytest

from releases.models import LedgerEntry, Release, ReleaseFile
from teams.conditions import etag_of
from teams.models import IdempotencyKey
from tests.helpers import (
    create_data,
    make_jar,
    post_release,
    put_release,
    release_url,
    releases_url,
    stored_objects,
    team_state,
    update_data,
)

pytestmark = pytest.mark.django_db


def get(client: Any, world: Any, **headers: str) -> Any:
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return client.get(
        release_url(world.team.id, world.release.id),
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
        **extra,
    )


def test_get_put_and_post_answer_with_the_representations_etag(client, world):
    got = get(client, world)
    assert got["ETag"] == etag_of(got.json()["data"])
    assert get(client, world, if_none_match=got["ETag"]).status_code == 304

    updated = put_release(
        client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
    )
    created = post_release(client, world.team.id, key=world.key, data=create_data(world.product))

    assert updated["ETag"] == etag_of(updated.json()["data"])
    # An update that changed nothing but updatedAt keeps the ETag.
    assert updated["ETag"] == got["ETag"]
    assert created.status_code == 201
    assert created["ETag"] == etag_of(created.json()["data"])


def test_a_stale_if_match_refuses_an_upload_and_stores_nothing(client, world):
    old = get(client, world)["ETag"]
    put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, version="1.0.1"),
    )
    before = team_state(world.team)

    refused = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, version="1.0.2"),
        file=("app.jar", make_jar()),
        HTTP_IF_MATCH=old,
    )

    assert refused.status_code == 412
    assert refused["ETag"] == get(client, world)["ETag"]
    assert team_state(world.team) == before
    assert stored_objects() == []
    assert not LedgerEntry.objects.exists()
    assert Release.objects.get(pk=world.release.pk).version == "1.0.1"


def test_a_current_if_match_lets_the_upload_through(client, world):
    etag = get(client, world)["ETag"]

    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release),
        file=("app.jar", make_jar()),
        HTTP_IF_MATCH=etag,
    )

    assert response.status_code == 200
    assert ReleaseFile.objects.filter(release=world.release).exists()


def test_a_retried_create_with_a_file_makes_one_release_and_one_object(client, world):
    jar = make_jar()
    data = create_data(world.product, version="7.0.0")

    first = post_release(
        client,
        world.team.id,
        key=world.key,
        data=data,
        file=("a.jar", jar),
        HTTP_IDEMPOTENCY_KEY="c1",
    )
    again = post_release(
        client,
        world.team.id,
        key=world.key,
        data=data,
        file=("a.jar", jar),
        HTTP_IDEMPOTENCY_KEY="c1",
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Release.objects.filter(product=world.product, version="7.0.0").count() == 1
    assert len(stored_objects()) == 1
    assert not LedgerEntry.objects.exists()


def test_the_same_key_with_another_file_is_422_and_stores_nothing(client, world):
    data = create_data(world.product, version="7.1.0")
    post_release(
        client,
        world.team.id,
        key=world.key,
        data=data,
        file=("a.jar", make_jar()),
        HTTP_IDEMPOTENCY_KEY="c2",
    )
    other = make_jar(extra={"other.txt": "different"})

    response = post_release(
        client,
        world.team.id,
        key=world.key,
        data=data,
        file=("a.jar", other),
        HTTP_IDEMPOTENCY_KEY="c2",
    )

    assert response.status_code == 422
    assert len(stored_objects()) == 1


def test_a_refused_update_frees_the_key_for_a_corrected_retry(client, world):
    url_args = (client, world.team.id, world.release.id)
    bad = put_release(
        *url_args,
        key=world.key,
        data=update_data(world.release, productId="00000000-0000-4000-8000-000000000000"),
        HTTP_IDEMPOTENCY_KEY="u1",
    )
    assert bad.status_code == 404
    assert not IdempotencyKey.objects.filter(key="u1").exists()

    good = put_release(
        *url_args, key=world.key, data=update_data(world.release), HTTP_IDEMPOTENCY_KEY="u1"
    )
    assert good.status_code == 200


def test_a_retried_delete_replays_the_deleted_release(client, world):
    url = release_url(world.team.id, world.release.id)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.key}", "HTTP_IDEMPOTENCY_KEY": "d1"}

    first = client.delete(url, **auth)
    again = client.delete(url, **auth)
    fresh = client.delete(url, HTTP_AUTHORIZATION=f"Bearer {world.key}")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert fresh.status_code == 404


def test_list_is_unaffected(client, world):
    response = client.get(releases_url(world.team.id), HTTP_AUTHORIZATION=f"Bearer {world.key}")

    assert response.status_code == 200
