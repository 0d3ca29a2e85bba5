"""A successful update: the whole envelope, and the rows it leaves."""

from releases.models import Release, ReleaseMetadata
from teams.models import unknown_creator
from tests.helpers import put_release, update_data


def test_update_returns_the_release_in_the_envelope(client, world):
    data = update_data(
        world.release,
        version="1.0.1",
        status="PUBLISHED",
        setAsLatest=True,
        metadata=[
            {"key": "channel", "value": "stable", "locked": True},
            {"key": "a", "value": "b"},
        ],
    )
    before = world.release.updated_at

    response = put_release(client, world.team.id, world.release.id, key=world.key, data=data)

    assert response.status_code == 200, response.json()
    body = response.json()
    release = Release.objects.get(pk=world.release.pk)
    assert body["result"]["valid"] is True
    assert body["result"]["details"] == "Release updated"
    assert body["data"] == {
        "id": str(release.id),
        "version": "1.0.1",
        "status": "PUBLISHED",
        "latest": True,
        "productId": str(world.product.id),
        "branchId": None,
        "teamId": str(world.team.id),
        "createdAt": body["data"]["createdAt"],
        "updatedAt": body["data"]["updatedAt"],
        "metadata": [
            {"key": "channel", "value": "stable", "locked": True},
            {"key": "a", "value": "b", "locked": False},
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
        "branch": None,
        "file": None,
        "licenseIds": [],
    }
    assert release.version == "1.0.1" and release.latest
    assert release.updated_at > before
    assert list(ReleaseMetadata.objects.filter(release=release).values_list("key", "locked")) == [
        ("channel", True),
        ("a", False),
    ]
    # The previous latest of the same product and (null) branch lost the flag.
    world.other_release.refresh_from_db()
    assert world.other_release.latest is False
