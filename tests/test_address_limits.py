"""Per-address rate limits count an IPv6 client by its /64: a host that may take any address of
its network cannot multiply its budget by changing address. IPv4 (and IPv4-mapped IPv6) is
counted per address."""

from types import SimpleNamespace

import pytest

from lukittu import throttling
from lukittu.throttling import address_identity
from tests.loader import latest_url

WINDOW_START = 1_800_000_000
# Well-formed, and no license has it: every request is refused after the rate limits.
UNKNOWN_KEY = "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"


@pytest.fixture(autouse=True)
def three_per_minute(settings, monkeypatch):
    settings.CLIENT_IP_RATE = "3/minute"
    settings.CLIENT_LICENSE_RATE = "1000/minute"
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: WINDOW_START + 15))


@pytest.mark.parametrize(
    ("address", "identity"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("not an address", "not an address"),
    ],
)
def test_address_identity(address, identity):
    assert address_identity(address) == identity


def latest(client, world, address):
    params = {
        "licenseKey": UNKNOWN_KEY,
        "productId": str(world.product.id),
        "hardwareIdentifier": "hw-0123456789",
    }
    return client.get(latest_url(world.team.id), params, REMOTE_ADDR=address)


def test_addresses_of_one_ipv6_64_share_the_client_api_budget(client, world):
    statuses = [latest(client, world, f"2001:db8:77:1::{n:x}").status_code for n in range(1, 5)]

    assert statuses[:3] == [404, 404, 404], statuses
    assert statuses[3] == 429
    assert latest(client, world, "2001:db8:77:1:ffff:ffff:ffff:ffff").status_code == 429
    # The next /64 is another client.
    assert latest(client, world, "2001:db8:77:2::1").status_code == 404


def test_ipv4_addresses_are_counted_one_by_one(client, world):
    for _ in range(3):
        assert latest(client, world, "198.51.100.1").status_code == 404

    assert latest(client, world, "198.51.100.1").status_code == 429
    assert latest(client, world, "198.51.100.2").status_code == 404
