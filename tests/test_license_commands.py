"""The operator commands for licenses and key pairs: create_license, team_public_key,
reseal_team_keys and free_seats."""

import io
import json
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from delivery.models import Seat
from teams.keys import KeySealError, key_pair_for, private_key_of, unseal
from teams.models import AuditLog, License, Team, TeamKeyPair
from teams.services import team_soft_delete

COMMAND_LINE = "operator:command-line"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def new_licenses(team: Team) -> list[License]:
    return list(License.objects.filter(team=team).order_by("-created_at"))


# --- create_license ---------------------------------------------------------------------------


def test_create_license_prints_only_the_key(world):
    before = set(License.objects.values_list("pk", flat=True))

    output = run("create_license", str(world.team.pk), "--product", str(world.product.pk))

    [license] = License.objects.exclude(pk__in=before)
    plain = output.strip()
    assert output == f"{plain}\n" and " " not in plain
    assert license.matches(plain)
    assert list(license.products.all()) == [world.product]
    assert (license.ip_limit, license.hwid_limit, license.suspended, license.expires_at) == (
        None,
        None,
        False,
        None,
    )
    entry = AuditLog.objects.get(action="license.create")
    assert (entry.actor, entry.target_id) == (COMMAND_LINE, str(license.pk))
    assert entry.request_data["products"] == [str(world.product.pk)]
    assert plain not in json.dumps([entry.request_data, entry.result])


def test_create_license_with_every_option_and_json(world):
    before = set(License.objects.values_list("pk", flat=True))

    printed = json.loads(
        run(
            "create_license",
            str(world.team.pk),
            "--product",
            str(world.product.pk),
            "--product",
            str(world.other_product.pk),
            "--product",
            str(world.product.pk),  # a repeat counts once
            "--hwid-limit",
            "2",
            "--ip-limit",
            "5",
            "--expires-in-days",
            "30",
            "--suspended",
            "--json",
        )
    )

    [license] = License.objects.exclude(pk__in=before)
    assert printed == {
        "licenseId": str(license.pk),
        "licenseKey": printed["licenseKey"],
        "teamId": str(world.team.pk),
        "productIds": sorted([str(world.product.pk), str(world.other_product.pk)]),
        "hwidLimit": 2,
        "ipLimit": 5,
        "expiresAt": printed["expiresAt"],
    }
    assert license.matches(printed["licenseKey"])
    assert set(license.products.all()) == {world.product, world.other_product}
    assert (license.hwid_limit, license.ip_limit, license.suspended) == (2, 5, True)
    assert abs(license.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert printed["expiresAt"].endswith("Z")


def test_create_license_json_without_limits_or_expiry(world):
    printed = json.loads(
        run("create_license", str(world.team.pk), "--product", str(world.product.pk), "--json")
    )
    assert (printed["hwidLimit"], printed["ipLimit"], printed["expiresAt"]) == (None, None, None)


def test_create_license_refuses_another_teams_product(world, outsider):
    with pytest.raises(CommandError) as raised:
        run(
            "create_license",
            str(world.team.pk),
            "--product",
            str(world.product.pk),
            "--product",
            str(outsider.product.pk),
        )
    assert str(outsider.product.pk) in str(raised.value)
    assert "another team" in str(raised.value)
    assert len(new_licenses(world.team)) == len(world.licenses)


def test_create_license_refuses_an_unknown_product(world):
    missing = uuid.uuid4()
    with pytest.raises(CommandError, match=f"No product {missing}"):
        run("create_license", str(world.team.pk), "--product", str(missing))
    with pytest.raises(CommandError, match="--product 'nope' is not a UUID"):
        run("create_license", str(world.team.pk), "--product", "nope")
    assert len(new_licenses(world.team)) == len(world.licenses)


def test_create_license_needs_a_product(world):
    with pytest.raises(CommandError, match="--product"):
        run("create_license", str(world.team.pk))
    assert len(new_licenses(world.team)) == len(world.licenses)


def test_create_license_refuses_a_missing_or_deleted_team(world):
    with pytest.raises(CommandError, match="No team"):
        run("create_license", str(uuid.uuid4()), "--product", str(world.product.pk))
    with pytest.raises(CommandError, match="TEAM_ID must be a UUID"):
        run("create_license", "acme", "--product", str(world.product.pk))
    team_soft_delete(team=world.team)
    with pytest.raises(CommandError, match="No team"):
        run("create_license", str(world.team.pk), "--product", str(world.product.pk))
    assert len(new_licenses(world.team)) == len(world.licenses)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--hwid-limit", "0", "--hwid-limit must be at least 1"),
        ("--ip-limit", "-1", "--ip-limit must be at least 1"),
        ("--expires-in-days", "0", "--expires-in-days must be at least 1"),
        ("--hwid-limit", "two", "invalid int value"),
        ("--ip-limit", "1.5", "invalid int value"),
    ],
)
def test_create_license_refuses_bad_numbers(world, option, value, message):
    with pytest.raises(CommandError, match=message):
        run("create_license", str(world.team.pk), "--product", str(world.product.pk), option, value)
    assert len(new_licenses(world.team)) == len(world.licenses)


# --- team_public_key --------------------------------------------------------------------------


def test_team_public_key_prints_the_pem_and_the_bare_base64(world):
    pair = TeamKeyPair.objects.get(team=world.team)

    pem = run("team_public_key", str(world.team.pk))
    bare = run("team_public_key", str(world.team.pk), "--base64").strip()

    assert pem.strip() == pair.public_key_pem.strip()
    key = serialization.load_pem_public_key(pem.encode())
    assert key.public_numbers() == private_key_of(pair).public_key().public_numbers()
    assert "\n" not in bare and not bare.startswith("-----")
    assert bare == "".join(pair.public_key_pem.strip().splitlines()[1:-1])


def test_team_public_key_makes_a_missing_key_pair_once(db):
    team = Team.objects.create(name="Made elsewhere")  # not through team_create: no key pair

    first = run("team_public_key", str(team.pk))
    second = run("team_public_key", str(team.pk))

    assert first == second and "BEGIN PUBLIC KEY" in first
    assert TeamKeyPair.objects.filter(team=team).count() == 1


def test_team_public_key_refuses_a_missing_or_deleted_team(world):
    with pytest.raises(CommandError, match="No team"):
        run("team_public_key", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="TEAM_ID must be a UUID"):
        run("team_public_key", "acme")
    team_soft_delete(team=world.team)
    with pytest.raises(CommandError, match="No team"):
        run("team_public_key", str(world.team.pk))


# --- free_seats -------------------------------------------------------------------------------


@pytest.fixture
def seated(world) -> License:
    license = world.licenses[0]
    for kind, value in [
        (Seat.Kind.HWID, "a" * 64),
        (Seat.Kind.HWID, "b" * 64),
        (Seat.Kind.IP, "192.0.2.1"),
    ]:
        Seat.objects.create(license=license, kind=kind, value=value)
    Seat.objects.create(license=world.licenses[1], kind=Seat.Kind.IP, value="192.0.2.9")
    return license


# --- reseal_team_keys ---------------------------------------------------------------------------


def test_reseal_team_keys_moves_every_key_to_the_new_secret(world, outsider, settings, monkeypatch):
    """After TEAM_KEYS_SECRET changes, the keys sealed with the old one open again once
    resealed, and a second run finds nothing left to do."""
    old_pems = {
        pair.team_id: private_key_of(pair).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for pair in (key_pair_for(world.team), key_pair_for(outsider.team))
    }
    old_secret = settings.TEAM_KEYS_SECRET
    settings.TEAM_KEYS_SECRET = "a new secret, rotated by the operator"
    monkeypatch.setenv("OLD_TEAM_KEYS_SECRET", old_secret)
    with pytest.raises(KeySealError):
        unseal(TeamKeyPair.objects.get(team=world.team).private_key_sealed, world.team.pk)

    first = run("reseal_team_keys", "--old-secret-env", "OLD_TEAM_KEYS_SECRET")
    again = run("reseal_team_keys", "--old-secret-env", "OLD_TEAM_KEYS_SECRET")

    assert "2 resealed from the old secret" in first
    assert "2 already sealed with TEAM_KEYS_SECRET" in again
    for pair in TeamKeyPair.objects.all():
        assert unseal(pair.private_key_sealed, pair.team_id) == old_pems[pair.team_id]


def test_reseal_team_keys_names_keys_that_open_with_neither_secret(world, settings, monkeypatch):
    key_pair_for(world.team)
    settings.TEAM_KEYS_SECRET = "a new secret"
    monkeypatch.setenv("OLD_TEAM_KEYS_SECRET", "not the secret it was sealed with")

    with pytest.raises(CommandError, match=str(world.team.pk)):
        run("reseal_team_keys", "--old-secret-env", "OLD_TEAM_KEYS_SECRET")
    monkeypatch.delenv("OLD_TEAM_KEYS_SECRET")
    with pytest.raises(CommandError, match="Set OLD_TEAM_KEYS_SECRET"):
        run("reseal_team_keys", "--old-secret-env", "OLD_TEAM_KEYS_SECRET")


@pytest.mark.parametrize(
    ("args", "freed", "left"),
    [
        ((), 3, set()),
        (("--kind", "hwid"), 2, {"IP"}),
        (("--kind", "ip"), 1, {"HWID"}),
    ],
)
def test_free_seats_prints_how_many_it_freed(seated, args, freed, left):
    output = run("free_seats", str(seated.pk), *args)

    assert output.strip() == str(freed)
    assert set(Seat.objects.filter(license=seated).values_list("kind", flat=True)) == left
    assert Seat.objects.exclude(license=seated).count() == 1  # another license's seat stays
    entry = AuditLog.objects.get(action="license.free_seats")
    assert (entry.actor, entry.target_id, entry.result) == (
        COMMAND_LINE,
        str(seated.pk),
        {"freed": freed},
    )


def test_free_seats_with_nothing_to_free_prints_zero(world):
    assert run("free_seats", str(world.licenses[2].pk)).strip() == "0"
    assert not AuditLog.objects.exists()


def test_free_seats_refuses_an_unknown_license_or_kind(seated):
    with pytest.raises(CommandError, match="No license"):
        run("free_seats", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="LICENSE_ID must be a UUID"):
        run("free_seats", "nope")
    with pytest.raises(CommandError, match="invalid choice"):
        run("free_seats", str(seated.pk), "--kind", "mac")
    assert Seat.objects.filter(license=seated).count() == 3
