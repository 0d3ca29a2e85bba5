"""Which writes emit which events, with what data, and only when they commit: releases
(including the release that loses ``latest``), products and branches, through the API."""

import json

import pytest
from django.db import transaction

from releases.models import Release, ReleaseStatus
from releases.services import Actor, release_update
from teams.conditions import Conditions
from tests.helpers import create_data, post_release, put_release, release_url, update_data
from tests.test_webhooks_helpers import Boom, changes_of, make_endpoint
from webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEvent

URL = "https://hooks.example.com/in"


def api(world):
    return {"HTTP_AUTHORIZATION": f"Bearer {world.key}"}


def dev(world, path):
    return f"/api/v1/dev/teams/{world.team.id}/{path}"


def sent(event_type=None):
    """The events recorded, oldest first, as (type, data)."""
    events = WebhookEvent.objects.order_by("created_at", "id")
    if event_type:
        events = events.filter(type=event_type)
    return [(event.type, json.loads(event.body)["data"]) for event in events]


def get_data(client, world, path):
    return client.get(dev(world, path), **api(world)).json()["data"]


def test_release_create_update_delete_emit_the_release_as_the_api_returns_it(client, world):
    make_endpoint(world.team, URL)
    created = post_release(
        client, world.team.id, key=world.key, data=create_data(world.product)
    ).json()["data"]
    updated = put_release(
        client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
    ).json()["data"]
    deleted = client.delete(release_url(world.team.id, created["id"]), **api(world)).json()["data"]

    assert sent() == [
        ("release.created", created),
        ("release.updated", updated),
        ("release.deleted", deleted),
    ]
    assert deleted == created


def test_the_release_that_loses_latest_gets_a_release_updated(client, world):
    make_endpoint(world.team, URL)
    assert world.other_release.latest

    promoted = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, status=ReleaseStatus.PUBLISHED, setAsLatest=True),
    ).json()["data"]

    demoted = get_data(client, world, f"releases/{world.other_release.id}")
    assert demoted["latest"] is False
    assert sent() == [("release.updated", promoted), ("release.updated", demoted)]


def test_a_created_release_that_takes_latest_reports_the_release_it_demoted(client, world):
    make_endpoint(world.team, URL, ("release.updated",))
    assert world.other_release.latest

    created = post_release(
        client,
        world.team.id,
        key=world.key,
        data=create_data(world.product, status=ReleaseStatus.PUBLISHED, setAsLatest=True),
    ).json()["data"]

    assert created["latest"] is True
    demoted = get_data(client, world, f"releases/{world.other_release.id}")
    assert demoted["latest"] is False
    # The endpoint wants only release.updated: the demoted release's, not the created one's.
    assert sent() == [("release.updated", demoted)]


def test_a_release_of_another_line_keeps_latest_and_gets_nothing(client, world):
    make_endpoint(world.team, URL)
    put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(
            world.release,
            status=ReleaseStatus.PUBLISHED,
            setAsLatest=True,
            branchId=str(world.branch.id),
        ),
    )

    assert [data["id"] for _, data in sent()] == [str(world.release.id)]
    assert Release.objects.get(pk=world.other_release.pk).latest is True


def test_products_and_branches_emit_their_events(client, world):
    make_endpoint(world.team, URL)
    body = {"content_type": "application/json", **api(world)}
    product = client.post(
        dev(world, "products"), data={"name": "Hooked", "url": None}, **body
    ).json()["data"]
    renamed = client.put(
        dev(world, f"products/{product['id']}"), data={"name": "Hooked 2"}, **body
    ).json()["data"]
    branch = client.post(
        dev(world, f"products/{product['id']}/branches"), data={"name": "rc"}, **body
    ).json()["data"]
    branch2 = client.put(
        dev(world, f"branches/{branch['id']}"), data={"name": "rc2"}, **body
    ).json()["data"]
    # Updates that change nothing send nothing (nor are they audited).
    unchanged = [
        client.put(dev(world, f"products/{product['id']}"), data={"name": "Hooked 2"}, **body),
        client.put(dev(world, f"branches/{branch['id']}"), data={"name": "rc2"}, **body),
    ]
    assert [response.status_code for response in unchanged] == [200, 200]
    branch_gone = client.delete(dev(world, f"branches/{branch['id']}"), **api(world)).json()["data"]
    product_gone = client.delete(dev(world, f"products/{product['id']}"), **api(world)).json()[
        "data"
    ]

    assert sent() == [
        ("product.created", product),
        ("product.updated", renamed),
        ("branch.created", branch),
        ("branch.updated", branch2),
        ("branch.deleted", branch_gone),
        ("product.deleted", product_gone),
    ]


def test_only_active_endpoints_that_want_the_event_get_a_delivery(world, outsider):
    wants, _ = make_endpoint(world.team, URL, ("release.updated",))
    make_endpoint(world.team, URL, ("release.created",))
    off, _ = make_endpoint(world.team, URL, ("release.updated",))
    WebhookEndpoint.objects.filter(pk=off.pk).update(active=False)
    make_endpoint(outsider.team, URL)  # another team's endpoint never hears of it

    release_update(
        actor=Actor(team=world.team, label="operator:test"),
        release_id=world.release.id,
        changes=changes_of(world.release),
        upload=None,
        max_file_bytes=1,
    )

    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.endpoint == wants
    assert delivery.state == DeliveryState.PENDING
    assert delivery.event.team == world.team


def test_nothing_is_written_when_no_endpoint_listens(client, world):
    put_release(
        client, world.team.id, world.release.id, key=world.key, data=update_data(world.release)
    )

    assert WebhookEvent.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0


def test_a_rolled_back_update_leaves_no_event(world):
    make_endpoint(world.team, URL)

    with pytest.raises(Boom), transaction.atomic():
        release_update(
            actor=Actor(team=world.team, label="operator:test"),
            release_id=world.release.id,
            changes=changes_of(world.release, version="7.7.7"),
            upload=None,
            max_file_bytes=1,
        )
        assert WebhookDelivery.objects.count() == 1  # written with the change...
        raise Boom  # ...and rolled back with it

    assert WebhookEvent.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
    assert Release.objects.get(pk=world.release.pk).version == "1.0.0"


def test_an_update_failing_after_its_event_rolls_the_event_back(client, world, monkeypatch):
    """Through the API: the write fails after the event was written (storing its answer), so
    the 500 leaves neither the change nor the event."""
    make_endpoint(world.team, URL)

    def fail(self, *args, **kwargs):
        raise Boom

    monkeypatch.setattr(Conditions, "record", fail)
    client.raise_request_exception = False
    response = put_release(
        client,
        world.team.id,
        world.release.id,
        key=world.key,
        data=update_data(world.release, version="7.7.7"),
    )

    assert response.status_code == 500
    assert WebhookEvent.objects.count() == 0
    assert Release.objects.get(pk=world.release.pk).version == "1.0.0"
