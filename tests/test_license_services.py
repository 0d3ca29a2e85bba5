"""Licenses that say what they open, and team key pairs: the write use cases in
``teams.services`` and ``delivery.services``, and the audit entries they leave."""

import json
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.exceptions import ValidationError
from django.utils import timezone

from delivery.models import Seat
from delivery.services import license_free_seats, seat_free
from releases.models import Product
from teams.keys import private_key_of, public_key_base64
from teams.models import AuditLog, License, Team, TeamKeyPair
from teams.services import (
    Actor,
    license_create,
    license_delete,
    license_update,
    team_create,
    team_update,
)

OPERATOR = Actor(label="operator:test", ip_address="192.0.2.9", user_agent="tests")


def product_ids(*products: Product) -> list[str]:
    return sorted(str(product.pk) for product in products)


def seat(license: License, kind: str, value: str, **fields) -> Seat:
    return Seat.objects.create(license=license, kind=kind, value=value, **fields)


# --- Team key pairs and the seat timeout -----------------------------------------------------


def test_a_new_team_has_its_key_pair_and_it_opens(db):
    team = team_create(name="Keyed")

    pair = TeamKeyPair.objects.get(team=team)
    assert pair.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pair.private_key_sealed  # sealed, not a PEM
    private = private_key_of(pair)
    assert private.key_size == 2048
    # The sealed private key is the one of the public key shown.
    shown = serialization.load_pem_public_key(pair.public_key_pem.encode())
    assert shown.public_numbers() == private.public_key().public_numbers()


def test_every_team_gets_a_key_pair_of_its_own(db):
    first, second = team_create(name="A"), team_create(name="B")
    keys = {TeamKeyPair.objects.get(team=team).public_key_pem for team in (first, second)}
    assert len(keys) == 2


def test_a_team_whose_creation_fails_leaves_no_key_pair(db, monkeypatch):
    import teams.services

    def broken(**kwargs):
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(teams.services, "log_action", broken)
    with pytest.raises(RuntimeError):
        team_create(name="Doomed", actor=OPERATOR)
    assert not Team.objects.exists() and not TeamKeyPair.objects.exists()


def test_the_seat_timeout_is_set_and_recorded(db):
    team = team_create(name="Acme", seat_timeout_minutes=30, actor=OPERATOR)
    assert team.seat_timeout_minutes == 30
    created = AuditLog.objects.get(action="team.create")
    assert created.request_data["seat_timeout_minutes"] == 30

    team_update(team=team, changes={"seat_timeout_minutes": None}, actor=OPERATOR)

    team.refresh_from_db()
    assert team.seat_timeout_minutes is None
    updated = AuditLog.objects.get(action="team.update")
    assert updated.request_data == {"seat_timeout_minutes": None}
    # The key pair is never part of what the log records.
    logged = json.dumps([created.request_data, created.result, updated.result])
    assert "PUBLIC KEY" not in logged and "v1:" not in logged


@pytest.mark.parametrize("minutes", [0, -5])
def test_a_seat_timeout_below_one_minute_is_refused(db, minutes):
    with pytest.raises(ValueError, match="seat timeout"):
        team_create(name="Acme", seat_timeout_minutes=minutes)
    team = team_create(name="Acme")
    with pytest.raises(ValueError, match="seat timeout"):
        team_update(team=team, changes={"seat_timeout_minutes": minutes})
    team.refresh_from_db()
    assert team.seat_timeout_minutes is None


def test_public_key_base64_is_the_pem_body_on_one_line(db):
    pem = TeamKeyPair.objects.get(team=team_create(name="Acme")).public_key_pem
    bare = public_key_base64(pem)
    assert "\n" not in bare and "-----" not in bare
    assert bare == "".join(pem.strip().splitlines()[1:-1])


# --- Creating licenses -----------------------------------------------------------------------


def test_a_license_opens_the_products_it_is_given(world):
    license, plain = license_create(
        team=world.team,
        products=[world.product, str(world.other_product.pk)],  # a product or its id
        ip_limit=3,
        hwid_limit=1,
        actor=OPERATOR,
    )

    assert license.matches(plain)
    assert set(license.products.all()) == {world.product, world.other_product}
    assert (license.ip_limit, license.hwid_limit) == (3, 1)
    entry = AuditLog.objects.get(action="license.create")
    assert (entry.actor, entry.target_id, entry.team_id) == (
        "operator:test",
        str(license.pk),
        world.team.pk,
    )
    assert entry.request_data == {
        "products": product_ids(world.product, world.other_product),
        "ip_limit": 3,
        "hwid_limit": 1,
        "suspended": False,
        "expires_at": None,
    }
    assert entry.result["products"] == product_ids(world.product, world.other_product)
    assert (entry.result["ip_limit"], entry.result["hwid_limit"]) == (3, 1)
    logged = json.dumps([entry.request_data, entry.result])
    assert plain not in logged and license.key_digest not in logged
    assert '"key_hint"' not in logged


def test_a_license_without_products_opens_none(world):
    license, _ = license_create(team=world.team)
    assert not license.products.exists()


def test_another_teams_product_is_refused_and_nothing_is_made(world, outsider):
    with pytest.raises(ValidationError) as raised:
        license_create(team=world.team, products=[world.product, outsider.product], actor=OPERATOR)

    [message] = raised.value.messages
    assert str(outsider.product.pk) in message and outsider.product.name in message
    assert "another team" in message and str(world.team) in message
    assert License.objects.filter(team=world.team).count() == len(world.licenses)
    assert not AuditLog.objects.filter(action="license.create").exists()


def test_an_unknown_or_malformed_product_is_refused(world):
    missing = uuid.uuid4()
    with pytest.raises(ValidationError, match=f"No product {missing}"):
        license_create(team=world.team, products=[missing])
    with pytest.raises(ValidationError, match="not a product id"):
        license_create(team=world.team, products=["not-a-uuid"])
    assert License.objects.filter(team=world.team).count() == len(world.licenses)


@pytest.mark.parametrize("field", ["ip_limit", "hwid_limit"])
def test_a_limit_below_one_is_refused(world, field):
    with pytest.raises(ValidationError) as raised:
        license_create(team=world.team, products=[world.product], **{field: 0})
    assert field in raised.value.message_dict
    license = world.licenses[0]
    with pytest.raises(ValidationError):
        license_update(license=license, changes={field: -1})
    license.refresh_from_db()
    assert getattr(license, field) is None


# --- Updating and deleting licenses ----------------------------------------------------------


def test_changing_the_products_and_limits_is_one_entry(world):
    license = world.licenses[0]
    license.products.set([world.product])

    license_update(
        license=license,
        changes={"products": [world.other_product], "hwid_limit": 2, "suspended": False},
        actor=OPERATOR,
    )

    assert list(license.products.all()) == [world.other_product]
    license.refresh_from_db()
    assert license.hwid_limit == 2
    entry = AuditLog.objects.get(action="license.update")
    # Only what differs: "suspended" was False already.
    assert entry.request_data == {"hwid_limit": 2, "products": product_ids(world.other_product)}
    assert entry.result["products"] == product_ids(world.other_product)
    assert entry.result["hwid_limit"] == 2


def test_the_same_products_in_another_order_change_nothing(world):
    license = world.licenses[0]
    license.products.set([world.product, world.other_product])

    license_update(
        license=license,
        changes={"products": [world.other_product.pk, world.product.pk], "ip_limit": None},
        actor=OPERATOR,
    )

    assert not AuditLog.objects.exists()
    assert set(license.products.all()) == {world.product, world.other_product}


def test_an_update_to_another_teams_product_changes_nothing(world, outsider):
    license = world.licenses[0]
    license.products.set([world.product])

    with pytest.raises(ValidationError, match="another team"):
        license_update(
            license=license,
            changes={"products": [outsider.product], "suspended": True},
            actor=OPERATOR,
        )

    license.refresh_from_db()
    assert license.suspended is False
    assert list(license.products.all()) == [world.product]
    assert not AuditLog.objects.exists()


def test_an_update_records_the_current_products_even_when_they_did_not_change(world):
    license = world.licenses[0]
    license.products.set([world.product])

    license_update(license=license, changes={"suspended": True}, actor=OPERATOR)

    entry = AuditLog.objects.get(action="license.update")
    assert entry.request_data == {"suspended": True}
    assert entry.result["products"] == product_ids(world.product)


def test_a_deleted_license_is_recorded_with_what_it_opened(world):
    license = world.licenses[0]
    license.products.set([world.product])

    license_delete(license=license, actor=OPERATOR)

    entry = AuditLog.objects.get(action="license.delete")
    assert entry.result["products"] == product_ids(world.product)
    assert world.product.licenses.count() == 0


# --- Freeing seats ---------------------------------------------------------------------------


def test_freeing_seats_of_one_kind_and_then_all(world):
    license, other = world.licenses[:2]
    seat(license, Seat.Kind.HWID, "a" * 64)
    seat(license, Seat.Kind.IP, "192.0.2.1")
    seat(license, Seat.Kind.IP, "192.0.2.2")
    seat(other, Seat.Kind.IP, "192.0.2.3")

    assert license_free_seats(license=license, kind=Seat.Kind.IP, actor=OPERATOR) == 2
    assert list(Seat.objects.filter(license=license).values_list("kind", flat=True)) == ["HWID"]
    assert license_free_seats(license=license, actor=OPERATOR) == 1
    assert license_free_seats(license=license, actor=OPERATOR) == 0

    assert Seat.objects.filter(license=other).count() == 1  # another license's seats stay
    entries = AuditLog.objects.filter(action="license.free_seats").order_by("id")
    assert [(e.target_id, e.request_data, e.result) for e in entries] == [
        (str(license.pk), {"kind": "IP"}, {"freed": 2}),
        (str(license.pk), {"kind": None}, {"freed": 1}),
    ]  # freeing nothing records nothing
    assert all(e.actor == "operator:test" for e in entries)


def test_freeing_an_unknown_kind_is_refused(world):
    seat(world.licenses[0], Seat.Kind.IP, "192.0.2.1")
    with pytest.raises(ValueError, match="kind"):
        license_free_seats(license=world.licenses[0], kind="ip")  # the stored kind is "IP"
    assert Seat.objects.count() == 1


def test_freeing_one_seat_is_recorded_against_its_license(world):
    license = world.licenses[0]
    kept = seat(license, Seat.Kind.IP, "192.0.2.1")
    freed = seat(license, Seat.Kind.IP, "192.0.2.2", last_seen_at=timezone.now() - timedelta(1))

    assert seat_free(seat=freed, actor=OPERATOR) is True
    assert seat_free(seat=freed, actor=OPERATOR) is False

    assert list(Seat.objects.all()) == [kept]
    entry = AuditLog.objects.get(action="license.free_seats")
    assert entry.target_id == str(license.pk)
    assert entry.request_data == {"kind": "IP", "seat": freed.pk, "value": "192.0.2.2"}
