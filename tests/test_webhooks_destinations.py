"""The send-time address check (SSRF guard): non-public destinations are refused unless
WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS; the request goes to the address that was checked, with
the URL's host in Host and TLS, and the name is looked up once."""

import ipaddress
import socket
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import httpx
import pytest

from tests.test_webhooks_helpers import make_endpoint, running_receiver
from webhooks import destinations, sender
from webhooks.destinations import (
    DestinationRefused,
    is_public,
    resolve_destination,
    url_problem,
)
from webhooks.events import emit
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery

NOT_PUBLIC = [
    "127.0.0.1",
    "127.9.9.9",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # the metadata service
    "169.254.170.2",
    "100.64.0.1",  # shared address space
    "100.100.100.200",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.192",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:db8::1",  # documentation
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


# IANA's IPv4 and IPv6 Special-Purpose Address Registries, every entry (as of 2025), with
# multicast and the IPv6 blocks outside global unicast; written out here independently of the
# list in webhooks/destinations.py.
IANA_IPV4 = [
    "0.0.0.0/8", "0.0.0.0/32", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.9/32",
    "192.0.0.10/32", "192.0.0.170/32", "192.0.0.171/32", "192.0.2.0/24", "192.31.196.0/24",
    "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32", "224.0.0.0/4",
]  # fmt: skip
IANA_IPV6 = [
    "::1/128", "::/128", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64", "2001::/23",
    "2001::/32", "2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:2::/48",
    "2001:3::/32", "2001:4:112::/48", "2001:10::/28", "2001:20::/28", "2001:30::/28",
    "2001:db8::/32", "2002::/16", "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7",
    "fe80::/10", "fec0::/10", "ff00::/8", "::/96",
]  # fmt: skip


def first_middle_last(cidr):
    network = ipaddress.ip_network(cidr)
    middle = network.network_address + network.num_addresses // 2
    return [network.network_address, middle, network.broadcast_address]


@pytest.mark.parametrize("cidr", IANA_IPV4 + IANA_IPV6)
def test_every_special_purpose_range_is_refused(cidr):
    for address in first_middle_last(cidr):
        assert not is_public(address), address
        forms = [f"::ffff:{address}", f"64:ff9b::{address}"] if address.version == 4 else []
        for form in forms:  # the same IPv4 address inside IPv6
            assert not is_public(ipaddress.ip_address(form)), form


# Just outside some of those ranges: public, so the list is no wider than the registries.
@pytest.mark.parametrize(
    "address",
    [
        "100.63.255.255", "100.128.0.0", "192.0.1.1", "198.17.255.255", "198.20.0.0",
        "223.255.255.254", "64:ff9b::808:808", "2001:200::1", "2001:db9::1", "2003::1",
        "3ffe:ffff::1", "3fff:1000::1", "2620:4f:8001::1",
    ],
)  # fmt: skip
def test_addresses_next_to_them_are_public(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.fixture
def receiver():
    yield from running_receiver()


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_are_refused(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert is_public(ipaddress.ip_address(address))


def fake_dns(monkeypatch, answers):
    """``socket.getaddrinfo`` answering ``answers[host]`` (a list of addresses) and counting
    lookups; anything else goes to the real resolver (IP literals, the receiver)."""
    lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            lookups.append(host)
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_a_private_receiver_is_refused_and_nothing_is_sent(settings, world, receiver):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = False
    make_endpoint(world.team, receiver.url)
    emit(world.team, "release.updated", {"id": "a"})

    assert sender.sweep() == 1

    assert receiver.received == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert "non-public address (127.0.0.1): refused" in attempt.error
    assert WebhookDelivery.objects.get().state == DeliveryState.PENDING


def test_a_name_resolving_to_a_private_address_is_refused(settings, monkeypatch, world, receiver):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = False
    # One public and one private answer: refused, whichever a client would pick.
    fake_dns(monkeypatch, {"hooks.example.test": ["93.184.216.34", "127.0.0.1"]})
    make_endpoint(world.team, f"http://hooks.example.test:{receiver.port}/hooks")
    emit(world.team, "release.updated", {"id": "a"})

    sender.sweep()

    assert receiver.received == []
    assert (
        "hooks.example.test resolves to a non-public address" in WebhookAttempt.objects.get().error
    )


def test_names_that_never_resolve_do_not_hold_up_other_lookups(settings, monkeypatch):
    """Lookups that hang (one team's names) do not keep another's waiting for a thread."""
    monkeypatch.setattr(destinations, "RESOLVE_TIMEOUT", 2.0)
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hang.example":
            release.wait(30)
        if host == "ok.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    hanging = settings.WEBHOOKS_CONCURRENCY * 2
    with ThreadPoolExecutor(hanging) as pool:
        refused = [
            pool.submit(resolve_destination, "https://hang.example/hooks") for _ in range(hanging)
        ]
        try:
            wait(refused, timeout=3)
            # Every hanging lookup has timed out, and still holds its thread.
            assert all(isinstance(f.exception(), DestinationRefused) for f in refused)
            ok = resolve_destination("https://ok.example/hooks")
            assert ok.address == ipaddress.ip_address("93.184.216.34")
        finally:
            release.set()


@pytest.mark.parametrize("host", ["localhost", "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254"])
def test_resolve_destination_refuses_local_names_and_literals(settings, host):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = False

    with pytest.raises(DestinationRefused):
        resolve_destination(f"https://{host}/hooks")


def test_the_checked_address_is_the_one_connected_to(settings, monkeypatch, world, receiver):
    """The name is looked up once; the request goes to that address with the name in Host. A
    second lookup (DNS rebinding) would have pointed elsewhere."""
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = True
    lookups = fake_dns(monkeypatch, {"hooks.example.test": ["127.0.0.1"]})
    make_endpoint(world.team, f"http://hooks.example.test:{receiver.port}/hooks?x=1")
    emit(world.team, "release.updated", {"id": "a"})

    assert sender.sweep() == 1

    assert lookups == ["hooks.example.test"]
    (request,) = receiver.received
    assert request.headers["Host"] == f"hooks.example.test:{receiver.port}"
    assert request.path == "/hooks?x=1"
    assert WebhookDelivery.objects.get().state == DeliveryState.DELIVERED


def test_https_goes_to_the_checked_address_with_the_name_for_sni(settings, monkeypatch, world):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = False
    fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    sent = []

    async def send(self, request, **kwargs):  # stands in for the network: nothing leaves
        sent.append(request)
        return httpx.Response(204, request=request, stream=httpx.ByteStream(b""))

    monkeypatch.setattr(httpx.AsyncClient, "send", send)
    make_endpoint(world.team, "https://hooks.example.com/in")
    emit(world.team, "release.updated", {"id": "a"})

    sender.sweep()

    (request,) = sent
    assert str(request.url) == "https://93.184.216.34/in"
    assert request.headers["Host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_private_destinations_can_be_allowed_for_development(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = True

    destination = resolve_destination("http://127.0.0.1:8080/x")

    assert str(destination.address) == "127.0.0.1"
    assert destination.url == "http://127.0.0.1:8080/x"


@pytest.mark.parametrize(
    ("debug", "url", "problem"),
    [
        (False, "http://example.com/hooks", "Must be an https:// URL."),
        (False, "https://user:pw@example.com/", "Must not carry credentials."),
        (
            False,
            "https://10.0.0.1/hooks",
            "Must not be a private, loopback or otherwise non-public address.",
        ),
        (False, "https://example.com/hooks", None),
        (True, "http://127.0.0.1:9000/hooks", None),
    ],
)
def test_the_url_rule(settings, debug, url, problem):
    settings.DEBUG = debug
    settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS = debug

    assert url_problem(url) == problem
