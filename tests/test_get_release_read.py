"""Get Release's fast read path: the release in one statement (``selectors.release_detail``)
and the API key with its team in one statement (``authentication.key_for``), each giving
exactly what the ORM gives: the same payload, key for key, and the same model instances."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lukittu.api import ApiError
from releases.models import Branch, Release, ReleaseLicense, ReleaseMetadata, ReleaseStatus
from releases.selectors import release_detail
from releases.serializers import release_payload
from teams.authentication import key_for
from teams.models import ApiKey, Team
from teams.services import license_create
from tests.helpers import attach_file, release_url


def orm_payload(release: Release) -> dict:
    """What the list (and formerly Get Release) builds: select_related plus prefetches."""
    loaded = (
        Release.objects.select_related("product", "branch", "file")
        .prefetch_related("metadata", "license_links")
        .get(pk=release.pk)
    )
    return release_payload(loaded)


def give_everything(world) -> Release:
    """A release on a branch with a file, metadata whose positions tie and run backwards, and
    licenses linked out of their creation order."""
    release = world.release
    Release.objects.filter(pk=release.pk).update(branch=world.branch)
    attach_file(release, "plugin.jar", b"bytes", main_class_name="com.example.Main")
    ReleaseMetadata.objects.bulk_create(
        ReleaseMetadata(release=release, position=position, key=f"k{index}", value=f"v{index}")
        for index, position in enumerate([3, 1, 1, 0, 2, 0, *range(19, 5, -1)])
    )
    ReleaseMetadata.objects.filter(release=release, key="k2").update(locked=True)
    licenses = world.licenses + [license_create(team=world.team)[0] for _ in range(3)]
    for license in reversed(licenses):
        ReleaseLicense.objects.create(release=release, license=license)
    return release


def test_a_full_release_reads_as_the_orm_reads_it(world):
    release = give_everything(world)

    data = release_detail(team_id=world.team.id, release_id=release.id)

    assert data == orm_payload(release)
    assert len(data["metadata"]) == 20
    assert len(data["licenseIds"]) == 6
    assert data["file"]["mainClassName"] == "com.example.Main"
    assert data["branch"] == {"id": str(world.branch.id), "name": "beta"}


def test_a_bare_release_reads_as_the_orm_reads_it(world):
    """No branch, no file, no metadata, no licenses; a product with a URL."""
    world.product.url = "https://example.com/app"
    world.product.save()

    data = release_detail(team_id=world.team.id, release_id=world.other_release.id)

    assert data == orm_payload(world.other_release)
    assert (data["branch"], data["file"], data["metadata"], data["licenseIds"]) == (
        None,
        None,
        [],
        [],
    )
    assert data["latest"] is True
    assert data["product"]["url"] == "https://example.com/app"


def test_the_api_answers_with_the_same_payload(client, world):
    release = give_everything(world)

    response = client.get(
        release_url(world.team.id, release.id), HTTP_AUTHORIZATION=f"Bearer {world.key}"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["data"] == orm_payload(release)


@pytest.mark.parametrize("which", ["another team's", "unknown"])
def test_only_the_teams_own_release_is_found(world, outsider, which):
    release_id = outsider.release.id if which == "another team's" else uuid.uuid4()

    with pytest.raises(ApiError) as raised:
        release_detail(team_id=world.team.id, release_id=release_id)

    assert (raised.value.status_code, raised.value.error_code) == (404, "RELEASE_NOT_FOUND")


def test_a_release_on_a_branch_of_its_product_keeps_the_branch_name(world):
    branch = Branch.objects.create(product=world.product, name="nightly")
    release = Release.objects.create(
        team=world.team,
        product=world.product,
        branch=branch,
        version="2.0.0",
        status=ReleaseStatus.PUBLISHED,
    )

    data = release_detail(team_id=world.team.id, release_id=release.id)

    assert data["branch"] == {"id": str(branch.id), "name": "nightly"}
    assert data == orm_payload(release)


# --- The key -------------------------------------------------------------------------------------


def field_values(instance) -> dict:
    return {
        field.attname: getattr(instance, field.attname)
        for field in type(instance)._meta.concrete_fields
    }


def test_the_key_and_its_team_load_as_the_orm_loads_them(world):
    key = key_for(world.key)
    expected = ApiKey.objects.select_related("team").get(stem=ApiKey.stem_of(world.key))

    assert key is not None
    assert field_values(key) == field_values(expected)
    assert field_values(key.team) == field_values(expected.team)
    assert (key._state.adding, key._state.db) == (False, "default")
    assert (key.team._state.adding, key.team._state.db) == (False, "default")


def test_the_team_comes_with_the_key_in_one_statement(world):
    with CaptureQueriesContext(connection) as queries:
        key = key_for(world.key)
        team = key.team

    assert len(queries.captured_queries) == 1
    assert isinstance(team, Team)
    assert team.pk == world.team.pk


def test_a_loaded_key_saves_like_any_other(world):
    """The instance is a normal stored row: saving it passes the fixed-field check and
    changes only what was changed."""
    key = key_for(world.key)
    key.name = "renamed"
    key.save(update_fields=["name"])

    assert ApiKey.objects.get(pk=key.pk).name == "renamed"
