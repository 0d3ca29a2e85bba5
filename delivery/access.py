"""Who gets which build: the client endpoints' checks, in the order the README's error table
lists them. Each check either passes or raises the ``ApiError`` the client receives.

``resolve`` runs the checks that only read; ``seats.take`` (the last two checks, under the
license's lock) and the session-key replay check write.

Every request of the Client API comes through here: what the checks read up to the seats is
read in one statement (``delivery.lookup``) and checked in order here.
"""

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import IntegerField
from django.utils import timezone

from delivery.crypto import InvalidSessionKey, decrypt_session_key
from delivery.lookup import Found, lookup
from delivery.models import SessionKeyUse
from delivery.params import ClientQuery
from lukittu import throttling
from lukittu.api import ApiError, Code
from lukittu.sql import Output, Statement, Writer, param
from releases.models import Product, Release, ReleaseFile, ReleaseStatus
from teams.keys import KeySealError, key_pair_for, private_key_of
from teams.models import License, Team, TeamKeyPair

logger = logging.getLogger("lukittu.delivery")

SESSION_KEY_WINDOW = timedelta(minutes=15)
# One claim in this many also deletes the team's uses older than the window: the table stays
# small without a second statement on every download.
SESSION_KEY_CLEANUP_EVERY = 64


@dataclass(frozen=True)
class Grant:
    """Everything a delivery needs once every check before the seats has passed."""

    team: Team
    license: License
    product: Product | None  # what the release headers need; the update check does not
    release: Release
    file: ReleaseFile
    latest_version: str | None


def rate_limited(retry_after: int | None = None) -> ApiError:
    """The Client API's 429; with ``retry_after``, the seconds until the limit's window ends
    (a replayed session key has none: a new key is the fix, not waiting)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return ApiError(429, Code.RATE_LIMIT, "Rate limited", headers=headers)


def check_rate_limits(team_id: uuid.UUID, license_key: str, ip: str | None) -> None:
    """Per client IP (an IPv6 address by its /64), then per license key, counted in the
    shared cache in one round trip (a request the address's limit refuses is not counted
    against the key); fails open."""
    limits = []
    if ip is not None:
        ip_limit, ip_period = throttling.parse_rate(settings.CLIENT_IP_RATE)
        address = throttling.address_identity(ip)
        limits.append(throttling.Limit("client-ip", address, ip_limit, ip_period))
    # The key itself never goes into the cache: a digest of it with the team's id.
    identity = hashlib.sha256(f"{team_id}:{license_key}".encode()).hexdigest()
    key_limit, key_period = throttling.parse_rate(settings.CLIENT_LICENSE_RATE)
    limits.append(throttling.Limit("client-license", identity, key_limit, key_period))
    refused = throttling.hit_in_turn(limits)
    if refused is not None:
        raise rate_limited(refused.reset)


def check_team(team: Team | None) -> Team:
    if team is None:
        raise ApiError(404, Code.TEAM_NOT_FOUND, "Team not found")
    if not team.file_uploads_enabled:
        raise ApiError(
            403,
            Code.FORBIDDEN,
            "Using classloader requires a higher plan. Either upgrade or contact support.",
        )
    return team


def admit(
    team_id: uuid.UUID, query: ClientQuery, *, with_key_pair: bool, with_product: bool
) -> Found:
    """Everything the checks read, with the team checked. ``with_key_pair`` for the
    classloader; ``with_product`` when the release headers name the product."""
    probe = License()
    probe.set_key(query.license_key)
    found = lookup(
        team_id,
        probe.key_digest,
        query.product_id,
        query.branch,
        query.version,
        key_pair=with_key_pair,
        product=with_product,
    )
    check_team(found.team)
    return found


def open_session_key(team: Team, key_pair: TeamKeyPair | None, session_key_hex: str) -> bytes:
    """The decrypted session key, used here for the first time in the replay window.
    ``key_pair`` is the team's as ``admit`` read it (None: the team has none yet)."""
    try:
        # A team made other than by team_create has no key pair yet: it is made now.
        private_key = private_key_of(key_pair or key_pair_for(team))
    except KeySealError:
        logger.error("The private key of team %s does not open: TEAM_KEYS_SECRET changed?", team.pk)
        raise
    try:
        session_key = decrypt_session_key(private_key, session_key_hex)
    except InvalidSessionKey:
        raise ApiError(400, Code.INVALID_SESSION_KEY, "Invalid session key") from None
    _claim_session_key(team, hashlib.sha256(session_key).hexdigest())
    return session_key


def _claim_session_key(team: Team, digest: str) -> None:
    """One row per key and team, claimed by one statement: a new key is inserted; a key seen
    before is claimed again only if its last use is past the window. Two racing requests
    with one key meet on the unique constraint, and only one gets a row back."""
    now = timezone.now()
    cutoff = now - SESSION_KEY_WINDOW
    if secrets.randbelow(SESSION_KEY_CLEANUP_EVERY) == 0:
        SessionKeyUse.objects.filter(team=team, used_at__lt=cutoff).delete()
    params = [
        param(SessionKeyUse, "team", team.pk),
        digest,
        param(SessionKeyUse, "used_at", now),
        param(SessionKeyUse, "used_at", cutoff),
    ]
    claimed = _CLAIM.row(params) is not None
    if not claimed:
        raise rate_limited()


def _write_claim(sql: Writer, variant: object) -> tuple[str, list[Output]]:
    """INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING, which PostgreSQL and SQLite
    (3.35 on) read alike. Parameters: team id, digest, now, the window's start. S608 below:
    only the model's quoted table and column names; every value is a parameter."""
    table = sql.table_name("u")
    team, digest, used_at = sql.name("u.team"), sql.name("u.digest"), sql.name("u.used_at")
    returned = [sql.computed("1", IntegerField())]
    text = (
        f"INSERT INTO {table} ({team}, {digest}, {used_at}) "  # noqa: S608
        f"VALUES (%s, %s, %s) ON CONFLICT ({team}, {digest}) "
        f"DO UPDATE SET {used_at} = excluded.{used_at} "
        f"WHERE {table}.{used_at} < %s RETURNING {sql.select(returned)}"
    )
    return text, returned


_CLAIM = Statement({"u": SessionKeyUse}, _write_claim)


def check_license(license: License | None) -> License:
    """``license`` as ``admit`` found it, with whether it opens the product."""
    if license is None:
        raise ApiError(404, Code.LICENSE_NOT_FOUND, "License not found")
    if not license.opens_product:
        raise ApiError(404, Code.PRODUCT_NOT_FOUND, "Product not found")
    return license


def release_not_found(details: str = "Release not found") -> ApiError:
    return ApiError(404, Code.RELEASE_NOT_FOUND, details)


def check_release_open_to(release: Release, license: License) -> None:
    """``release`` as ``delivery.lookup`` read it (``limited``: it has a license list)."""
    if release.status == ReleaseStatus.ARCHIVED:
        raise ApiError(403, Code.RELEASE_ARCHIVED, "Release is archived")
    if release.status == ReleaseStatus.DRAFT:
        raise ApiError(403, Code.RELEASE_DRAFT, "Release is draft")
    # Most releases are open to every license of the product: only a limited one needs the
    # second look.
    if release.limited and not release.license_links.filter(license=license).exists():
        raise ApiError(
            403, Code.NO_ACCESS_TO_RELEASE, "License does not have access to this release"
        )


def check_license_standing(license: License) -> None:
    if license.suspended:
        raise ApiError(403, Code.LICENSE_SUSPENDED, "License suspended")
    if license.expires_at is not None and license.expires_at <= timezone.now():
        raise ApiError(403, Code.LICENSE_EXPIRED, "License expired")


def resolve(found: Found, query: ClientQuery) -> Grant:
    """The checks from the license on, up to (not including) the seats, on what ``admit``
    read. Only releases with a file count; without ``branch`` only the product's main line."""
    license = check_license(found.license)
    if query.branch is not None and found.branch is None:
        raise release_not_found("Branch not found")
    release = found.release
    if release is None:
        raise release_not_found()
    check_release_open_to(release, license)
    check_license_standing(license)
    assert found.team is not None  # admit checked it
    return Grant(
        team=found.team,
        license=license,
        product=found.product,
        release=release,
        file=release.file,
        latest_version=found.latest_version,
    )
