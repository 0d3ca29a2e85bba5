"""Every answer of the Client API is for one caller and one moment: ``Cache-Control:
no-store`` on the update check, on every error, on the builds and on the presigned redirect,
and the storage's answer to the presigned URL says the same."""

import uuid
from typing import Any

import pytest
import requests
from django.test import Client

from tests.helpers import make_jar
from tests.loader import Loader, classloader_url, download_url, latest_url
from tests.test_delivery import HWID, Shop, body_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(world: Any) -> Shop:
    return Shop(world, make_jar(extra={"a.bin": b"y" * 3000}))


def test_the_update_check_is_not_stored(client, shop, settings):
    settings.CLIENT_IP_RATE = "10000/minute"
    response = client.get(latest_url(shop.team.id), shop.params())

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("endpoint", [classloader_url, download_url, latest_url])
def test_every_error_is_not_stored(client, shop, endpoint, settings):
    settings.CLIENT_IP_RATE = "10000/minute"
    # Checked after the team: any well-formed key does.
    extra = {"sessionKey": "ab" * 20} if endpoint is classloader_url else {}
    params = shop.params(**extra)
    answers = [
        client.get(endpoint(shop.team.id), {**params, "licenseKey": "bad"}),  # 400
        client.get(endpoint(uuid.uuid4()), params),  # 404, no such team
        client.get(endpoint("not-a-team"), params),  # 400
        client.post(endpoint(shop.team.id), params),  # 405
    ]
    settings.CLIENT_IP_RATE = "1/minute"
    for _ in range(3):
        # The second of two is over the limit, unless the window ended between them (or a
        # test run sharing the cache cleared it): then once more.
        client.get(endpoint(shop.team.id), params)
        limited = client.get(endpoint(shop.team.id), params)
        if limited.status_code == 429:
            break
    answers.append(limited)

    assert [answer.status_code for answer in answers] == [400, 404, 400, 405, 429]
    for answer in answers:
        assert answer["Cache-Control"] == "no-store", answer.status_code
        assert answer.json()["result"]["valid"] is False


def test_builds_are_not_stored(client, shop, settings):
    settings.CLIENT_IP_RATE = "10000/minute"
    loader = Loader(shop.public_key_pem)
    loaded = client.get(
        classloader_url(shop.team.id), shop.params(sessionKey=loader.session_key_hex())
    )
    downloaded = client.get(download_url(shop.team.id), shop.params())

    for response in (loaded, downloaded):
        assert response.status_code == 200
        assert response["Cache-Control"] == "no-store"
        body_of(response)


def test_the_presigned_redirect_and_the_storages_answer_are_not_stored(s3, world, settings):
    settings.CLIENT_IP_RATE = "10000/minute"
    shop = Shop(world, make_jar(extra={"a.bin": b"z" * 3000}))

    response = Client().get(download_url(shop.team.id), shop.params(hardwareIdentifier=HWID))

    assert response.status_code == 302
    assert response["Cache-Control"] == "no-store"
    assert "response-cache-control=no-store" in response["Location"]
    fetched = requests.get(response["Location"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == shop.content
    assert fetched.headers["Cache-Control"] == "no-store"
