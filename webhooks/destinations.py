"""Where a webhook may be sent: the URL rule when an endpoint is saved, and the address check
at send time.

At send time the host is resolved once; every address it resolves to must be public (outside
every block of IANA's IPv4 and IPv6 special-purpose address registries, listed below, and
multicast; IPv6 global unicast only; an IPv4-mapped or NAT64 address judged by the IPv4 address
it carries), or the attempt is refused. The request then goes to the address that was checked
(``Destination.address``), with the URL's host in ``Host`` and in TLS (SNI and the certificate
check), so a second DNS answer cannot send it elsewhere (DNS rebinding).
``WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS`` lifts the address rule for development and tests.
"""

import ipaddress
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Every block of IANA's IPv4 Special-Purpose Address Registry (RFC 6890 and its updates),
# whether or not the registry calls it globally reachable (no webhook receiver lives on an
# AS112 or AMT anycast address), and multicast. Spelled out rather than taken from Python's
# ``ipaddress``, whose tables differ between versions and call some of these public. Cloud
# metadata services (169.254.169.254, 169.254.170.2, 100.100.100.200, 192.0.0.192,
# fd00:ec2::254) all fall inside them.
NOT_PUBLIC_IPV4 = _networks(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments (DS-Lite, PCP and TURN anycast, NAT64 discovery)
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.31.196.0/24",  # AS112
    "192.52.193.0/24",  # AMT
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  # private
    "192.175.48.0/24",  # AS112 direct delegation
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 (limited broadcast)
)
# An IPv6 destination must be global unicast (2000::/3, the only block IANA's IPv6 Address
# Space registry allocates for it), which leaves out ::/128, ::1, IPv4-compatible addresses,
# 64:ff9b:1::/48 (local-use translation), 100::/64 (discard), 5f00::/16 (SRv6), fc00::/7
# (unique-local), fe80::/10 (link-local), fec0::/10 (site-local) and ff00::/8 (multicast);
# and outside these blocks of the IPv6 Special-Purpose Address Registry within it.
GLOBAL_UNICAST_IPV6 = ipaddress.ip_network("2000::/3")
NOT_PUBLIC_IPV6 = _networks(
    "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID, AS112, AMT...
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4 (deprecated; relays to any IPv4 address)
    "2620:4f:8000::/48",  # AS112 direct delegation
    "3fff::/20",  # documentation
)
# Judged by the IPv4 address they carry: a connection to one reaches that address.
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known translation prefix (RFC 6052)
RESOLVE_TIMEOUT = 10.0


class DestinationRefused(Exception):
    """The URL may not be sent to; the message says why, for the delivery log."""


@dataclass(frozen=True)
class Destination:
    """The checked address to connect to, and the URL's host for ``Host`` and TLS."""

    scheme: str
    host: str
    port: int
    address: IPAddress
    target: str  # path and query

    @property
    def url(self) -> str:
        """The URL with the checked address in place of the host name."""
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{literal}:{self.port}{self.target}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address reaches, if it is one."""
    if address.version == 6 and (address in IPV4_MAPPED or address in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether a webhook may be sent to ``address``: outside every non-public block above."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    if address.version == 4:
        return not any(address in network for network in NOT_PUBLIC_IPV4)
    if address not in GLOBAL_UNICAST_IPV6:
        return False
    return not any(address in network for network in NOT_PUBLIC_IPV6)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint (https, unless DEBUG; a host; no credentials; an IP
    literal must be public unless private destinations are allowed), or None."""
    parts = urlsplit(url)
    allowed = ("https", "http") if settings.DEBUG else ("https",)
    if parts.scheme.lower() not in allowed:
        return "Must be an https:// URL." if not settings.DEBUG else "Must be an http(s) URL."
    try:
        port = parts.port  # raises on a port out of range
    except ValueError:
        port = 0
    if port == 0:
        return "Must have a valid port."
    if not parts.hostname:
        return "Must name a host."
    if parts.username is not None or parts.password is not None:
        return "Must not carry credentials."
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    if not settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS and not is_public(literal):
        return "Must not be a private, loopback or otherwise non-public address."
    return None


def url_for_log(url: str) -> str:
    """``url`` without its user, password, query and fragment: any of them may be a receiver's
    credential (``?token=...``), and logs are read by more people than the database."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _lookup(host: str, port: int) -> Future[list[Any]]:
    """``getaddrinfo`` in a thread of its own. It cannot be cancelled, so a lookup that hangs
    keeps its thread until the system resolver gives up; in a shared pool such lookups (one
    team's names) would keep every other lookup waiting for a thread."""
    future: Future[list[Any]] = Future()

    def run() -> None:
        try:
            future.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as error:  # handed to the waiting caller, not lost in the thread
            future.set_exception(error)

    threading.Thread(target=run, name="webhook-dns", daemon=True).start()
    return future


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    future = _lookup(host, port)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT)
    except FutureTimeout:
        raise DestinationRefused(f"Resolving {host} timed out") from None
    except OSError as error:
        raise DestinationRefused(f"Cannot resolve {host}: {error}") from None
    # A scope id ("fe80::1%eth0") is not part of the address.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def resolve_destination(url: str) -> Destination:
    """The address to send ``url`` to, checked. Raises ``DestinationRefused``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        # The host as DNS and the Host header know it (IDNA for a non-ASCII name).
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port or (443 if scheme == "https" else 80)
    except (UnicodeError, ValueError):
        raise DestinationRefused("Invalid host or port") from None
    if scheme not in ("http", "https") or not host:
        raise DestinationRefused("Not an http(s) URL")
    addresses = _resolve(host, port)
    if not settings.WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS:
        refused = [address for address in addresses if not is_public(address)]
        if refused:
            raise DestinationRefused(
                f"{host} resolves to a non-public address ({refused[0]}): refused"
            )
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return Destination(scheme, host, port, addresses[0], target)
