"""Bearer API keys: every way a key can be wrong is the same 401, and changes nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from releases.models import Release
from teams.models import ApiKey
from teams.services import api_key_create, api_key_revoke, team_soft_delete
from tests.helpers import assert_error, put_release, team_state, update_data


def put(client, world, authorization=None):
    """A valid update (it would change the version) sent with ``authorization`` as the header."""
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    data = update_data(world.release, version="9.9.9")
    return put_release(client, world.team.id, world.release.id, key=None, data=data, **headers)


def assert_refused(client, world, authorization):
    before = team_state(world.team)

    response = put(client, world, authorization)

    assert_error(response, 401, "Invalid API key", "UNAUTHORIZED")
    assert response["WWW-Authenticate"] == "Bearer"
    assert team_state(world.team) == before
    assert Release.objects.get(pk=world.release.pk).version == "1.0.0"


def last_used(plain):
    return ApiKey.objects.get(stem=ApiKey.stem_of(plain)).last_used_at


def test_missing_header(client, world):
    assert_refused(client, world, None)


@pytest.mark.parametrize(
    "template",
    [
        "{key}",
        "Token {key}",
        "Basic {key}",
        "Bearer",
        "Bearer ",
        "Bearer  ",
        "Bearer {key} extra",
        "Bearer {key},",
        "Bearer: {key}",
        "BearerX {key}",
        "Bearer garbage",
        "Bearer lukittu_api_key_",
        "Bearer lukittu_api_key_{stem}",
        "Bearer lukittu_api_key_{stem}_",
        "Bearer {key}\u00e9",
        "Bearer " + "x" * 300,
        "",
    ],
)
def test_malformed_header(client, world, template):
    stem = ApiKey.stem_of(world.key)
    assert_refused(client, world, template.format(key=world.key, stem=stem))
    assert last_used(world.key) is None


def test_unknown_key(client, world):
    _, plain = ApiKey.build(team=world.team)  # never saved

    assert_refused(client, world, f"Bearer {plain}")


def test_right_stem_wrong_secret(client, world):
    wrong = world.key[:-4] + ("AAAA" if not world.key.endswith("AAAA") else "BBBB")

    assert_refused(client, world, f"Bearer {wrong}")
    assert last_used(world.key) is None


def test_expired_key(client, world):
    key, plain = api_key_create(team=world.team, expires_in_days=1)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_refused(client, world, f"Bearer {plain}")
    assert last_used(plain) is None


def test_key_that_has_not_expired_yet_works(client, world):
    _, plain = api_key_create(team=world.team, expires_in_days=1)

    response = put(client, world, f"Bearer {plain}")

    assert response.status_code == 200, response.json()
    assert Release.objects.get(pk=world.release.pk).version == "9.9.9"


def test_revoked_key(client, world):
    api_key_revoke(key=ApiKey.objects.get(stem=ApiKey.stem_of(world.key)))

    assert_refused(client, world, f"Bearer {world.key}")
    assert last_used(world.key) is None


def test_key_of_another_team(client, world, outsider):
    before = team_state(outsider.team)

    assert_refused(client, world, f"Bearer {outsider.key}")
    assert team_state(outsider.team) == before


def test_key_of_a_deleted_team(client, world):
    team_soft_delete(team=world.team)

    assert_refused(client, world, f"Bearer {world.key}")
    assert last_used(world.key) is None


def test_scheme_is_case_insensitive(client, world):
    response = put(client, world, f"bearer {world.key}")

    assert response.status_code == 200, response.json()


def test_valid_key_records_last_use_at_most_once_a_minute(client, world):
    assert last_used(world.key) is None
    started = timezone.now()

    assert put(client, world, f"Bearer {world.key}").status_code == 200
    first = last_used(world.key)
    assert first is not None and first >= started

    assert put(client, world, f"Bearer {world.key}").status_code == 200
    assert last_used(world.key) == first

    an_hour_ago = timezone.now() - timedelta(hours=1)
    ApiKey.objects.filter(stem=ApiKey.stem_of(world.key)).update(last_used_at=an_hour_ago)
    assert put(client, world, f"Bearer {world.key}").status_code == 200
    assert last_used(world.key) > an_hour_ago
