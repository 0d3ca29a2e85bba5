"""Where a webhook may be sent: the URL rule when an endpoint is saved, and the address check
at send time.

At send time the host is resolved once; every address it resolves to must be public (not
loopback, private, link-local, multicast, reserved, unspecified, shared or a cloud metadata
address, IPv4 or IPv6, an IPv4 address inside IPv6 included), or the attempt is refused. The
request then goes to the address that was checked (``Destination.address``), with the URL's
host in ``Host`` and in TLS (SNI and the certificate check), so a second DNS answer cannot
send it elsewhere (DNS rebinding). ``WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS`` lifts the address
rule for development and tests.
"""

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services; most are link-local or private already, listed so the rule does
# not depend on how Python classifies them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT = 10.0
# As many lookups as a worker has attempts in flight, so one team's names that never resolve
# do not keep another team's waiting for a thread.
_resolver = ThreadPoolExecutor(
    max_workers=settings.WEBHOOKS_CONCURRENCY, thread_name_prefix="webhook-dns"
)


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
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    if address.version == 6 and address.ipv4_mapped is not None:
        # A connection to it goes to that IPv4 address: judge that.
        return is_public(address.ipv4_mapped)
    inner = embedded_ipv4(address)
    if inner is not None and not is_public(inner):
        return False
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and address not in METADATA_ADDRESSES
    )


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


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
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
