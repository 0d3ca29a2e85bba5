"""Names and the seats: only printable names are accepted (the API, the admin and the OpenAPI
document state one rule, Python's ``str.isprintable()``), rows stored before that rule are
still delivered, and an answer that cannot be built takes no seat and leaves no record."""

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from delivery import views
from delivery.models import Download, Seat, hwid_digest
from releases.models import NAME_PATTERN, Branch, Product
from teams.models import License
from tests.conftest import World
from tests.helpers import assert_admin_refuses_names, make_jar
from tests.loader import Loader, classloader_url, download_url
from tests.test_delivery import HWID, OTHER_HWID, Shop, body_of

pytestmark = pytest.mark.django_db

OLD_NAME = "Old\u2028name\u2029"
UNPRINTABLE = [
    "\u2028",  # line separator: Python's header encoding splits the header there
    "\u2029",  # paragraph separator
    "\u0085",  # next line (C1 control)
    "\u200b",  # zero-width space (format)
    "\ufeff",  # byte order mark (format)
    "\u00a0",  # no-break space (a separator other than the space)
    "\ue000",  # private use
    "\U000e0001",  # language tag (format, beyond the BMP)
    "\U0010fffe",  # unassigned
]


@pytest.fixture(autouse=True)
def _generous_rate_limits(settings: Any) -> None:
    settings.CLIENT_IP_RATE = "10000/minute"
    settings.CLIENT_LICENSE_RATE = "10000/minute"


def one_seat_license(world: World) -> Shop:
    shop = Shop(world, make_jar(extra={"a.bin": b"x" * 5000}))
    License.objects.filter(pk=shop.license.pk).update(hwid_limit=1)
    return shop


def fetch(client: Client, shop: Shop, endpoint: Any, hwid: str = HWID) -> Any:
    params = shop.params(hardwareIdentifier=hwid)
    loader = None
    if endpoint is classloader_url:
        loader = Loader(shop.public_key_pem)
        params["sessionKey"] = loader.session_key_hex()
    response = client.get(endpoint(shop.team.id), params)
    response.loader = loader
    return response


def delivered_bytes(response: Any) -> bytes:
    if response.status_code == 302:  # the presigned URL: read it as the client would
        import requests

        return requests.get(response["Location"], timeout=10).content
    body = body_of(response)
    return response.loader.decrypt(body) if response.loader else body


ENDPOINTS = pytest.mark.parametrize(
    "endpoint", [classloader_url, download_url], ids=["classloader", "download"]
)


@ENDPOINTS
def test_a_name_stored_before_the_rule_is_delivered_and_takes_its_seat_once(
    client, world, backend, endpoint
):
    """A product named with U+2028 (written before names were checked) is delivered with a
    header that can be sent; the one-device license then holds that device's seat."""
    shop = one_seat_license(world)
    Product.objects.filter(pk=world.product.pk).update(name=OLD_NAME)

    response = fetch(client, shop, endpoint)

    assert response.status_code in (200, 302), response.content[:300]
    assert delivered_bytes(response) == shop.content
    if response.status_code == 200:
        assert response["X-Product-Name"] == "Old name "
    hwid_seats = Seat.objects.filter(kind=Seat.Kind.HWID).values_list("value", flat=True)
    assert list(hwid_seats) == [hwid_digest(HWID)]
    assert Download.objects.count() == 1
    # The same device again is fine; another one finds the seat taken.
    assert fetch(client, shop, endpoint).status_code in (200, 302)
    assert fetch(client, shop, endpoint, OTHER_HWID).status_code == 403


@ENDPOINTS
def test_an_answer_that_cannot_be_built_takes_no_seat(
    client, world, backend, endpoint, monkeypatch
):
    """Whatever builds the answer (its headers, the presigned URL) fails inside the seats'
    transaction: no seat, no download record, and the device still gets in afterwards."""
    shop = one_seat_license(world)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the answer cannot be built")

    monkeypatch.setattr(views, "release_headers", broken)
    monkeypatch.setattr(views, "presigned_download_url", broken)
    failing = Client(raise_request_exception=False)

    response = fetch(failing, shop, endpoint)

    assert response.status_code == 500
    assert not Seat.objects.exists()
    assert not Download.objects.exists()
    monkeypatch.undo()
    assert fetch(client, shop, endpoint, OTHER_HWID).status_code in (200, 302)
    assert Download.objects.count() == 1


def test_the_presigned_url_is_signed_before_the_license_is_locked(client, world, s3, monkeypatch):
    """Signing may fetch credentials over the network: it runs before the seats' transaction
    (``seats.take``) locks the license, so no other device of the license waits on it."""
    shop = one_seat_license(world)
    sign, take = views.presigned_download_url, views.seats.take
    taking = []
    signed_while_taking = []

    def watched_sign(*args: Any, **kwargs: Any) -> str:
        signed_while_taking.append(bool(taking))
        return sign(*args, **kwargs)

    def watched_take(*args: Any, **kwargs: Any) -> Any:
        taking.append(True)
        try:
            return take(*args, **kwargs)
        finally:
            taking.pop()

    monkeypatch.setattr(views, "presigned_download_url", watched_sign)
    monkeypatch.setattr(views.seats, "take", watched_take)

    response = fetch(client, shop, download_url)

    assert response.status_code == 302
    assert signed_while_taking == [False]
    assert Download.objects.count() == 1


def test_a_main_class_with_a_line_separator_is_sent_safely(client, world):
    shop = Shop(world, make_jar())
    type(shop.file).objects.filter(pk=shop.file.pk).update(main_class_name="com.ex.\u2028Main")

    response = fetch(client, shop, classloader_url)

    assert response.status_code == 200
    assert response["X-Main-Class"] == "com.ex. Main"


@pytest.mark.parametrize("value", ["Caf\u00e9 \U0001f680", "a\u2028b", "\x00\x7f\u0085\u200b"])
def test_header_text_keeps_printable_text_and_replaces_the_rest(value):
    sent = views.header_text(value)

    assert sent.isprintable()
    assert len(sent) == len(value)
    assert all(a == b or not a.isprintable() for a, b in zip(value, sent, strict=True))


# --- The rule on input ------------------------------------------------------------------------


def dev_call(client: Client, world: World, method: str, path: str, body: Any) -> Any:
    return getattr(client, method)(
        f"/api/v1/dev/teams/{world.team.id}{path}",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.key}",
    )


@pytest.mark.parametrize("character", UNPRINTABLE, ids=lambda c: f"U+{ord(c):04X}")
def test_the_api_refuses_unprintable_names_naming_the_field(client, world, character):
    name = f"App{character}x"
    product = dev_call(client, world, "post", "/products", {"name": name})
    branch = dev_call(
        client, world, "post", f"/products/{world.product.id}/branches", {"name": name}
    )
    renamed = dev_call(client, world, "put", f"/products/{world.product.id}", {"name": name})

    for response in (product, branch, renamed):
        assert response.status_code == 400, response.content
        errors = response.json()["data"]["errors"]
        assert [error["path"] for error in errors] == [["name"]]
        assert "unprintable characters" in errors[0]["message"]
    assert not Product.objects.filter(name=name).exists()
    assert not Branch.objects.filter(name=name).exists()


def test_the_api_takes_spaces_and_printable_unicode(client, world):
    name = "Caf\u00e9 Tool \U0001f680"
    product = dev_call(client, world, "post", "/products", {"name": name})
    branch = dev_call(
        client, world, "post", f"/products/{world.product.id}/branches", {"name": name}
    )

    assert (product.status_code, branch.status_code) == (201, 201)
    assert Product.objects.filter(name=name).exists()


def test_the_admin_refuses_an_unprintable_name(world):
    user = User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    staff = Client()
    staff.force_login(user)

    assert_admin_refuses_names(
        staff, world, "Two\u2028lines", "rc\u20291", "unprintable characters"
    )


def test_the_openapi_pattern_is_the_validators_rule_up_to_ufff(client):
    """Read as JSON Schema reads it (``$`` is the end of the text), the published pattern
    refuses exactly the characters of the BMP that ``str.isprintable()`` refuses; beyond it
    the description states the rule (no pattern reads alike there in Python and ECMA-262)."""
    document = client.get("/api/schema/?format=json").json()
    names = [
        schema["properties"]["name"]
        for schema in document["components"]["schemas"].values()
        if "pattern" in schema.get("properties", {}).get("name", {})
    ]
    assert len(names) == 2  # ProductBody, BranchBody
    assert {name["pattern"] for name in names} == {NAME_PATTERN}
    assert all("str.isprintable()" in name["description"] for name in names)
    assert NAME_PATTERN.isascii()
    anchored = re.compile(NAME_PATTERN[:-1] + r"\Z")
    wrong = [
        code
        for code in range(0x10000)
        if (anchored.search(chr(code)) is not None) != chr(code).isprintable()
    ]
    assert wrong == []
    assert anchored.search("My App \U0001f680")
